"""Claims: processes sharing a cache compute different chunks instead of the same ones.

Before executing the missing points of a memo chunk, a driver takes a non-blocking
file lock ``<set-id>/claims/<chunk-name>.lock`` (``filelock``: ``fcntl``/``flock`` locks
that the operating system drops when the holder dies, so a claim can never go stale;
they work on local disks and on NFS with lock support). A chunk claimed by another
process is put off until the end of the run; by then the other process has usually
written it, and it is loaded instead of computed. A claim only steers work: correctness
never depends on it, because every write is atomic and every chunk file is complete.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

logger = logging.getLogger("swarm_memo")


class Claims:
    """The chunk claims held by this run, in one params set folder."""

    def __init__(self, folder: Path | None) -> None:
        self._folder = folder
        self._held: dict[str, object] = {}

    def try_claim(self, name: str) -> bool:
        """Claim a chunk for this process; False when another process holds it."""
        if self._folder is None:  # a store without file locks: nothing to coordinate
            return True
        from filelock import FileLock, Timeout

        self._folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self._folder / f"{name}.lock", blocking=False)
        try:
            lock.acquire()
        except Timeout:
            return False
        except OSError as exc:  # e.g. a read-only cache or a file system without locks
            logger.debug("swarm-memo: cannot lock %s (%s); computing without a claim", name, exc)
            return True
        self._held[name] = lock
        return True

    def release(self, name: str) -> None:
        lock = self._held.pop(name, None)
        if lock is not None:
            with contextlib.suppress(OSError):
                lock.release()  # type: ignore[attr-defined]

    def release_all(self) -> None:
        for name in list(self._held):
            self.release(name)
