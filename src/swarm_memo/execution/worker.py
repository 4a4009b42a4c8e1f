"""Code that runs inside workers: evaluate ``exec_fn`` over one exec chunk of points.

The function and params travel as one cloudpickled blob tagged with a per-run token;
each worker unpickles a blob once and keeps the last few, so params and the function are
deserialized once per worker per run, not once per exec chunk.

A worker that crosses a process boundary returns its outputs already pickled (with the
chunk files' pickler), so an output that cannot be stored fails in the worker, as a
failure of the point that produced it, instead of somewhere in the executor's plumbing.
"""

from __future__ import annotations

import os
import pickle
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
from typing import Any

from swarm_memo.core.jobs import PointFailure
from swarm_memo.errors import RunInterrupted

_RESOLVED: OrderedDict[str, tuple[Callable[[Any, Any], Any], Any]] = OrderedDict()
_KEEP_RESOLVED = 4
PICKLE_PROTOCOL = 5
"""The protocol chunk files use: an output is storable iff it pickles with it."""
WATCHDOG_SECONDS = 0.25
"""How often a pool worker checks that its driver is still alive."""


@dataclass(frozen=True)
class BlobFile:
    """A run payload too big to travel with every task: workers on this machine read it
    from a file once per run instead."""

    path: str


def unpicklable_output_failure(index: int, exc: BaseException) -> PointFailure:
    """The failure of point ``index`` whose output could not be pickled (raised ``exc``).

    Used by workers, and by the driver when it encodes the outputs of in-process
    backends, so both report an unpicklable output the same way.
    """
    return PointFailure(
        index,
        type(exc).__qualname__,
        f"exec_fn returned an output that cannot be pickled: {exc}",
        "".join(traceback.format_exception(exc)),
        stage="pickle",
    )


def _resolve(token: str, blob: bytes | BlobFile) -> tuple[Callable[[Any, Any], Any], Any]:
    resolved = _RESOLVED.get(token)
    if resolved is None:
        import cloudpickle

        if isinstance(blob, BlobFile):
            with open(blob.path, "rb") as fh:
                blob = fh.read()
        resolved = cloudpickle.loads(blob)
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
    exec_fn: Callable[[Any, Any], Any],
    params: Any,
    points: Sequence[Any],
    skip_errors: bool,
    in_driver: bool = False,
    stopped: Callable[[], bool] | None = None,
) -> tuple[list[Any], list[int]]:
    """Evaluate ``exec_fn(params, point)`` for each point, in order.

    Once ``stopped()`` is true (the run is stopping) no further point starts: the outputs
    then end before the points do, and the driver counts the rest as not computed.

    Returns the outputs and the indices of the points that raised. A raising point's
    output is a :class:`PointFailure`; unless ``skip_errors``, evaluation stops there.
    Every exception counts, ``SystemExit`` and ``KeyboardInterrupt`` included, except a
    Ctrl-C of the driver while it runs ``exec_fn`` itself (``in_driver``).
    """
    outputs: list[Any] = []
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


def encode_result(outputs: list[Any], failed: list[int], skip_errors: bool) -> bytes:
    """Pickle ``(outputs, failed)``; an unpicklable output becomes its point's failure."""
    try:
        return pickle.dumps((outputs, failed), protocol=PICKLE_PROTOCOL)
    except Exception:
        pass  # find the culprits: one pickle per output, only on this rare path
    outputs, failed = _fail_unpicklable(outputs, failed, skip_errors)
    return pickle.dumps((outputs, failed), protocol=PICKLE_PROTOCOL)


class _Discard:
    """A file that drops what is written: pickling into it only checks picklability."""

    def write(self, data: bytes) -> int:
        return len(data)


def _out_of_band(buffer: pickle.PickleBuffer) -> bool:
    return False  # large buffers (numpy arrays) are not copied, only checked


