"""Code that runs inside workers: evaluate ``exec_fn`` over one exec chunk of points.

The function and params travel as one blob (:meth:`Codec.dumps_run`) tagged with a per-run token;
each worker unpickles a blob once and keeps the last few, so params and the function are
deserialized once per worker per run, not once per exec chunk.

A worker that crosses a process boundary returns its outputs already encoded by the run's
:class:`~swarm_memo.core.serial.Codec` (as chunk files store them), so an output that
cannot be stored fails in the worker, as a failure of the point that produced it,
instead of somewhere in the executor's plumbing.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import NamedTuple

from swarm_memo.core.jobs import PointFailure
from swarm_memo.core.serial import Codec, Outcome
from swarm_memo.core.types import ExecFn, Params
from swarm_memo.errors import RunInterrupted

_RESOLVED: OrderedDict[str, tuple[ExecFn, Params]] = OrderedDict()
_KEEP_RESOLVED = 4
WATCHDOG_SECONDS = 0.25
"""How often a pool worker checks that its driver is still alive."""

WorkerKey = tuple[str, int, int]
"""Which worker thread ran an exec chunk: host, pid, thread id."""


@dataclass(frozen=True)
class BatchResult:
    """What an exec chunk hands back, whatever carried it: one output per point (a
    :class:`PointFailure` for failed ones, the list cut after the first failure under
    ``on_error="raise"``), the indices of failed points, its compute seconds, and for
    pool workers (worker, start, end) so the engine can size its window."""

    outputs: list[object]
    failed: list[int]
    seconds: float
    timing: tuple[WorkerKey, float, float] | None = None


class EncodedBatch(NamedTuple):
    """What :func:`run_batch` returns across a process boundary: the outcome encoded by
    the run's :class:`Codec`, which worker thread ran it, and when it started and
    finished by that worker's clock."""

    payload: bytes
    worker: WorkerKey
    started: float
    finished: float

    def decode(self, codec: Codec) -> BatchResult:
        """The driver's side: the outputs decoded, with the worker's timing."""
        outputs, failed = codec.decode_outcome(self.payload)
        timing = (self.worker, self.started, self.finished)
        return BatchResult(outputs, failed, self.finished - self.started, timing)


TaskResult = BatchResult | EncodedBatch
"""What a task's future holds: the result itself (in-process tasks) or its encoded form
(tasks that crossed a process boundary: the driver decodes it)."""


@dataclass(frozen=True)
class BlobFile:
    """A run payload too big to travel with every task: workers on this machine read it
    from a file once per run instead."""

    path: str


def _resolve(token: str, blob: bytes | BlobFile, codec: Codec) -> tuple[ExecFn, Params]:
    resolved = _RESOLVED.get(token)
    if resolved is None:
        if isinstance(blob, BlobFile):
            with open(blob.path, "rb") as fh:
                blob = fh.read()
        resolved = codec.loads_run(blob)
        _RESOLVED[token] = resolved
        while len(_RESOLVED) > _KEEP_RESOLVED:
            _RESOLVED.popitem(last=False)
    return resolved


def _is_driver_interrupt(exc: BaseException, in_driver: bool) -> bool:
    """A real Ctrl-C or a second stop signal reaches the driver's main thread only;
    anything else was raised by ``exec_fn`` itself and is a failure of its point."""
    return (
        in_driver
        and isinstance(exc, (KeyboardInterrupt, RunInterrupted))
        and threading.current_thread() is threading.main_thread()
    )


def evaluate(
    exec_fn: ExecFn,
    params: Params,
    points: Sequence[object],
    skip_errors: bool,
    in_driver: bool = False,
    stopped: Callable[[], bool] | None = None,
) -> Outcome:
    """Evaluate ``exec_fn(params, point)`` for each point, in order.

    Once ``stopped()`` is true (the run is stopping) no further point starts: the outputs
    then end before the points do, and the driver counts the rest as not computed.

    Returns the outputs and the indices of the points that raised. A raising point's
    output is a :class:`PointFailure`; unless ``skip_errors``, evaluation stops there.
    Every exception counts, ``SystemExit`` and ``KeyboardInterrupt`` included, except a
    Ctrl-C of the driver while it runs ``exec_fn`` itself (``in_driver``).
    """
    outputs: list[object] = []
    failed: list[int] = []
    for index, point in enumerate(points):
        if stopped is not None and stopped():
            break
        try:
            outputs.append(exec_fn(params, point))
        except BaseException as exc:
            if _is_driver_interrupt(exc, in_driver):
                raise
            outputs.append(
                PointFailure(index, type(exc).__qualname__, str(exc), traceback.format_exc())
            )
            failed.append(index)
            if not skip_errors:
                break
    return outputs, failed


def evaluate_in_driver(
    exec_fn: ExecFn,
    params: Params,
    points: Sequence[object],
    skip_errors: bool,
    stopped: Callable[[], bool],
    codec: Codec,
) -> BatchResult:
    """In-process backends: :func:`evaluate` in the driver, each output checked to be
    storable as a worker's is (:meth:`Codec.check_outcome`), with the seconds it took."""
    started = time.perf_counter()
    outputs, failed = evaluate(exec_fn, params, points, skip_errors, True, stopped)
    outputs, failed = codec.check_outcome(outputs, failed, skip_errors)
    return BatchResult(outputs, failed, time.perf_counter() - started)


_WORKER_KEY: tuple[str, int] | None = None


def _worker_key() -> WorkerKey:
    global _WORKER_KEY
    if _WORKER_KEY is None or _WORKER_KEY[1] != os.getpid():
        _WORKER_KEY = (socket.gethostname(), os.getpid())
    return (*_WORKER_KEY, threading.get_ident())


