"""The :class:`Backend` the engine submits to: one class per kind of executor.

Each answers the same questions: how to submit a task, how many workers there are, what
a task carries instead of the run's pickled payload, how to stop everything now, and
whether an exception means a worker died. Which one a memo uses is decided in
:mod:`swarm_memo.execution.executors`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor, Future, ThreadPoolExecutor
from typing import Protocol, TypeGuard, TypeVar

from swarm_memo.core.serial import DEFAULT_CODEC, Codec
from swarm_memo.core.types import ExecFn, Params
from swarm_memo.errors import SpecTypeError
from swarm_memo.execution.pool import LokyPool, signals_held
from swarm_memo.execution.worker import (
    BatchResult,
    BlobFile,
    EncodedBatch,
    TaskResult,
    evaluate_in_driver,
    run_batch,
)
from swarm_memo.identity.hashing import short_description

T = TypeVar("T")

INLINE_BLOB_BYTES = 64 * 1024
"""Payloads (exec_fn + params) smaller than this travel with each task."""
SLURM_CPUS_VARIABLE = "SLURM_CPUS_PER_TASK"


class Backend(Protocol):
    """An executor as the engine sees it, for one run: it owns the wire format (how a
    run's function and params reach the workers, what a task carries and returns)."""

    workers: int
    """How many exec chunks can run at once."""
    in_flight_per_worker: int
    """Exec chunks to keep submitted per worker at the start of a run (the engine grows
    it while workers wait for work; the memo's next run starts where this one ended)."""

    def start_run(
        self, exec_fn: ExecFn, params: Params, stop: Callable[[], bool], codec: Codec
    ) -> None:
        """Get the run's ``exec_fn`` and params to the workers (raising
        :class:`SpecTypeError` if they cannot travel); ``stop()`` says the run stops;
        ``codec`` encodes what crosses a process boundary."""
        ...

    def submit_batch(self, points: list[object], skip_errors: bool) -> Future[TaskResult]:
        """Schedule one exec chunk; its future's result goes to :meth:`batch_result`."""
        ...

    def batch_result(self, raw: TaskResult) -> BatchResult:
        """The result of a future from :meth:`submit_batch`, decoded."""
        ...

    def release(self) -> None:
        """Free what :meth:`start_run` made, once the run is over (also after a failure)."""
        ...

    def abort(self) -> None:
        """Stop as fast as possible (Ctrl-C, worker death); the next run still works."""
        ...

    def stop_starting(self) -> None:
        """The run is stopping: workers start none of its points from now on (in-process
        tasks check the run's stop request between points themselves)."""
        ...

    def close_after_stop(self) -> None:
        """A stopped run is over: shut down what the stop left behind, cleanly."""
        ...

    def is_worker_death(self, exc: BaseException) -> bool:
        """Whether ``exc``, raised by a task's future, means a worker died."""
        ...


def usable_cpus() -> int:
    """The CPUs this process may use: affinity, cgroup quota and ``SLURM_CPUS_PER_TASK``."""
    from loky import cpu_count

    count = int(cpu_count())
    slurm = os.environ.get(SLURM_CPUS_VARIABLE, "").strip()
    if slurm.isdigit() and int(slurm) >= 1:
        count = min(count, int(slurm))
    return max(1, count)


class _InProcess:
    """Shared behaviour of backends whose tasks run in this process: tasks take
    ``exec_fn`` and params as objects and return outputs unpickled (each output is
    checked to pickle, as a worker's is)."""

    in_process = True
    in_flight_per_worker = 2
    _run: tuple[ExecFn, Params, Callable[[], bool], Codec] | None = None

    def submit(self, fn: Callable[..., T], /, *args: object) -> Future[T]:
        raise NotImplementedError

    def start_run(
        self, exec_fn: ExecFn, params: Params, stop: Callable[[], bool], codec: Codec
    ) -> None:
        self._run = (exec_fn, params, stop, codec)

    def submit_batch(self, points: list[object], skip_errors: bool) -> Future[TaskResult]:
        assert self._run is not None
        exec_fn, params, stop, codec = self._run
        return self.submit(evaluate_in_driver, exec_fn, params, points, skip_errors, stop, codec)

    def batch_result(self, raw: TaskResult) -> BatchResult:
        assert isinstance(raw, BatchResult)  # never encoded: it stayed in this process
        return raw

    def release(self) -> None:
        self._run = None

    def abort(self) -> None:
        pass  # threads cannot be killed; the engine cancels what has not started

    def stop_starting(self) -> None:
        pass  # each task checks the run's stop request between points

    def close_after_stop(self) -> None:
        pass

    def is_worker_death(self, exc: BaseException) -> bool:
        return False


class SerialBackend(_InProcess):
    """Runs each task at submission, in the calling thread: no pool, easy debugging."""

    workers = 1

    def submit(self, fn: Callable[..., T], /, *args: object) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:
            future.set_exception(exc)
        return future


class ThreadBackend(_InProcess):
    """A thread pool owned by the memo."""

    def __init__(self, pool: ThreadPoolExecutor, workers: int) -> None:
        self._pool = pool
        self.workers = workers

    def submit(self, fn: Callable[..., T], /, *args: object) -> Future[T]:
        return self._pool.submit(fn, *args)


class _Pickled:
    """Shared behaviour of backends whose tasks cross a process boundary: the run's
    ``(exec_fn, params)`` is encoded once (:meth:`Codec.dumps_run`) and shared
    (:meth:`share`); each task carries the handle and returns
    :func:`~swarm_memo.execution.worker.run_batch`'s encoded result with the worker's
    timing, which the run's codec decodes."""

    in_process = False
    _blob: object = None
    _token: str = ""
    _started = 0.0
    _codec: Codec = DEFAULT_CODEC

    def submit(self, fn: Callable[..., T], /, *args: object) -> Future[T]:
        raise NotImplementedError

    def share(self, payload: bytes) -> object:
        """A handle on ``payload`` that tasks carry instead of the bytes."""
        raise NotImplementedError

    def start_run(
        self, exec_fn: ExecFn, params: Params, stop: Callable[[], bool], codec: Codec
    ) -> None:
        try:
            payload = codec.dumps_run(exec_fn, params)
        except Exception as exc:
            raise SpecTypeError(
                f"exec_fn {short_description(exec_fn, 100)} or the params cannot be sent to "
                f"worker processes ({type(exc).__name__}: {exc}); make them picklable, or "
                "use executor='thread' or 'serial'"
            ) from exc
        self._token = uuid.uuid4().hex
        self._started = time.time()
        self._codec = codec
        self._blob = self.share(payload)

    def submit_batch(self, points: list[object], skip_errors: bool) -> Future[TaskResult]:
        return self.submit(
            run_batch, self._token, self._blob, points, skip_errors, self._codec, self._started
        )

    def batch_result(self, raw: TaskResult) -> BatchResult:
        assert isinstance(raw, EncodedBatch)  # a worker's, encoded by the run's codec
        return raw.decode(self._codec)


class _LocalBlobs(_Pickled):
    """Big run payloads go to a temp file that local workers read once per run."""

    def __init__(self) -> None:
        self._paths: list[str] = []

    def share(self, blob: bytes) -> bytes | BlobFile:
        if len(blob) < INLINE_BLOB_BYTES:
            return blob
        fd, path = tempfile.mkstemp(prefix="swarm-memo-", suffix=".pkl")
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        self._paths.append(path)
        return BlobFile(path)

    def release(self) -> None:
        for path in self._paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self._paths.clear()


class ProcessBackend(_LocalBlobs):
    """The memo's own loky process pool (started on first use, SIGKILLed on abort)."""

    in_flight_per_worker = 2

    def __init__(self, pool: LokyPool) -> None:
        super().__init__()
        self._pool = pool
        self.workers = pool.workers
        self._submitted = False

    def submit(self, fn: Callable[..., T], /, *args: object) -> Future[T]:
        try:
            with signals_held():  # workers it starts never die of a stop signal
                future = self._pool.executor().submit(fn, *args)
        except BrokenExecutor:
            if self._submitted:
                raise
            # The pool broke while idle (a worker killed between runs): nothing of this
            # run is on it, so replace it.
            self._pool.kill()
            with signals_held():
                future = self._pool.executor().submit(fn, *args)
        self._submitted = True
        return future

    def abort(self) -> None:
        self._pool.kill()

    def stop_starting(self) -> None:
        self._pool.stop_starting()

    def close_after_stop(self) -> None:
        self._pool.close()  # idle or killed workers: a clean shutdown, no leaked semaphores

    def is_worker_death(self, exc: BaseException) -> bool:
        from loky.process_executor import TerminatedWorkerError

        return isinstance(exc, (BrokenExecutor, TerminatedWorkerError))


class UserExecutorBackend(_LocalBlobs):
    """A ``concurrent.futures.Executor`` the user owns: used, never shut down."""

    in_flight_per_worker = 2

    def __init__(self, executor: Executor, workers: int) -> None:
        super().__init__()
        self._executor = executor
        self.workers = workers

    def submit(self, fn: Callable[..., T], /, *args: object) -> Future[T]:
        return self._executor.submit(fn, *args)

    def abort(self) -> None:
        pass  # not ours to kill; the engine cancels what has not started

    def stop_starting(self) -> None:
        pass  # not ours to signal: exec chunks already running finish

    def close_after_stop(self) -> None:
        pass

    def is_worker_death(self, exc: BaseException) -> bool:
        return isinstance(exc, BrokenExecutor)


class DaskClient(Protocol):
    """What :class:`DaskBackend` uses of a ``distributed.Client``."""

    def get_executor(self, **kwargs: object) -> Executor: ...

    def nthreads(self) -> dict[str, int]: ...

    def scatter(self, data: bytes, broadcast: bool, hash: bool) -> object: ...

    def cancel(self, futures: list[object]) -> None: ...


class DaskBackend(_Pickled):
    """A ``distributed.Client``: the payload is scattered once to every worker per run."""

    in_flight_per_worker = 4
    """A scheduler round trip per task: keep more queued on each worker."""

    def __init__(self, client: DaskClient) -> None:
        self._client = client
        self._executor = client.get_executor(pure=False)
        self.workers = sum(client.nthreads().values()) or 1
        self._shared: list[object] = []

    def submit(self, fn: Callable[..., T], /, *args: object) -> Future[T]:
        future: Future[T] = self._executor.submit(fn, *args)
        return future

    def share(self, payload: bytes) -> object:
        handle = self._client.scatter(payload, broadcast=True, hash=False)
        self._shared.append(handle)
        return handle

    def release(self) -> None:
        if self._shared:
            with contextlib.suppress(Exception):  # a closed client has nothing to free
                self._client.cancel(self._shared)
            self._shared.clear()

    def abort(self) -> None:
        pass  # the engine cancels the futures; the cluster is not ours

    def stop_starting(self) -> None:
        pass  # the cluster is not ours: exec chunks already running finish

    def close_after_stop(self) -> None:
        pass

    def is_worker_death(self, exc: BaseException) -> bool:
        from distributed import KilledWorker

        return isinstance(exc, KilledWorker)


def is_dask_client(obj: object) -> TypeGuard[DaskClient]:
    """Whether ``obj`` is a ``distributed.Client`` (never imports distributed)."""
    distributed = sys.modules.get("distributed")
    return distributed is not None and isinstance(obj, distributed.Client)