def check_storable(
    outputs: list[Any], failed: list[int], skip_errors: bool
) -> tuple[list[Any], list[int]]:
    """In-process backends: an output that cannot be pickled (so cannot be stored)
    becomes its point's failure, exactly as :func:`encode_result` does in a worker.

    One pickling pass into nothing (big buffers out of band); per output only if it fails.
    """
    try:
        pickle.Pickler(_Discard(), PICKLE_PROTOCOL, buffer_callback=_out_of_band).dump(outputs)
        return outputs, failed
    except Exception:
        return _fail_unpicklable(outputs, failed, skip_errors)


def _fail_unpicklable(
    outputs: list[Any], failed: list[int], skip_errors: bool
) -> tuple[list[Any], list[int]]:
    """Each output that does not pickle replaced by its failure; unless ``skip_errors``,
    the outputs end at the first failure (evaluation would have stopped there)."""
    outputs = list(outputs)
    failed = list(failed)
    for index, output in enumerate(outputs):
        if isinstance(output, PointFailure):
            continue
        try:
            pickle.dumps(output, protocol=PICKLE_PROTOCOL)
        except Exception as exc:
            outputs[index] = unpicklable_output_failure(index, exc)
            failed = sorted([*failed, index])
            if not skip_errors:
                del outputs[index + 1 :]
                failed = [i for i in failed if i <= index]
                break
    return outputs, failed


def evaluate_timed(
    exec_fn: Callable[[Any, Any], Any],
    params: Any,
    points: Sequence[Any],
    skip_errors: bool,
    in_driver: bool = False,
    stopped: Callable[[], bool] | None = None,
) -> tuple[list[Any], list[int], float]:
    """:func:`evaluate` then :func:`check_storable`, plus the seconds it took
    (in-process backends)."""
    started = time.perf_counter()
    outputs, failed = evaluate(exec_fn, params, points, skip_errors, in_driver, stopped)
    outputs, failed = check_storable(outputs, failed, skip_errors)
    return outputs, failed, time.perf_counter() - started


def decode_result(payload: bytes) -> tuple[list[Any], list[int]]:
    """The driver's side of :func:`encode_result`."""
    outputs, failed = pickle.loads(payload)
    return outputs, failed


_WORKER_KEY: tuple[str, int] | None = None

TaskResult = tuple[bytes, tuple[str, int, int], float, float]
"""What :func:`run_batch` returns: the encoded result, which worker thread ran it, and
when it started and finished by that worker's clock."""


def _worker_key() -> tuple[str, int, int]:
    global _WORKER_KEY
    if _WORKER_KEY is None or _WORKER_KEY[1] != os.getpid():
        _WORKER_KEY = (socket.gethostname(), os.getpid())
    return (*_WORKER_KEY, threading.get_ident())


def run_batch(
    token: str, blob: bytes | BlobFile, points: Sequence[Any], skip_errors: bool
) -> TaskResult:
    """Task entry point shipped to process, user-executor and Dask workers."""
    global _CURRENT_RUN
    started = time.perf_counter()
    _CURRENT_RUN = token
    if token in _STOPPED_RUNS:  # queued before the stop: start none of its points
        payload = pickle.dumps(([], []), protocol=PICKLE_PROTOCOL)
        return payload, _worker_key(), started, time.perf_counter()
    exec_fn, params = _resolve(token, blob)
    outputs, failed = evaluate(
        exec_fn, params, points, skip_errors, stopped=lambda: token in _STOPPED_RUNS
    )
    payload = encode_result(outputs, failed, skip_errors)
    return payload, _worker_key(), started, time.perf_counter()


# ---------------------------------------------------------------------------- pool workers


_HELD_SIGNALS = frozenset(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGUSR1") if hasattr(signal, name)
)
_CURRENT_RUN = ""
"""The run token of the exec chunk this worker took last."""
_STOPPED_RUNS: set[str] = set()
"""Runs that are stopping: their points still to start here are dropped."""


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

    def __reduce__(self) -> tuple[Any, ...]:
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
