"""What a finished (or stopped) job writes: the points it computed, with their code and
timings, never copies of outputs stored in other files.

A chunk file written by a run holds the points that run computed, each tagged with the
fingerprint of the code that computed it, plus every point of the file it replaces that
it did not compute again (with *their* code): outputs are never relabelled. A chunk whose
every point is then in the file is written whole (as a product when its points are the
product of its bins); otherwise as a *partial* chunk, which point-level reuse serves.
A call that computes nothing writes nothing.
"""

from __future__ import annotations

import os
import platform
import socket
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from swarm_memo._version import __version__
from swarm_memo.cache.chunk_meta import point_codes_of
from swarm_memo.cache.codec import ChunkRecord
from swarm_memo.core.jobs import MISSING, ChunkJob, PointFailure
from swarm_memo.core.serial import DEFAULT_CODEC, Codec
from swarm_memo.errors import ExecError
from swarm_memo.identity.hashing import point_digest
from swarm_memo.run.plan import RunPlan

_HOST = socket.gethostname()


def computed_positions(job: ChunkJob) -> list[int]:
    """Positions of the points this run computed successfully for ``job``."""
    if job.remaining == 0 and job.failed == 0:  # finished without a failure: all of them
        return list(job.missing)
    outputs = job.outputs
    return [
        i
        for i in job.missing
        if outputs[i] is not MISSING and not isinstance(outputs[i], PointFailure)
    ]


def chunk_record(
    plan: RunPlan, job: ChunkJob, replaced: ChunkRecord | None
) -> tuple[ChunkRecord, list[bytes] | None] | None:
    """What to write for a job: its computed points, plus the points of ``replaced`` (the
    file of that name) it did not compute; None when it computed nothing."""
    computed = computed_positions(job)
    if not computed:
        return None
    chunk = plan.named_chunks[job.index][0]
    if replaced is None and len(computed) == len(job.points):  # the common case: all new
        points = None if job.product else job.points
        digests = job.digests
        outputs, codes = job.outputs, [plan.code]
        complete = True
    else:
        points, outputs, digests, codes, complete = _merge(plan, job, computed, replaced)
    code, point_codes = point_codes_of(codes)
    # every point the enumerator listed, in its order, and no other: stamped with it
    exact = complete and (points is None or len(points) == len(job.points))
    record = ChunkRecord(
        plan.pset.set_id,
        plan.pset.cache_version,
        chunk.key,
        chunk.axes,
        points,
        outputs,
        partial=not complete,
        code=code,
        info=provenance(job, len(computed)),
        key_digest=chunk.key_digest().hex(),
        point_digests=None if points is None else digests,
        point_codes=point_codes,
        enumerator=plan.enumerator_code if exact else None,
    )
    return record, digests


def _merge(
    plan: RunPlan, job: ChunkJob, computed: list[int], replaced: ChunkRecord | None
) -> tuple[list[object] | None, list[object], list[bytes] | None, list[str | None], bool]:
    """Points, outputs, digests and codes of a job's computed points merged with the
    points of the file it replaces; and whether every point of the chunk is there."""
    chunk = plan.named_chunks[job.index][0]
    all_digests = job.digests or plan.point_digests(chunk, job.points)
    entries: dict[int, tuple[object, str | None]] = {
        i: (job.outputs[i], plan.code) for i in computed
    }
    extra: list[tuple[object, object, str | None, bytes]] = []  # points the chunk does not have
    if replaced is not None:
        position = {d: i for i, d in enumerate(all_digests)}
        old_points = replaced.resolved_points()
        old_digests = replaced.point_digests or [point_digest(p) for p in old_points]
        for j, digest in enumerate(old_digests):
            i = position.get(digest)
            if i is None:
                extra.append((old_points[j], replaced.outputs[j], replaced.code_at(j), digest))
            elif i not in entries:
                entries[i] = (replaced.outputs[j], replaced.code_at(j))
    complete = len(entries) == len(job.points)
    if complete and not extra:
        order: Sequence[int] = range(len(job.points))
        points = None if job.product else job.points
    else:
        order = sorted(entries)
        points = [job.points[i] for i in order] + [e[0] for e in extra]
    outputs = [entries[i][0] for i in order] + [e[1] for e in extra]
    codes = [entries[i][1] for i in order] + [e[2] for e in extra]
    digests = [all_digests[i] for i in order] + [e[3] for e in extra]
    return points, outputs, None if points is None else digests, codes, complete


def provenance(job: ChunkJob, computed: int) -> dict[str, object]:
    """Timings and provenance stored with a chunk (informative; never part of a key)."""
    return {
        "compute_seconds": round(job.seconds, 6),
        "computed_points": max(0, computed),
        "computed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": _HOST,
        "pid": os.getpid(),
        "swarm_memo": __version__,
        "python": platform.python_version(),
    }


def unpicklable_error(
    record: ChunkRecord, codec: Codec = DEFAULT_CODEC
) -> Callable[[Exception], Exception]:
    """Turn a failure to pickle a chunk into an ExecError naming the offending point."""

    def error(exc: Exception) -> Exception:
        points = record.resolved_points()
        for point, output in zip(points, record.outputs, strict=True):
            point_exc = codec.storable_error(output)
            if point_exc is not None:
                return ExecError(
                    f"exec_fn returned an output that cannot be stored (pickled) at point "
                    f"{point!r:.200}: {type(point_exc).__name__}: {point_exc}",
                    point=point,
                    exc_type=type(point_exc).__name__,
                    exc_message=str(point_exc),
                )
        return exc

    return error
