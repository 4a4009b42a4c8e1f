"""What runs asked for, recorded next to their results, so a sweep can be watched from
anywhere (``swarm-memo progress`` / ``show``, ``Status.plot``).

A run that computes for more than :data:`RECORD_AFTER` seconds, or fails, writes in its
params set's folder two small immutable JSON files (written once, never rewritten; lost
ones only make a request invisible)::

    <set-id>/requests/<start-ms>-<run-id>.start.json   the request: axes and values,
                                                       total points, start, host, pid
    <set-id>/requests/<start-ms>-<run-id>.end.json     how it ended: outcome, points
                                                       executed, failed points

Axis values are stored as the chunk files' meta stores its key (``_meta_points``): the
value itself when JSON holds it exactly, else a digest and a repr; so readers never
unpickle anything and match the request's points with the chunk files' keys. Readers
never write. Recording never fails a run: an error while writing is ignored.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from swarm_memo.cache.layout import SetPaths
from swarm_memo.cache.meta_points import Token, item_token, key_items, key_meta, values_meta
from swarm_memo.core.textfmt import short_repr
from swarm_memo.errors import ExecError
from swarm_memo.identity.hashing import digest_bytes

if TYPE_CHECKING:
    from swarm_memo.core.diagnostics import Diagnostics
    from swarm_memo.run.plan import RunPlan
    from swarm_memo.stores.base import Store

__all__ = ["RequestInfo", "RequestLog", "read_requests", "request_from_plan"]

START_SUFFIX = ".start.json"
END_SUFFIX = ".end.json"
FORMAT = 1
MAX_RECORDED_VALUES = 200_000
"""Axis values recorded per request at most (beyond, the coverage is not drawn)."""
MAX_RECORDED_FAILURES = 1000
RECORD_AFTER = 1.0
"""Seconds a run computes before its request is recorded (failed runs: always)."""
_HOST = socket.gethostname()


@dataclass
class RequestInfo:
    """One recorded request and, once it ended, how."""

    set_id: str
    run_id: str
    started: float
    host: str
    pid: int
    digest: str
    description: str
    total_points: int
    axes: list[str]
    values: Mapping[str, object] | None
    """Per axis, the values as a chunk key stores them (``_meta_points``: a list of
    items or a ``{"range": ...}``); None when there were too many to record."""
    product: bool
    """Whether the points are the default ones (tuples of the product, in ``axes`` order)."""
    ended: float | None = None
    outcome: str | None = None
    executed_points: int = 0
    failed: list[dict[str, object]] = field(default_factory=list)
    """``{"values": [item per axis] | None, "point": repr, "error": "Type: message"}``."""

    def items(self) -> list[list[object]] | None:
        """Per axis (in ``axes`` order), the items of its values; None if not recorded."""
        if self.values is None:
            return None
        try:
            return [key_items(self.values[axis]) for axis in self.axes]
        except (KeyError, TypeError, ValueError):
            return None

    def tokens(self) -> list[list[Token]] | None:
        """Per axis (in ``axes`` order), the identity of every value."""
        items = self.items()
        return None if items is None else [[item_token(i) for i in axis] for axis in items]


# --------------------------------------------------------------------------- writing


def request_from_plan(plan: RunPlan, run_id: str, started: float) -> RequestInfo:
    """The request of a run, as recorded (axis values only when not too many)."""
    axes = plan.grid.axes
    names = [axis.name for axis in axes]
    count = sum(len(axis.values) for axis in axes)
    values: dict[str, object] | None = None
    if count <= MAX_RECORDED_VALUES:  # compact: runs of ints as ranges, as chunk keys
        values = {axis.name: values_meta(axis.values) for axis in axes}
    parts = sorted(a.name_encoding + b"".join(a.bin_digests) for a in axes)
    return RequestInfo(
        set_id=plan.pset.set_id,
        run_id=run_id,
        started=started,
        host=_HOST,
        pid=os.getpid(),
        digest=digest_bytes(b"".join(parts)).hex()[:16],
        description=describe_axes(names, [list(a.values) for a in axes]),
        total_points=math.prod(len(a.values) for a in axes),
        axes=names,
        values=values,
        product=plan.product,
    )


def describe_axes(names: Sequence[str], values: Sequence[Sequence[object]]) -> str:
    """``x: 40 values (0 .. 39); seed: 3 values (1 .. 3)``."""
    parts = []
    for name, vals in zip(names, values, strict=True):
        span = f" ({short_repr(vals[0], 20)} .. {short_repr(vals[-1], 20)})" if vals else ""
        parts.append(f"{name}: {len(vals)} value{'' if len(vals) == 1 else 's'}{span}")
    return "; ".join(parts)


class RequestLog:
    """Records one run's request once it has computed for :data:`RECORD_AFTER` seconds,
    and how it ended.

    A run that ends sooner, without failures, records nothing: two small files cost about
    as much as a small run's chunk writes (1-3 ms), and a run that short is not watched.
    A run that fails or is stopped always records its request and its end.
    """

    def __init__(self, plan: RunPlan) -> None:
        self._plan = plan
        self._key: str | None = None
        self._start: tuple[str, float] | None = None
        """``(run_id, started)`` once the run starts computing."""
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._written = False

    def start(self) -> None:
        """The run starts computing (the set's folder exists and is writable): note the
        request, and write it in :data:`RECORD_AFTER` seconds unless the run ended."""
        if self._start is not None:
            return
        started = time.time()
        run_id = uuid.uuid4().hex[:12]
        self._start = (run_id, started)  # described when written
        self._key = f"{self._plan.pset.paths.requests}/{int(started * 1000)}-{run_id}"
        self._timer = threading.Timer(RECORD_AFTER, self._write_start)
        self._timer.daemon = True
        self._timer.start()

    def _write_start(self) -> None:
        with self._lock:
            if not self._written and self._start is not None:
                self._written = True
                run_id, started = self._start
                self._write(
                    START_SUFFIX, _start_json(request_from_plan(self._plan, run_id, started))
                )

    def end(self, diag: Diagnostics, error: BaseException | None) -> None:
        """Write the end record (outcome, executed and failed points) of a recorded run,
        or of any run that failed or was stopped."""
        if self._start is None:
            return
        if self._timer is not None:  # joined: its thread holds the plan (and the memo)
            self._timer.cancel()
            self._timer.join()
            self._timer = None
        failures = list(diag.failures[:MAX_RECORDED_FAILURES])
        if isinstance(error, ExecError) and error.point is not None and not failures:
            failures.append((error.point, f"{error.exc_type}: {error.exc_message}"))
        if failures or error is not None:
            self._write_start()
        with self._lock:
            if not self._written:
                self._start = None
                return  # short and clean: nothing recorded
        failed = [self._failure(p, m) for p, m in failures]
        data = {
            "format": FORMAT,
            "ended": time.time(),
            "outcome": "done" if error is None else type(error).__name__,
            "executed_points": diag.executed_points,
            "failed_points": max(len(diag.failures), len(failed)),
            "failed": failed,
        }
        self._write(END_SUFFIX, data)
        self._start = None

    def _failure(self, point: object, message: str) -> dict[str, object]:
        names = [axis.name for axis in self._plan.grid.axes]
        values = None
        if self._plan.product and isinstance(point, tuple) and len(point) == len(names):
            stored = key_meta([(n, (v,)) for n, v in zip(names, point, strict=True)], names)
            values = [key_items(items)[0] for _, items in stored]
        return {"values": values, "point": short_repr(point, 200), "error": message[:500]}

    def _write(self, suffix: str, data: Mapping[str, object]) -> None:
        assert self._key is not None
        text = json.dumps(data, allow_nan=False, default=repr).encode()
        # A description, like params.json: no fsync, and never a reason to fail a run.
        with contextlib.suppress(OSError, ValueError, TypeError):
            self._plan.pset.store.write_if_absent(self._key + suffix, text, durable=False)


def _start_json(info: RequestInfo) -> dict[str, object]:
    return {
        "format": FORMAT,
        "run_id": info.run_id,
        "started": info.started,
        "host": info.host,
        "pid": info.pid,
        "digest": info.digest,
        "description": info.description,
        "total_points": info.total_points,
        "axes": info.axes,
        "values": info.values,
        "product": info.product,
    }


# --------------------------------------------------------------------------- reading


def read_requests(store: Store, set_id: str, since: float | None = None) -> list[RequestInfo]:
    """The requests recorded for a params set (started at or after ``since``), oldest
    first, each with its end record when there is one. Unreadable files are skipped."""
    prefix = SetPaths(set_id).requests
    names = set(store.names(prefix))
    found = []
    for name in sorted(n for n in names if n.endswith(START_SUFFIX)):
        stem = name[: -len(START_SUFFIX)]
        if since is not None and _started_ms(stem) < since * 1000:
            continue
        info = _read_start(store, f"{prefix}/{name}", set_id)
        if info is None:
            continue
        if stem + END_SUFFIX in names:
            _add_end(info, store.read(f"{prefix}/{stem}{END_SUFFIX}"))
        found.append(info)
    return found


def _started_ms(stem: str) -> float:
    try:
        return float(stem.split("-", 1)[0])
    except ValueError:
        return 0.0


def _read_start(store: Store, key: str, set_id: str) -> RequestInfo | None:
    try:
        data = json.loads(store.read(key) or b"")
        values = data.get("values")
        return RequestInfo(
            set_id=set_id,
            run_id=str(data["run_id"]),
            started=float(data["started"]),
            host=str(data.get("host", "?")),
            pid=int(data.get("pid", 0)),
            digest=str(data["digest"]),
            description=str(data.get("description", "")),
            total_points=int(data["total_points"]),
            axes=[str(a) for a in data["axes"]],
            values=values if isinstance(values, dict) else None,
            product=bool(data.get("product", True)),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _add_end(info: RequestInfo, raw: bytes | None) -> None:
    try:
        data = json.loads(raw or b"")
        info.ended = float(data["ended"])
        info.outcome = str(data.get("outcome", "?"))
        info.executed_points = int(data.get("executed_points", 0))
        failed = data.get("failed")
        info.failed = [f for f in failed if isinstance(f, dict)] if isinstance(failed, list) else []
    except (ValueError, KeyError, TypeError, AttributeError):
        return
