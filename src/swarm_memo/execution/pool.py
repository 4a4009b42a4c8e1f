"""One memo's own loky process pool: started lazily, reused across runs, replaced once
killed or broken.

Each memo has its own pool, never loky's process-global reusable executor: one memo's
abort would otherwise kill the workers another memo is using, and memos with different
``max_workers`` would resize each other's pool.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Executor

from swarm_memo.execution.worker import StartedFromLongLivedThread, init_pool_worker

IDLE_WORKER_SECONDS = 300
"""Idle workers exit after this long; the pool starts new ones when work comes."""
START_VARIABLE = "SWARM_MEMO_WORKER_START"
"""``loky`` in this environment variable: workers start as fresh interpreters (loky's own
start) even where a preloaded fork server could start them
(:mod:`~swarm_memo.execution.preload`)."""


def preloaded_start() -> bool:
    """Whether the pool's workers are forked by swarm-memo's preloaded server (Linux,
    Python 3.10 to 3.13)."""
    if os.environ.get(START_VARIABLE, "").strip().lower() == "loky":
        return False
    from multiprocessing import reduction

    # It overrides a multiprocessing internal (the forkserver launch), checked on 3.10-3.13.
    tested = sys.version_info < (3, 14)
    return tested and sys.platform.startswith("linux") and bool(reduction.HAVE_SEND_HANDLE)


def _start_helpers(preloaded: bool) -> None:
    """Start loky's and multiprocessing's resource trackers (and, for a preloaded start,
    the fork server) with SIGUSR1 blocked.

    The trackers ignore SIGINT and SIGTERM but not SIGUSR1, which ``sbatch --signal``
    sends to every process of a job step: a tracker died of it, and a new one then
    reported the pool's semaphores as leaked. A blocked signal stays blocked across exec,
    so these helpers never see SIGUSR1; the fork server also holds SIGTERM and SIGINT
    (it exits with the driver), and the workers it forks unblock them once their handlers
    are installed (:func:`~swarm_memo.execution.worker.init_pool_worker`).

    multiprocessing's tracker is started here for either start: loky's own start would
    otherwise start it while spawning the first worker, and on Python 3.11 its start
    unblocks SIGINT and SIGTERM in the spawning thread, undoing :func:`signals_held` (a
    worker then died of a stop signal while starting; here the mask is restored).
    """
    from multiprocessing import resource_tracker

    from loky.backend.resource_tracker import ensure_running

    with signals_held():
        ensure_running()
    with signals_held():  # it unblocks SIGINT and SIGTERM once its tracker started
        resource_tracker.ensure_running()
    if not preloaded:
        return
    from swarm_memo.execution import preload

    with signals_held():
        preload.server()


def _ready() -> None:
    """The task that makes loky start a pool's workers (:meth:`LokyPool.prestart`)."""


def _submit_ready(executor: Executor) -> None:
    with contextlib.suppress(Exception), signals_held():
        executor.submit(_ready)


WORKER_SIGNALS = frozenset(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGUSR1") if hasattr(signal, name)
)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Block the stop signals in this thread while it may start workers: a worker
    inherits the mask, so a signal sent to the whole job step before the worker has
    installed its handlers waits for them (:func:`~swarm_memo.execution.worker.init_pool_worker`
    unblocks it) instead of killing it, which would break the pool and lose the exec
    chunks the other workers finished. The driver gets the signal once this ends."""
    if not hasattr(signal, "pthread_sigmask") or not WORKER_SIGNALS:
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, WORKER_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class LokyPool:
    """A lazily started ``loky.ProcessPoolExecutor`` of ``workers`` processes.

    Workers ignore SIGTERM and SIGINT and exit when the driver dies
    (:func:`~swarm_memo.execution.worker.init_pool_worker`); :meth:`kill` stops them with
    SIGKILL (loky's ``kill_workers``), so an abort never waits for ``exec_fn``.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.preloaded = preloaded_start()
        self._executor: Executor | None = None
        self._owner_pid = 0
        self._lock = threading.Lock()

    def executor(self) -> Executor:
        """The running pool, started on first use and after :meth:`kill`."""
        with self._lock:
            # A forked child must not submit to (or kill) its parent's pool.
            if self._executor is None or self._owner_pid != os.getpid():
                _start_helpers(self.preloaded)
                self._executor = self._new_executor()
                self._owner_pid = os.getpid()
            return self._executor

    def _new_executor(self) -> Executor:
        from loky import ProcessPoolExecutor

        executor: Executor
        if not self.preloaded:
            executor = ProcessPoolExecutor(
                max_workers=self.workers,
                timeout=IDLE_WORKER_SECONDS,
                initializer=init_pool_worker,
                initargs=(os.getpid(), StartedFromLongLivedThread()),
            )
            return executor
        from swarm_memo.execution import preload

        executor = ProcessPoolExecutor(
            max_workers=self.workers,
            timeout=IDLE_WORKER_SECONDS,
            context=preload.context(),
            initializer=preload.init_served_worker,
            initargs=(os.getpid(), dict(os.environ)),
        )
        return executor

    def prestart(self) -> None:
        """Start the workers now, in the background, if the pool is not running: loky
        spawns them for a no-op task; the first real submit finds them started (or the
        pool broken, which it handles as before).

        A preloaded start submits from a short-lived thread: forking waits for the
        server's imports the first time, and the worker's parent is the server, never
        that thread. Loky's own start submits here (a worker started from a short-lived
        thread could not die with the driver's thread, see
        :class:`~swarm_memo.execution.worker.StartedFromLongLivedThread`)."""
        with self._lock:
            if self._executor is not None and self._owner_pid == os.getpid():
                return
        try:
            executor = self.executor()
        except Exception:
            return  # the real submit raises it again
        if self.preloaded:
            name = "swarm-memo-pool-start"
            threading.Thread(target=_submit_ready, args=(executor,), name=name).start()
        else:
            _submit_ready(executor)

    def _take(self) -> Executor | None:
        with self._lock:
            executor, self._executor = self._executor, None
            return executor if self._owner_pid == os.getpid() else None

    def kill(self) -> None:
        """SIGKILL the workers now; the next :meth:`executor` call starts a new pool."""
        executor = self._take()
        if executor is not None:
            executor.shutdown(wait=False, kill_workers=True)  # type: ignore[call-arg]

    def stop_starting(self) -> None:
        """Send SIGUSR1 to the workers: they start no new point of the run they compute
        for (:func:`~swarm_memo.execution.worker.init_pool_worker`)."""
        with self._lock:
            executor = self._executor if self._owner_pid == os.getpid() else None
        if executor is None or not hasattr(signal, "SIGUSR1"):
            return
        for pid in list(getattr(executor, "_processes", {})):
            with contextlib.suppress(OSError):  # already gone
                os.kill(pid, signal.SIGUSR1)

    def close(self) -> None:
        """Let idle workers exit and wait for them."""
        executor = self._take()
        if executor is not None:
            executor.shutdown(wait=True)
