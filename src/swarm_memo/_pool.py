"""One memo's own loky process pool: started lazily, reused across runs, replaced once
killed or broken.

Each memo has its own pool, never loky's process-global reusable executor: one memo's
abort would otherwise kill the workers another memo is using, and memos with different
``max_workers`` would resize each other's pool.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Executor

from ._worker import init_pool_worker

IDLE_WORKER_SECONDS = 300
"""Idle workers exit after this long; the pool starts new ones when work comes."""


class LokyPool:
    """A lazily started ``loky.ProcessPoolExecutor`` of ``workers`` processes.

    Workers ignore SIGTERM and SIGINT and exit when the driver dies
    (:func:`~swarm_memo._worker.init_pool_worker`); :meth:`kill` stops them with
    SIGKILL (loky's ``kill_workers``), so an abort never waits for ``exec_fn``.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._executor: Executor | None = None
        self._owner_pid = 0
        self._lock = threading.Lock()

    def executor(self) -> Executor:
        """The running pool, started on first use and after :meth:`kill`."""
        with self._lock:
            # A forked child must not submit to (or kill) its parent's pool.
            if self._executor is None or self._owner_pid != os.getpid():
                from loky import ProcessPoolExecutor

                self._executor = ProcessPoolExecutor(
                    max_workers=self.workers,
                    timeout=IDLE_WORKER_SECONDS,
                    initializer=init_pool_worker,
                    initargs=(os.getpid(),),
                )
                self._owner_pid = os.getpid()
            return self._executor

    def _take(self) -> Executor | None:
        with self._lock:
            executor, self._executor = self._executor, None
            return executor if self._owner_pid == os.getpid() else None

    def kill(self) -> None:
        """SIGKILL the workers now; the next :meth:`executor` call starts a new pool."""
        executor = self._take()
        if executor is not None:
            executor.shutdown(wait=False, kill_workers=True)  # type: ignore[call-arg]

    def close(self) -> None:
        """Let idle workers exit and wait for them."""
        executor = self._take()
        if executor is not None:
            executor.shutdown(wait=True)