def run_batch(
    token: str,
    blob: bytes | BlobFile,
    points: Sequence[object],
    skip_errors: bool,
    codec: Codec,
    run_started: float = 0.0,
) -> EncodedBatch:
    """Task entry point shipped to process, user-executor and Dask workers.

    ``run_started`` is the driver's ``time.time()`` when the run started: a stop signal
    this worker got since then stops the run here even if it came before the worker's
    first exec chunk of the run (while it was starting, or between two runs' chunks)."""
    global _CURRENT_RUN
    started = time.perf_counter()
    if token != _CURRENT_RUN and _LAST_STOP_SIGNAL >= run_started > 0:
        _STOPPED_RUNS.add(token)
    _CURRENT_RUN = token
    if token in _STOPPED_RUNS:  # queued before the stop: start none of its points
        payload = codec.encode_outcome([], [], skip_errors)
        return EncodedBatch(payload, _worker_key(), started, time.perf_counter())
    exec_fn, params = _resolve(token, blob, codec)
    outputs, failed = evaluate(
        exec_fn, params, points, skip_errors, stopped=lambda: token in _STOPPED_RUNS
    )
    payload = codec.encode_outcome(outputs, failed, skip_errors)
    return EncodedBatch(payload, _worker_key(), started, time.perf_counter())


# ---------------------------------------------------------------------------- pool workers


_HELD_SIGNALS = frozenset(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGUSR1") if hasattr(signal, name)
)
_CURRENT_RUN = ""
"""The run token of the exec chunk this worker took last."""
_STOPPED_RUNS: set[str] = set()
"""Runs that are stopping: their points still to start here are dropped."""
_LAST_STOP_SIGNAL = 0.0
"""``time.time()`` of the last SIGUSR1 this worker got."""


def _ignore_signal(signum: int, frame: FrameType | None) -> None:
    """Workers leave SIGTERM and SIGINT to the driver, which tells them (SIGUSR1) to
    start no new point, or kills its pool.

    A no-op handler rather than SIG_IGN: handlers reset on exec, so processes that
    ``exec_fn`` starts still get the default behaviour.
    """


def _stop_signal(signum: int, frame: FrameType | None) -> None:
    """SIGUSR1: the run this worker computes for starts no new point here (the point
    running finishes, exec chunks queued here come back empty). The driver sends it to
    its workers when it stops; ``sbatch --signal=USR1`` sends it to every process of the
    job step. It never kills the worker."""
    global _LAST_STOP_SIGNAL
    _LAST_STOP_SIGNAL = time.time()
    if _CURRENT_RUN:
        _STOPPED_RUNS.add(_CURRENT_RUN)


def _driver_gone(driver_pid: int, parent_pid: int) -> bool:
    if os.getppid() != parent_pid:  # reparented: the process that started us has died
        return True
    try:
        os.kill(driver_pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _watch_driver(driver_pid: int, parent_pid: int) -> None:
    while not _driver_gone(driver_pid, parent_pid):
        time.sleep(WATCHDOG_SECONDS)
    os._exit(1)  # even in the middle of a long exec_fn: nobody is left to receive it


PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal this process gets when the thread that started it ends."""


def _long_lived_thread() -> bool:
    """Whether the current thread lives as long as the pool it starts workers for: the
    main thread, or loky's executor manager thread (it ends only when the pool shuts
    down). A worker started from any other thread must not die with that thread."""
    thread = threading.current_thread()
    return thread is threading.main_thread() or type(thread).__name__ == "_ExecutorManagerThread"


class StartedFromLongLivedThread:
    """An initializer argument that loky pickles in the thread starting each worker:
    it arrives in the worker as whether that thread outlives the pool (so the worker may
    die with it)."""

    def __reduce__(self) -> tuple[type[bool], tuple[bool]]:
        return (bool, (_long_lived_thread(),))


def _die_with_parent(parent_pid: int) -> bool:
    """On Linux, have the kernel SIGKILL this worker when the thread that started it
    ends (the driver killed by ``kill -9`` included), even while ``exec_fn`` runs C code
    that never releases the GIL, where the watchdog thread cannot run. Whether it is set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):  # no libc or no prctl: the watchdog still runs
        return False
    if os.getppid() != parent_pid:  # the parent died before prctl: no signal will come
        os._exit(1)
    return True


def init_pool_worker(driver_pid: int, die_with_parent: bool = False) -> None:
    """Initializer of swarm-memo's own process pools.

    SIGTERM and SIGINT are ignored (the driver decides: Slurm and Ctrl-C signal every
    process of a job step); SIGUSR1 stops the current run's points from starting here
    (the driver sends it when it stops) but never kills the worker.

    Workers never outlive a driver killed by ``kill -9``: on Linux the kernel kills this
    worker when its driver dies (prctl ``PR_SET_PDEATHSIG``, when the worker was started
    from a thread that outlives the pool: ``die_with_parent``), even inside C code that
    holds the GIL; a daemon thread also ends it once its driver is gone (other systems,
    workers started from short-lived threads).
    """
    for name in ("SIGTERM", "SIGINT"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _ignore_signal)
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, _stop_signal)
    if hasattr(signal, "pthread_sigmask"):  # held while the driver started this worker
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD_SIGNALS)
    parent_pid = os.getppid()
    if die_with_parent:  # started by the driver itself
        if parent_pid != driver_pid:
            os._exit(1)  # the driver died while this worker started: reparented already
        _die_with_parent(parent_pid)
    watchdog = threading.Thread(  # also where prctl is unavailable or was not used
        target=_watch_driver,
        args=(driver_pid, parent_pid),
        name="swarm-memo-driver-watchdog",
        daemon=True,
    )
    watchdog.start()
