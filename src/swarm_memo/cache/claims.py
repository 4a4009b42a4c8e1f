"""Claims: runs sharing a cache compute different chunks instead of the same ones.

Before executing the missing points of a memo chunk, a run claims it. Between processes a
claim is a non-blocking POSIX record lock (``fcntl.lockf``) on one byte of
``<set-id>/claims.lock``, at an offset derived from the chunk's name: the operating system
drops every lock of a process that dies, so a claim never goes stale, record locks work on
local disks and on NFS, and a claim costs two system calls. Within one process (two runs
in threads) POSIX locks cannot tell the runs apart, so a process-wide table of held names
excludes them, and each lock file is opened once per process: closing any descriptor of a
file would drop every lock the process holds on it.

Object stores that create a file only if it is absent, atomically between processes (S3's
conditional PUT), claim with lease objects instead (:mod:`swarm_memo.cache.leases`).

A claim only steers work, correctness never depends on it: every write is atomic and
every chunk file is complete. Where neither exists (Windows, a file system without lock
support, ``memory://``) runs go on without claims between processes; a launch's tasks
still split the work by their shares (:class:`swarm_memo.identity.order.Share`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from swarm_memo.cache.held import HeldClaims
from swarm_memo.cache.layout import SetPaths
from swarm_memo.stores.base import Store

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("swarm_memo")


CLAIMS_SWITCH = "SWARM_MEMO_CLAIMS"
"""Environment variable; ``off`` disables claims between processes (for tests and
benchmarks of what the partition alone achieves)."""


class ChunkClaims(Protocol):
    """The claims one run holds in one params set (record locks or leases)."""

    contended: bool

    @property
    def held(self) -> int: ...

    @property
    def between_processes(self) -> bool:
        """Whether these claims exclude other processes (else only this process's runs)."""

    def try_claim(self, name: str) -> bool: ...

    def release(self, name: str) -> None: ...

    def release_all(self) -> None: ...


def claims_for(store: Store, set_id: str, claim_timeout: float | None) -> ChunkClaims:
    """The claims a run takes in ``set_id``: record locks where the store has a lock
    file, leases where it creates files atomically, else only within this process."""
    if os.environ.get(CLAIMS_SWITCH, "").lower() == "off":
        return Claims(None)
    paths = SetPaths(set_id)
    key = paths.claims
    capabilities = store.capabilities
    lock = store.lock_path(key) if capabilities.record_locks else None
    if lock is None and capabilities.atomic_create:
        from swarm_memo.cache.leases import LeaseClaims

        return LeaseClaims(store, paths.leases, claim_timeout)
    open_lock = getattr(store, "open_lock", None)  # a LocalStore: never through a symlink
    return Claims(lock, None if open_lock is None else functools.partial(open_lock, key))


def claim_offset(name: str) -> int:
    """The byte of ``claims.lock`` that stands for the chunk ``name``."""
    return zlib.crc32(name.encode())


class _LockFile:
    """One open lock file of this process and which run holds each claimed name."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        self.holders: dict[str, int] = {}  # chunk name -> id of the Claims holding it


_TABLE_LOCK = threading.Lock()
_LOCK_FILES: dict[str, _LockFile] = {}
"""Lock files with claims held in this process; closed (which drops no lock of ours, as
none is held any more) once their last claim is released, so sweeping many params sets
in one process never piles up open files, and a cache deleted and made anew is reopened."""


LockOpener = Callable[[], "int | None"]
"""Opens (creates) a lock file without following a symlink (``LocalStore.open_lock``):
returns None when it cannot be opened, raises ``StoreError`` naming a symlink."""


def _entry(path: str | None, opener: LockOpener | None = None) -> _LockFile:
    """The process-wide entry of a lock file, opened if needed (``_TABLE_LOCK`` held)."""
    key = path or ""
    entry = _LOCK_FILES.get(key)
    if entry is None:
        entry = _LOCK_FILES[key] = _LockFile(_open(path, opener))
    return entry


def _open(path: str | None, opener: LockOpener | None) -> int | None:
    if path is None or fcntl is None:
        return None
    if opener is not None:
        return opener()
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:  # e.g. a read-only cache: claims only within this process
        logger.debug("swarm-memo: no claims between processes (%s)", exc)
        return None


class Claims(HeldClaims):
    """The chunk claims held by one run in one params set folder."""

    def __init__(self, lock_path: str | None, opener: LockOpener | None = None) -> None:
        super().__init__()
        self._path = None if lock_path is None else os.path.realpath(lock_path)
        self._opener = opener

    @property
    def between_processes(self) -> bool:
        """Whether the claims exclude other processes: a lock file could be opened."""
        with _TABLE_LOCK:
            entry = _entry(self._path, self._opener)
            between = entry.fd is not None
            self._close_if_idle(entry)
        return between

    def try_claim(self, name: str) -> bool:
        """Claim a chunk for this run; False when another run (here or elsewhere) holds it."""
        with _TABLE_LOCK:
            entry = _entry(self._path, self._opener)
            holder = entry.holders.get(name)
            if holder is not None and holder != id(self):
                self.contended = True
                return False
            if holder is None and entry.fd is not None and not _lock(entry.fd, name):
                self.contended = True
                self._close_if_idle(entry)
                return False
            entry.holders[name] = id(self)
            self._held.add(name)
        return True

    def release(self, name: str) -> None:
        with _TABLE_LOCK:
            if name not in self._held:
                return
            self._held.discard(name)
            entry = _entry(self._path, self._opener)
            if entry.holders.get(name) == id(self):
                del entry.holders[name]
                if entry.fd is not None:
                    with contextlib.suppress(OSError):
                        fcntl.lockf(entry.fd, fcntl.LOCK_UN, 1, claim_offset(name))
            self._close_if_idle(entry)

    def _close_if_idle(self, entry: _LockFile) -> None:
        """Close a lock file nobody in this process holds a claim in (``_TABLE_LOCK`` held)."""
        if entry.holders:
            return
        if entry.fd is not None:
            with contextlib.suppress(OSError):
                os.close(entry.fd)
        _LOCK_FILES.pop(self._path or "", None)


def _lock(fd: int, name: str) -> bool:
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, claim_offset(name))
    except (BlockingIOError, PermissionError):
        return False
    except OSError as exc:  # a file system without record locks: no claims between processes
        logger.debug("swarm-memo: cannot lock %s (%s)", name, exc)
    return True
