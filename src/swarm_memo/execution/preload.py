"""Workers forked from a preloaded server: the cheap start of the memo's process pool.

Loky's own start launches a fresh interpreter per worker, which then imports loky,
cloudpickle and swarm-memo's worker code (about 0.2 s on an idle machine, seconds under
load). Where the platform allows it (Linux), the pool instead asks a fork server, started
once per driver process with those modules imported, to fork each worker: a worker is
ready in milliseconds, and exits without tearing down an interpreter.

The server is swarm-memo's own (never multiprocessing's process-wide one, whose preload
list and ``__main__`` import belong to the user), and it differs from multiprocessing's
``forkserver`` start in three ways that keep loky's behaviour:

- a worker never imports the driver's ``__main__`` (as with loky: ``exec_fn`` defined
  there travels by value), so a script without a main guard still works;
- it takes the driver's environment as it is when the pool starts, not as it was when
  the server started;
- it dies with the driver even inside C code that holds the GIL: it drops its copy of the
  server's "alive" pipe, so the server exits as soon as the driver is gone, and the kernel
  then kills the worker (``PR_SET_PDEATHSIG`` towards the server's only thread). The
  watchdog thread of :func:`~swarm_memo.execution.worker.init_pool_worker` runs as well.

``SWARM_MEMO_WORKER_START=loky`` in the environment turns it off.

The exec function's own module is not preloaded: the server lives as long as the driver,
so a module edited (or reloaded) between two memos would run in its old version under
the new code's fingerprint.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Mapping
from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util
from multiprocessing.context import (
    BaseContext,
    ForkServerContext,
    ForkServerProcess,
    set_spawning_popen,
)
from multiprocessing.process import BaseProcess

from swarm_memo.execution import worker

PRELOADED = ("ctypes", "loky.process_executor", "cloudpickle", "swarm_memo.execution.preload")
"""What the server imports once, so its workers start with it imported."""
_MAIN_KEYS = ("init_main_from_name", "init_main_from_path")


_SERVER: forkserver.ForkServer | None = None
_SERVER_PID = 0
_SERVER_LOCK = threading.Lock()


def server() -> forkserver.ForkServer:
    """This process's server (a forked child starts its own), started if it is not
    running. Starting it does not wait for its imports."""
    global _SERVER, _SERVER_PID
    with _SERVER_LOCK:
        if _SERVER is None or os.getpid() != _SERVER_PID:
            _SERVER = forkserver.ForkServer()
            _SERVER.set_forkserver_preload(list(PRELOADED))
            _SERVER_PID = os.getpid()
        served = _SERVER
    served.ensure_running()  # restarts a server that died
    return served


class _ServedPopen(popen_forkserver.Popen):
    """multiprocessing's forkserver launch, on swarm-memo's server, without ``__main__``."""

    def __init__(self, process_obj: BaseProcess) -> None:
        self._child_fds: list[int] = []  # the fds the child inherits, by index
        super().__init__(process_obj)

    def duplicate_for_child(self, fd: int) -> int:
        self._child_fds.append(fd)
        return len(self._child_fds) - 1

    def _launch(self, process_obj: BaseProcess) -> None:
        prep_data = spawn.get_preparation_data(process_obj.name)
        for key in _MAIN_KEYS:
            prep_data.pop(key, None)
        buf = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            set_spawning_popen(None)
        self.sentinel, data_fd = server().connect_to_new_process(self._child_fds)
        parent_w = os.dup(data_fd)  # the child's sentinel of this process, as upstream
        self.finalizer = util.Finalize(self, _close_fds, (parent_w, self.sentinel))
        with open(data_fd, "wb", closefd=True) as fh:
            fh.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


def _close_fds(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


class _ServedProcess(ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: BaseProcess) -> _ServedPopen:
        return _ServedPopen(process_obj)


class _ServedContext(ForkServerContext):
    Process = _ServedProcess


def context() -> BaseContext:
    """The multiprocessing context loky starts the pool's workers with."""
    return _ServedContext()


def init_served_worker(driver_pid: int, environ: Mapping[str, str]) -> None:
    """Initializer of a worker forked by the server: the driver's environment, the
    signal handling and watchdog of every pool worker, and death with the server."""
    if dict(os.environ) != dict(environ):
        os.environ.clear()
        os.environ.update(environ)
    state = vars(forkserver._forkserver)  # what the server handed this child
    alive_fd = state.get("_forkserver_alive_fd")
    if alive_fd is not None:  # the server must see EOF once the driver is gone
        os.close(alive_fd)
        state["_forkserver_alive_fd"] = None
    worker.init_pool_worker(driver_pid)
    worker._die_with_parent(os.getppid())
