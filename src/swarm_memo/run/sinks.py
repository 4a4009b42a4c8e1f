"""Where the chunks of a request go once they are served: the one thing that differs
between ``run``, ``run_streaming``, ``load``, ``status`` and the frames.

The pipeline hands every chunk to a sink in completion order; a sink that keeps outputs
puts them back in order itself, so the output never depends on what came from the cache
or on the chunk order.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Protocol

from swarm_memo.core.jobs import MISSING
from swarm_memo.errors import CollateError
from swarm_memo.identity.grid import Chunk, Grid, strides


class Sink(Protocol):
    """Receives each chunk of a request once it is served."""

    wants_outputs: bool
    """False: outputs are never loaded for this sink (streaming, status)."""

    def take(
        self, chunk: Chunk, points: Sequence[object] | None, outputs: list[object], partial: bool
    ) -> None:
        """A chunk's outputs; ``points`` in the same order, or None when the chunk's points
        are the product of its bins. Only a ``partial`` chunk (a read) holds ``MISSING``
        where a point is not stored."""

    def missing(self, chunk: Chunk, count: int) -> None:
        """``count`` points of ``chunk`` are not served (reads only)."""

    def result(self) -> object:
        """What the call returns."""


class Discard:
    """Keep nothing: ``run_streaming`` and ``status``. Remembers what is missing."""

    wants_outputs = False

    def __init__(self) -> None:
        self.missing_specs: list[dict[str, list[object]]] = []

    def take(
        self, chunk: Chunk, points: Sequence[object] | None, outputs: list[object], partial: bool
    ) -> None:
        return None

    def missing(self, chunk: Chunk, count: int) -> None:
        self.missing_specs.append(chunk.split_spec)

    def result(self) -> object:
        return None


class Collated:
    """A user's ``collate_fn`` per chunk, then ``merge_fn`` in chunk (grid) order."""

    wants_outputs = True

    def __init__(
        self, collate: Callable[[list[object]], object], merge: Callable[[list[object]], object]
    ) -> None:
        self._collate = collate
        self._merge = merge
        self._values: dict[int, object] = {}
        # collate functions marked so (collate.records_frame) also get points and axes
        self._with_points = getattr(collate, "swarm_memo_points", False) is True

    def take(
        self, chunk: Chunk, points: Sequence[object] | None, outputs: list[object], partial: bool
    ) -> None:
        present = [o for o in outputs if o is not MISSING] if partial else outputs
        try:
            if self._with_points:
                listed = itertools.product(*chunk.bins) if points is None else points
                kept = [p for p, o in zip(listed, outputs, strict=True) if o is not MISSING]
                with_points: Callable[..., object] = self._collate
                self._values[chunk.index] = with_points(present, points=kept, axes=chunk.axes)
                return
            self._values[chunk.index] = self._collate(present)
        except Exception as exc:
            raise CollateError(
                f"collate_fn raised {type(exc).__name__} for chunk "
                f"{chunk.split_spec!r:.300}: {exc}",
                chunk=chunk.split_spec,
            ) from exc

    def missing(self, chunk: Chunk, count: int) -> None:
        return None

    def result(self) -> object:
        return self._merge([self._values[i] for i in sorted(self._values)])


class GridOrdered:
    """The default collation: every output in grid order (row-major over ``axis_order``),
    whatever the bin sizes and whatever came from the cache."""

    wants_outputs = True

    def __init__(self, grid: Grid) -> None:
        self._strides = strides([len(axis.values) for axis in grid.axes])
        self._outputs: list[object] = [MISSING] * math.prod(len(a.values) for a in grid.axes)
        self._placed = 0

    def take(
        self, chunk: Chunk, points: Sequence[object] | None, outputs: list[object], partial: bool
    ) -> None:
        """Place a chunk's outputs: one slice per run along the last axis (which is
        contiguous in the grid), so a one-axis chunk costs a single slice copy. A grid
        with no axes (``memo_chunk_spec={}``) has one point, ``()``: one run of one."""
        flat = self._outputs
        run = len(chunk.bins[-1]) if chunk.bins else 1
        at = 0
        for start in self._run_starts(chunk):
            flat[start : start + run] = outputs[at : at + run]
            at += run
        if not partial:
            self._placed += len(outputs)  # complete: counted towards a result with no gaps

    def _run_starts(self, chunk: Chunk) -> list[int]:
        """Flat grid positions where each run of the chunk's last axis starts."""
        strides = self._strides
        origin = zip(chunk.origin, strides, strict=True)
        starts = [sum(i * axis.bin_size * stride for (axis, i), stride in origin)]
        for values, stride in zip(chunk.bins[:-1], strides, strict=False):
            steps = range(0, len(values) * stride, stride)
            starts = [s + step for s in starts for step in steps]
        return starts

    def missing(self, chunk: Chunk, count: int) -> None:
        return None

    def result(self) -> list[object]:
        if self._placed == len(self._outputs):
            return self._outputs
        return [o for o in self._outputs if o is not MISSING]


class Pairs:
    """``(point, output)`` for every served point, in chunk order; a point that failed in
    this call has its :class:`PointFailure` as output (the frames show its error)."""

    wants_outputs = True

    def __init__(self) -> None:
        self._pairs: dict[int, list[tuple[object, object]]] = {}

    def take(
        self, chunk: Chunk, points: Sequence[object] | None, outputs: list[object], partial: bool
    ) -> None:
        listed = itertools.product(*chunk.bins) if points is None else points
        self._pairs[chunk.index] = [
            (p, o) for p, o in zip(listed, outputs, strict=True) if o is not MISSING
        ]

    def missing(self, chunk: Chunk, count: int) -> None:
        return None

    def result(self) -> list[tuple[object, object]]:
        return [pair for i in sorted(self._pairs) for pair in self._pairs[i]]
