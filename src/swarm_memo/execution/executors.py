"""The ``executor=`` argument, parsed once (:class:`ExecutorSpec`, at ``SwarmMemo``
construction), and the :class:`BackendFactory` that consumes it: it owns the pools a memo
starts and hands the engine one :class:`~swarm_memo.execution.backends.Backend` per run.
"""

from __future__ import annotations

import threading
import weakref
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Literal

from swarm_memo.errors import SpecError, SpecTypeError
from swarm_memo.execution.backends import (
    Backend,
    DaskBackend,
    DaskClient,
    ProcessBackend,
    SerialBackend,
    ThreadBackend,
    UserExecutorBackend,
    is_dask_client,
    usable_cpus,
)
from swarm_memo.execution.pool import LokyPool

EXECUTOR_NAMES = ("process", "thread", "serial")
ExecutorKind = Literal["process", "thread", "serial", "executor", "dask"]
_NAMED_KINDS: dict[str, ExecutorKind] = {
    "process": "process",
    "thread": "thread",
    "serial": "serial",
}


@dataclass(frozen=True)
class ExecutorSpec:
    """The ``executor=`` policy, parsed once at ``SwarmMemo`` construction: which kind of
    backend runs ``exec_fn``, with how many workers. The backend factory and ``launch``
    both consume it; nothing else looks at the raw argument.

    Attributes
    ----------
    kind
        ``"process"``, ``"thread"``, ``"serial"``, ``"executor"`` (a user's
        ``concurrent.futures.Executor``) or ``"dask"`` (a ``distributed.Client``).
    requested_workers
        ``max_workers`` as given (None: the CPUs of wherever the memo runs).
    target
        The user's executor or client (None for the named kinds); never shut down here.
    """

    kind: ExecutorKind
    requested_workers: int | None = None
    target: Executor | DaskClient | None = None

    @classmethod
    def parse(cls, executor: object, max_workers: int | None) -> ExecutorSpec:
        """Refuse an ``executor=`` argument that is none of the supported kinds, naming it."""
        if isinstance(executor, str):
            kind = _NAMED_KINDS.get(executor)
            if kind is not None:
                return cls(kind, max_workers)
            raise SpecError(
                f"executor must be one of {list(EXECUTOR_NAMES)}, a "
                f"concurrent.futures.Executor or a dask.distributed.Client; got {executor!r}"
            )
        if isinstance(executor, Executor):
            return cls("executor", max_workers, executor)
        if is_dask_client(executor):
            return cls("dask", max_workers, executor)
        raise SpecTypeError(
            "executor must be 'process', 'thread', 'serial', a concurrent.futures.Executor "
            f"or a dask.distributed.Client; got {type(executor).__name__}"
        )

    @property
    def max_workers(self) -> int:
        """The worker count of the pools a memo starts."""
        return self.requested_workers or usable_cpus()

    @property
    def inline(self) -> bool:
        """Whether ``exec_fn`` runs on the calling thread (serial, or one process worker)."""
        return self.kind == "serial" or (self.kind == "process" and self.max_workers == 1)

    @property
    def in_process(self) -> bool:
        """Whether ``exec_fn`` runs in this process (serial or thread backends)."""
        return self.kind == "thread" or self.inline

    def off_main_thread(self) -> ExecutorSpec:
        """This spec, on one worker thread when it would run ``exec_fn`` inline on the
        calling thread (where a scheduler's signals land, which must stop a task rather
        than fail a point); still one point at a time, as serial is."""
        return replace(self, kind="thread", requested_workers=1) if self.inline else self


class BackendFactory:
    """Resolves the :class:`ExecutorSpec` of one memo and keeps its pools alive across runs.

    Parameters
    ----------
    spec
        The parsed ``executor=``/``max_workers`` policy. A process backend with one
        worker runs in-process.
    """

    def __init__(self, spec: ExecutorSpec) -> None:
        self.spec = spec
        self._lock = threading.Lock()
        self._threads: ThreadPoolExecutor | None = None
        self._process: LokyPool | None = None
        self._finalizer: weakref.finalize[[], BackendFactory] | None = None
        self._learned_in_flight = 0

    @property
    def max_workers(self) -> int:
        """The worker count of the pools this memo starts."""
        return self.spec.max_workers

    @property
    def requested_workers(self) -> int | None:
        """``max_workers`` as given (None: the CPUs of wherever the memo runs)."""
        return self.spec.requested_workers

    @property
    def in_process(self) -> bool:
        """Whether ``exec_fn`` runs in this process (serial or thread backends)."""
        return self.spec.in_process

    def backend(self) -> Backend:
        """The backend for one run (called once a point actually needs executing)."""
        backend = self._new_backend()
        backend.in_flight_per_worker = max(backend.in_flight_per_worker, self._learned_in_flight)
        return backend

    def prestart(self) -> None:
        """Start the memo's process pool in the background for a call that will compute,
        so that its start overlaps planning and listing; nothing for other backends."""
        if self.spec.kind == "process" and not self.spec.inline:
            self._process_pool().prestart()

    def learn_window(self, per_worker: int) -> None:
        """A run needed ``per_worker`` exec chunks in flight per worker to keep workers
        busy: later runs of this memo start with that many (short runs, such as many
        small sweeps, never get the time to grow their window)."""
        self._learned_in_flight = max(self._learned_in_flight, per_worker)

    def _new_backend(self) -> Backend:
        spec = self.spec
        if spec.inline:
            return SerialBackend()
        if spec.kind == "process":
            return ProcessBackend(self._process_pool())
        if spec.kind == "thread":
            return ThreadBackend(self._thread_pool(), self.max_workers)
        if isinstance(spec.target, Executor):
            return UserExecutorBackend(spec.target, self.max_workers)
        if spec.target is None:  # parse() gives every other kind its target
            raise SpecTypeError(f"executor {spec.kind!r} has no executor or client")
        return DaskBackend(spec.target)

    def _process_pool(self) -> LokyPool:
        with self._lock:
            if self._process is None:
                self._process = LokyPool(self.max_workers)
                # At garbage collection or interpreter exit, whichever comes first.
                self._finalizer = weakref.finalize(self, self._process.kill)
            return self._process

    def _thread_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._threads is None:
                self._threads = ThreadPoolExecutor(self.max_workers, "swarm-memo")
            return self._threads

    def close(self) -> None:
        """Shut down the pools this memo started (never a user's executor or client)."""
        with self._lock:
            threads, self._threads = self._threads, None
            process = self._process
            if self._finalizer is not None:
                self._finalizer.detach()
            self._process, self._finalizer = None, None
        if threads is not None:
            threads.shutdown(wait=True)
        if process is not None:
            process.close()
