"""What a finished (or stopped) job writes: its chunk record, with timings and provenance.

A complete chunk is written whole (as a product when its points are the product of its
bins); a chunk with failed points, or left unfinished by a stop or an error, is written as
a *partial* chunk of its known points, which point-level reuse serves. Points of the file
it replaces that the run did not ask for (another enumerator stored them) are kept.
"""

from __future__ import annotations

import os
import pickle
import platform
import socket
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ._codec import ChunkRecord
from ._plan import RunPlan
from ._scheduler import MISSING, ChunkJob
from ._version import __version__
from ._worker import PointFailure
from .errors import ExecError

Others = tuple[list[Any], list[Any], list[bytes]]
"""Points, outputs and digests of a replaced file that a run keeps."""

_HOST = socket.gethostname()


def chunk_record(
    plan: RunPlan, job: ChunkJob, others: Others | None
) -> tuple[ChunkRecord, list[bytes] | None] | None:
    """What to write for a job: the whole chunk, or a partial chunk of its known points;
    None when nothing new is worth writing."""
    chunk = plan.named_chunks[job.index][0]
    pset = plan.pset
    complete = not job.failed and not job.remaining
    points: list[Any] | None
    if complete and others is None:
        points = None if job.product else job.points
        outputs, digests = job.outputs, job.digests
    else:
        good = [
            i
            for i, o in enumerate(job.outputs)
            if o is not MISSING and not isinstance(o, PointFailure)
        ]
        if len(good) <= job.reused:
            return None  # nothing new: the reused points are stored elsewhere already
        all_digests = job.digests or plan.point_digests(chunk, job.points)
        points = [job.points[i] for i in good]
        outputs = [job.outputs[i] for i in good]
        digests = [all_digests[i] for i in good]
        if others is not None:
            points += others[0]
            outputs += others[1]
            digests += others[2]
    record = ChunkRecord(
        pset.set_id,
        pset.cache_version,
        chunk.key,
        chunk.axes,
        points,
        outputs,
        partial=not complete,
        code=plan.code,
        info=provenance(job),
        key_digest=chunk.key_digest().hex(),
        point_digests=None if points is None else digests,
    )
    return record, digests


def provenance(job: ChunkJob) -> dict[str, Any]:
    """Timings and provenance stored with a chunk (informative; never part of a key)."""
    if job.remaining:  # stopped early: count what came back
        computed = sum(1 for i in job.missing if job.outputs[i] is not MISSING) - job.failed
    else:
        computed = len(job.missing) - job.failed
    return {
        "compute_seconds": round(job.seconds, 6),
        "computed_points": max(0, computed),
        "computed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": _HOST,
        "pid": os.getpid(),
        "swarm_memo": __version__,
        "python": platform.python_version(),
    }


def unpicklable_error(record: ChunkRecord) -> Callable[[Exception], Exception]:
    """Turn a failure to pickle a chunk into an ExecError naming the offending point."""

    def error(exc: Exception) -> Exception:
        points = record.resolved_points()
        for point, output in zip(points, record.outputs, strict=True):
            try:
                pickle.dumps(output, protocol=5)
            except Exception as point_exc:
                return ExecError(
                    f"exec_fn returned an output that cannot be stored (pickled) at point "
                    f"{point!r:.200}: {type(point_exc).__name__}: {point_exc}",
                    point=point,
                    exc_type=type(point_exc).__name__,
                    exc_message=str(point_exc),
                )
        return exc

    return error
