"""Turning the ``executor=`` argument into something the scheduler can submit to.

Every backend is seen through :class:`Backend`: a ``concurrent.futures.Executor``, how
many workers it has, and whether tasks must travel as pickled blobs (other processes)
or may take the objects directly (threads, in-process).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ._worker import BlobFile
from .errors import SpecError, SpecTypeError

EXECUTOR_NAMES = ("process", "thread", "serial")
INLINE_BLOB_BYTES = 64 * 1024
"""Payloads (exec_fn + params) smaller than this travel with each task."""
_REUSABLE_IDLE_TIMEOUT = 300


class SerialExecutor(Executor):
    """Runs each task at submission, in the calling thread: no pool, easy debugging."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        return future


@dataclass
class Backend:
    """An executor as the scheduler sees it."""

    executor: Executor
    workers: int
    ships_blobs: bool
    kind: str
    share: Callable[[bytes], Any] = lambda blob: blob
    """Turn the run's pickled (exec_fn, params) into what each task carries."""
    cleanup: Callable[[], None] = lambda: None
    """Undo ``share`` once the run is over."""
    in_flight_per_worker: int = 2
    """Exec chunks kept submitted per worker: enough to hide the executor's latency."""

    def abort(self) -> None:
        """Stop as fast as possible (Ctrl-C, worker death): kill our own process pools."""
        if self.kind == "process":
            self.executor.shutdown(wait=False, kill_workers=True)  # type: ignore[call-arg]


class _LocalBlobs:
    """Big run payloads go to a temp file that local workers read once per run."""

    def __init__(self) -> None:
        self._paths: list[str] = []

    def share(self, blob: bytes) -> Any:
        if len(blob) < INLINE_BLOB_BYTES:
            return blob
        fd, path = tempfile.mkstemp(prefix="swarm-memo-", suffix=".pkl")
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        self._paths.append(path)
        return BlobFile(path)

    def cleanup(self) -> None:
        for path in self._paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self._paths.clear()


def _is_dask_client(obj: Any) -> bool:
    return type(obj).__module__.startswith("distributed") and hasattr(obj, "get_executor")


class ExecutorFactory:
    """Resolves ``executor=`` once per memo and keeps pools alive across runs."""

    def __init__(self, executor: Any, max_workers: int | None) -> None:
        if isinstance(executor, str):
            if executor not in EXECUTOR_NAMES:
                raise SpecError(
                    f"executor must be one of {list(EXECUTOR_NAMES)}, a "
                    f"concurrent.futures.Executor or a dask.distributed.Client; got {executor!r}"
                )
        elif not (isinstance(executor, Executor) or _is_dask_client(executor)):
            raise SpecTypeError(
                "executor must be 'process', 'thread', 'serial', a concurrent.futures.Executor "
                f"or a dask.distributed.Client; got {type(executor).__name__}"
            )
        self.spec = executor
        self.max_workers = max_workers or os.cpu_count() or 1
        self._threads: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def backend(self) -> Backend:
        spec = self.spec
        if spec == "serial" or (spec == "process" and self.max_workers == 1):
            return Backend(SerialExecutor(), 1, False, "serial")
        if spec == "process":
            from loky import get_reusable_executor

            pool = get_reusable_executor(
                max_workers=self.max_workers, timeout=_REUSABLE_IDLE_TIMEOUT
            )
            shared = _LocalBlobs()
            return Backend(pool, self.max_workers, True, "process", shared.share, shared.cleanup)
        if spec == "thread":
            with self._lock:
                if self._threads is None:
                    self._threads = ThreadPoolExecutor(self.max_workers, "swarm-memo")
            return Backend(self._threads, self.max_workers, False, "thread")
        if _is_dask_client(spec):
            workers = sum(spec.nthreads().values()) or 1
            return Backend(
                spec.get_executor(pure=False),
                workers,
                True,
                "dask",
                # One copy per worker per run, not one per task.
                share=lambda blob: spec.scatter(blob, broadcast=True, hash=False),
                # A scheduler round trip per task: keep more queued on each worker.
                in_flight_per_worker=4,
            )
        workers = getattr(spec, "_max_workers", None) or self.max_workers
        return Backend(spec, workers, True, "user")

    def close(self) -> None:
        """Shut down pools this memo created (never a user's executor)."""
        if self._threads is not None:
            self._threads.shutdown(wait=True)
            self._threads = None
