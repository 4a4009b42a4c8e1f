"""Claims: processes sharing a cache compute different chunks instead of the same ones.

Before executing the missing points of a memo chunk, a driver takes a non-blocking POSIX
record lock (``fcntl.lockf``) on one byte of ``<set-id>/claims.lock``, at an offset
derived from the chunk's name. The operating system drops every lock of a process that
dies, so a claim can never go stale; record locks work on local disks and on NFS (through
its lock manager); and a claim costs two system calls, not a file per chunk. A chunk
claimed by another process is put off to the end of the run; by then the other process
has usually written it, and it is loaded instead of computed.

A claim only steers work, correctness never depends on it: every write is atomic and
every chunk file is complete. So where locks are unavailable (Windows, a file system
without lock support, an object store) runs go on without claims, and two offset
collisions at worst make a chunk wait for an unrelated one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import zlib
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("swarm_memo")


def claim_offset(name: str) -> int:
    """The byte of ``claims.lock`` that stands for the chunk ``name``."""
    return zlib.crc32(name.encode())


class Claims:
    """The chunk claims held by this run, in one params set folder."""

    def __init__(self, lock_file: str | None) -> None:
        self._lock_file = Path(lock_file) if lock_file and fcntl is not None else None
        self._fd: int | None = None
        self._held: set[str] = set()
        self._lock = threading.Lock()  # chunk writer threads release claims
        self.contended = False  # True once another process held a chunk this run wanted

    def _open(self) -> int | None:
        if self._fd is None and self._lock_file is not None:
            try:
                self._lock_file.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self._lock_file, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:  # e.g. a read-only cache: run without claims
                logger.debug("swarm-memo: no claims (%s)", exc)
                self._lock_file = None
        return self._fd

    def try_claim(self, name: str) -> bool:
        """Claim a chunk for this process; False when another process holds it."""
        fd = self._open()
        if fd is None:
            return True
        with self._lock:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, claim_offset(name))
            except (BlockingIOError, PermissionError):
                self.contended = True
                return False
            except OSError as exc:  # a file system without record locks
                logger.debug("swarm-memo: cannot lock %s (%s); claims disabled", name, exc)
                self._lock_file = None
                return True
            self._held.add(name)
        return True

    def release(self, name: str) -> None:
        with self._lock:
            if name in self._held and self._fd is not None:
                self._held.discard(name)
                with contextlib.suppress(OSError):
                    fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, claim_offset(name))

    def release_all(self) -> None:
        """Drop every claim (closing the file releases all of this process's locks)."""
        with self._lock:
            self._held.clear()
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = None
