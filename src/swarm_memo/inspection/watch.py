"""Progress of whole sweeps, read from a cache alone: ``swarm-memo progress`` and
``swarm-memo show``.

A sweep is the set of recorded requests (``_requests_log``) of one params set with the
same axis values (their digest): the tasks of a job array, or the same script run again.
Its progress comes from the chunk files' JSON metas: which of its points are stored
(``_coverage``), and their provenance (``computed_at``, ``computed_points``, ``host``,
``pid``) for the rate and who is writing. Nothing is unpickled and nothing is written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from swarm_memo.cache.chunk_meta import ChunkMeta
from swarm_memo.cache.listing import ChunkFacts, resolve_set, set_ids
from swarm_memo.cache.meta_points import chunk_key, count_distinct_points, item_display, item_token
from swarm_memo.core.picture import FAILED, STORED, Coverage
from swarm_memo.core.textfmt import format_age, iso_time, sort_values
from swarm_memo.errors import InspectError
from swarm_memo.run.coverage import coverage_of
from swarm_memo.run.requests_log import RequestInfo, describe_axes, read_requests
from swarm_memo.stores.base import Store

__all__ = ["SweepProgress", "format_progress", "request_coverage", "sweep_progress"]

RATE_WINDOW = 600.0
"""Seconds over which the rate of a sweep is measured."""
WRITERS_WINDOW = 300.0
"""A process that wrote a chunk file within this many seconds counts as writing."""


@dataclass
class SweepProgress:
    """Where one sweep (requests of one params set with the same axis values) stands."""

    set_id: str
    digest: str
    description: str
    total: int
    stored: int
    failed: int
    started: float
    last_start: float
    runs: int
    running: int
    """Runs that recorded their start but not their end (running, or killed)."""
    points_per_minute: float
    eta_seconds: float | None
    writers: dict[str, int] = field(default_factory=dict)
    """``"host pid N"`` -> points written within :data:`WRITERS_WINDOW`."""
    exact: bool = True
    """False when the stored count could not be matched point by point (estimated)."""
    errors: list[str] = field(default_factory=list)
    """A few recorded failures of points still not stored, ``"point: Type: message"``."""

    @property
    def missing(self) -> int:
        return max(0, self.total - self.stored - self.failed)

    def to_json(self) -> dict[str, object]:
        return {
            "set": self.set_id,
            "request": self.digest,
            "description": self.description,
            "total_points": self.total,
            "stored_points": self.stored,
            "failed_points": self.failed,
            "missing_points": self.missing,
            "exact": self.exact,
            "started": iso_time(self.started),
            "last_started": iso_time(self.last_start),
            "runs": self.runs,
            "runs_not_ended": self.running,
            "points_per_minute": round(self.points_per_minute, 3),
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
            "writers": self.writers,
            "errors": self.errors,
        }


def _computed_at(meta: ChunkMeta) -> tuple[float, Mapping[str, object]] | None:
    info = meta.info
    if not isinstance(info.get("computed_at"), str):
        return None
    try:
        return datetime.fromisoformat(info["computed_at"]).timestamp(), info
    except ValueError:
        return None


def _activity(metas: Sequence[ChunkMeta], now: float, since: float) -> tuple[float, dict[str, int]]:
    """Points computed per minute since ``since`` (at most :data:`RATE_WINDOW` ago), and
    points per writer within :data:`WRITERS_WINDOW`."""
    window = min(RATE_WINDOW, max(60.0, now - since))
    computed = 0
    writers: dict[str, int] = {}
    for meta in metas:
        found = _computed_at(meta)
        if found is None:
            continue
        at, info = found
        points = info.get("computed_points")
        points = points if isinstance(points, int) else 0
        if at >= now - window:
            computed += points
        if at >= now - WRITERS_WINDOW:
            who = f"{info.get('host', '?')} pid {info.get('pid', '?')}"
            writers[who] = writers.get(who, 0) + points
    return computed * 60.0 / window, writers


def _group(requests: list[RequestInfo]) -> dict[str, list[RequestInfo]]:
    groups: dict[str, list[RequestInfo]] = {}
    for request in requests:
        groups.setdefault(request.digest, []).append(request)
    return groups


def _failures(requests: Sequence[RequestInfo]) -> list[Mapping[str, object]]:
    return [f for r in requests for f in r.failed]


def _one_sweep(
    set_id: str,
    runs: list[RequestInfo],
    metas: list[ChunkMeta],
    all_failed: Sequence[Mapping[str, object]],
    now: float,
) -> SweepProgress:
    latest = runs[-1]
    started = min(r.started for r in runs)
    rate, writers = _activity(metas, now, started)
    exact = latest.product and latest.values is not None
    errors: list[str] = []
    if exact:
        cover = coverage_of(latest, metas, all_failed)
        stored, failed = cover.count(STORED), cover.count(FAILED)
        errors = _still_failed(cover, all_failed)
    else:  # custom points or values not recorded: every distinct stored point, at most all
        stored = min(latest.total_points, count_distinct_points(metas)[0])
        failed = min(latest.total_points - stored, len(latest.failed))
    left = max(0, latest.total_points - stored - failed)
    eta = 0.0 if left == 0 else (left / rate * 60.0 if rate > 0 else None)
    return SweepProgress(
        set_id, latest.digest, latest.description, latest.total_points, stored, failed,
        started, latest.started, len(runs), sum(r.ended is None for r in runs), rate, eta,
        writers, exact, errors,
    )  # fmt: skip


def _still_failed(
    cover: Coverage, failures: Sequence[Mapping[str, object]], most: int = 3
) -> list[str]:
    if not cover.count(FAILED):
        return []
    seen: dict[str, str] = {}
    for failure in reversed(failures):  # the newest message of each point
        seen.setdefault(str(failure.get("point")), str(failure.get("error")))
    return [f"{point}: {error}" for point, error in list(seen.items())[:most]]


def sweep_progress(
    store: Store, prefix: str | None, now: float, since: float | None = None
) -> list[SweepProgress]:
    """Every sweep with a request recorded since ``since`` (all when None), in the set
    named by ``prefix`` or in every set; the most recently started first."""
    sets = [resolve_set(store, prefix)] if prefix else set_ids(store)
    found = []
    for set_id in sets:
        requests = read_requests(store, set_id)
        if not requests:
            continue
        metas = ChunkFacts.read(store, set_id).metas
        failed = _failures(requests)
        for runs in _group(requests).values():
            if since is None or runs[-1].started >= since:
                found.append(_one_sweep(set_id, runs, metas, failed, now))
    found.sort(key=lambda s: s.last_start, reverse=True)
    return found


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def format_progress(sweeps: Sequence[SweepProgress], now: float) -> list[str]:
    """The text of ``swarm-memo progress``: a few lines per sweep."""
    lines = []
    for s in sweeps:
        percent = 100 * s.stored // s.total if s.total else 100
        approx = "" if s.exact else "~"
        lines.append(f"{s.set_id[:12]} request {s.digest}: {s.description}")
        counts = f"  {approx}{s.stored}/{s.total} points stored ({percent}%)"
        counts += f", {s.failed} failed, {s.missing} missing"
        if s.missing:
            counts += f"; {s.points_per_minute:.1f} points/min over the last 10 min"
            if s.eta_seconds is not None:
                counts += f", ETA {_clock(s.eta_seconds)} ({iso_time(now + s.eta_seconds)})"
            else:
                counts += ", no ETA (nothing written lately)"
        lines.append(counts)
        ago = format_age(now - s.last_start)
        runs = f"  runs: {s.runs} started (last {ago} ago), {s.running} without an end record"
        lines.append(runs)
        if s.writers:
            who = ", ".join(f"{w} ({n} points)" for w, n in sorted(s.writers.items()))
            lines.append(f"  writing in the last {int(WRITERS_WINDOW // 60)} min: {who}")
        lines.extend(f"  failed: {error}" for error in s.errors)
    return lines


def request_coverage(
    store: Store, prefix: str, request: str | None = None
) -> tuple[RequestInfo, Coverage]:
    """The newest recorded request of a params set (or the one whose digest starts with
    ``request``) and the state of each of its points."""
    set_id = resolve_set(store, prefix)
    requests = read_requests(store, set_id)
    metas = ChunkFacts.read(store, set_id).metas
    if request:
        requests = [r for r in requests if r.digest.startswith(request)]
        if not requests:
            raise InspectError(f"no recorded request matching {request!r} in {set_id[:12]}")
    latest = requests[-1] if requests else _stored_values(set_id, metas)
    if not latest.product:
        raise InspectError("the picture needs the default points (no custom enumerate_points)")
    return latest, coverage_of(latest, metas, _failures(requests))


def _stored_values(set_id: str, metas: list[ChunkMeta]) -> RequestInfo:
    """Without a recorded request (only short clean runs): the grid of the axis values
    found in the chunk files, sorted."""
    axes: list[str] = next((list(m.axes) for m in metas if m.axes), [])
    if not axes:
        raise InspectError(f"params set {set_id[:12]} has no readable chunk file to draw")
    per_axis: dict[str, dict[object, object]] = {axis: {} for axis in axes}
    for meta in metas:
        for axis, items in chunk_key(meta) or ():
            for item in items:
                per_axis.setdefault(axis, {}).setdefault(item_token(item), item)
    values = {axis: sort_values(list(per_axis[axis].values())) for axis in axes}
    names = [axis for axis in axes]
    return RequestInfo(
        set_id, "stored", 0.0, "-", 0, "stored-values",
        describe_axes(names, [[item_display(i) for i in values[a]] for a in names]),
        math.prod(len(values[a]) for a in names), names, values, True,
    )  # fmt: skip
