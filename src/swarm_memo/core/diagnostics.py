"""What a run did: counts of chunks and points, exec chunks, timings."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from swarm_memo.errors import SpecError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from swarm_memo.core.picture import Coverage, Picture


@dataclass
class Diagnostics:
    """Counts and timings of one ``run``, ``run_streaming``, ``load`` or ``status`` call.

    Invariants: for ``run`` and ``run_streaming``,
    ``cached_chunks + executed_chunks == total_chunks`` and
    ``cached_points + executed_points == total_points`` (failed points, with
    ``on_error="skip"``, count as executed); for ``load``,
    ``cached_points + missing_points == total_points``.

    Attributes
    ----------
    total_chunks, cached_chunks, executed_chunks
        Memo chunks requested; served without executing anything; needing execution.
    total_points, cached_points, executed_points
        The same, counted in points.
    reused_points
        Cached points served from chunk files other than their own chunk's file.
    missing_points, missing_chunks
        For ``load`` and ``status``: what is not stored (nothing is executed).
    exec_chunks
        Batches (tasks) submitted to the executor.
    stream_flushes
        Chunk files written.
    max_stream_buffer
        Most finished point outputs held in memory, waiting for their chunk to complete.
    max_in_flight
        Most exec chunks submitted and not yet returned, at once.
    failed_points
        With ``on_error="skip"``: the points whose ``exec_fn`` raised (their chunks' good
        points are stored; the next run executes only these).
    failures
        The same, as ``(point, "ExceptionType: message")`` pairs.
    quarantined_files
        Damaged or foreign cache files set aside during the call.
    wall_time, load_time, exec_time, write_time
        Seconds: the whole call; reading chunk files; waiting on workers; writing files.
    """

    total_chunks: int = 0
    cached_chunks: int = 0
    executed_chunks: int = 0
    total_points: int = 0
    cached_points: int = 0
    executed_points: int = 0
    reused_points: int = 0
    missing_chunks: int = 0
    missing_points: int = 0
    exec_chunks: int = 0
    stream_flushes: int = 0
    max_stream_buffer: int = 0
    max_in_flight: int = 0
    failed_points: list[Any] = field(default_factory=list)
    failures: list[tuple[Any, str]] = field(default_factory=list)
    quarantined_files: int = 0
    wall_time: float = 0.0
    load_time: float = 0.0
    exec_time: float = 0.0
    write_time: float = 0.0

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float):
                parts.append(f"{f.name}={value:.3f}")
            elif isinstance(value, list):
                parts.append(f"{f.name}=[{len(value)}]" if value else f"{f.name}=[]")
            else:
                parts.append(f"{f.name}={value}")
        return "Diagnostics(" + ", ".join(parts) + ")"

    def summary(self) -> str:
        """One line for humans."""
        text = (
            f"{self.total_points} points in {self.total_chunks} chunks: "
            f"{self.cached_points} cached, {self.executed_points} executed "
            f"({self.exec_chunks} exec chunks, {self.stream_flushes} chunk files written) "
            f"in {self.wall_time:.2f} s"
        )
        if self.failures:
            point, message = self.failures[0]
            text += f"; {len(self.failures)} points failed, e.g. {point!r:.80}: {message:.200}"
        return text


@dataclass
class Status:
    """What ``SwarmMemo.status`` found: stored vs missing, without executing or loading.

    A chunk counts as cached when its own file exists or every one of its points is
    stored in other chunk files (it would be assembled without executing anything).
    ``missing`` lists the sub-spec (axis -> values) of every chunk that needs execution;
    ``estimated_seconds`` is the compute time of the missing points on one worker.
    """

    total_points: int = 0
    cached_points: int = 0
    missing_points: int = 0
    total_chunks: int = 0
    cached_chunks: int = 0
    missing_chunks: int = 0
    missing: list[dict[str, list[object]]] = field(default_factory=list)
    estimated_seconds: float | None = None
    """Compute time of the missing points on one worker, from the timings stored with
    this params set's chunks (``0.0`` when nothing is missing; None when points are
    missing and nothing with timings is stored yet)."""
    coverage_reader: Callable[[], Coverage] | None = field(default=None, repr=False, compare=False)
    """Reads which point is stored, missing or failed (for :meth:`picture`)."""

    def __getstate__(self) -> dict[str, object]:
        """Pickles without its cache reader (a Status sent elsewhere keeps its counts;
        :meth:`picture` then needs a new ``status()`` call)."""
        state = dict(self.__dict__)
        state["coverage_reader"] = None
        return state

    def picture(self, axes: Sequence[str] | None = None) -> Picture:
        """Stored / missing / failed points over one or two axes (default: the first
        two), the other axes aggregated; ``picture().cells()`` gives one string per row
        (``#`` stored, ``.`` missing, ``X`` failed, ``1``-``9`` tenths stored). Read from
        the chunk files' metas and the failures runs recorded; needs the default points.
        """
        if self.coverage_reader is None:
            raise SpecError(
                "this Status has no cache to read (not made by SwarmMemo.status in this "
                "process): no picture"
            )
        return self.coverage_reader().picture(axes)

    def plot(self, axes: Sequence[str] | None = None, ax: Axes | None = None) -> Axes:
        """Draw :meth:`picture` with matplotlib (``pip install "swarm-memo[plot]"``):
        the fraction stored per cell, failed cells in red, axis values as ticks. Draws
        on ``ax`` (a new figure when None) and returns it."""
        from swarm_memo.core.picture import plot_picture

        return plot_picture(self.picture(axes), ax)

    def _repr_html_(self) -> str:
        """A notebook's view: the counts and the picture over the first two axes."""
        head = (
            f"<b>swarm-memo status</b>: {self.cached_points}/{self.total_points} points "
            f"stored, {self.missing_points} missing ({self.missing_chunks} of "
            f"{self.total_chunks} chunks to compute)"
        )
        try:
            return f"<div>{head}{self.picture().html()}</div>"
        except SpecError as exc:
            return f"<div>{head}<p>{html.escape(str(exc))}</p></div>"

    @property
    def complete(self) -> bool:
        """True when nothing needs to be executed."""
        return self.missing_points == 0

    @classmethod
    def of(
        cls,
        diag: Diagnostics,
        missing: list[dict[str, list[object]]],
        seconds_per_point: float | None = None,
        coverage_reader: Callable[[], Coverage] | None = None,
    ) -> Status:
        """The status of a read: the accounting of a run that executes nothing."""
        return cls(
            total_points=diag.total_points,
            cached_points=diag.cached_points,
            missing_points=diag.missing_points,
            total_chunks=diag.total_chunks,
            cached_chunks=diag.cached_chunks,
            missing_chunks=diag.missing_chunks,
            missing=missing,
            estimated_seconds=0.0
            if diag.missing_points == 0
            else None
            if seconds_per_point is None
            else seconds_per_point * diag.missing_points,
            coverage_reader=coverage_reader,
        )
