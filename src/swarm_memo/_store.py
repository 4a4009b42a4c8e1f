"""Where bytes live: a local directory store with crash-safe writes.

The store knows nothing about chunks or pickles (that is ``_codec``) nor about the cache
layout (that is ``_cache``): it reads, writes, lists and moves opaque files by
``/``-separated keys relative to its root. Every write goes through
:func:`atomic_write`, so a reader never sees a half-written file and a killed writer
leaves at most a temp file, which listing ignores and :meth:`LocalStore.clean_temp`
removes once it is older than a grace period.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

TEMP_SUFFIX = ".tmp"
TEMP_GRACE_SECONDS = 3600.0


@dataclass(frozen=True)
class FileStat:
    """Size and identity of one version of a stored file."""

    size: int
    mtime_ns: int
    token: str
    """Changes whenever the file is replaced (inode + size + mtime locally, ETag on S3)."""


class Store(Protocol):
    """Everything swarm-memo asks of a place that holds bytes under ``/``-separated keys.

    Implementations: ``LocalStore`` (a directory), ``FsspecStore`` (any fsspec URL). Each
    is checked by the same contract suite (``tests/test_store_contract.py``).
    """

    def url(self, key: str) -> str:
        """A human-readable location of ``key``, for messages."""

    def init_root(self) -> None:
        """Create the root (first write only; reads never call it)."""

    def read(self, key: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""

    def read_prefix(self, key: str, size: int) -> bytes | None:
        """At most the first ``size`` bytes, or None when the file does not exist."""

    def write(self, key: str, data: bytes, *, durable: bool = True) -> None:
        """Replace the file atomically: readers see the old or the whole new content."""

    def write_if_absent(self, key: str, data: bytes) -> bool:
        """Create the file unless it exists; True when this call created it."""

    def names(self, prefix: str, suffix: str = "") -> list[str]:
        """Names of the files directly under ``prefix`` ending in ``suffix``; temp and
        hidden files are never listed."""

    def folders(self, prefix: str) -> list[str]:
        """Names of the non-hidden folders directly under ``prefix`` ("" is the root)."""

    def stat(self, key: str) -> FileStat | None:
        """Size and identity of the file, or None when it does not exist."""

    def move(self, src: str, dst: str) -> None:
        """Move a file (never following a symlink out of the root)."""

    def delete(self, key: str) -> None:
        """Delete a file if it exists (never following a symlink out of the root)."""

    def clean_temp(self, prefix: str, grace_seconds: float = ...) -> int:
        """Remove temp files killed writers left under ``prefix``; return how many."""

    def lock_path(self, key: str) -> str | None:
        """A local file for claims (POSIX record locks), or None: this store has none."""


def atomic_write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    The bytes go to a unique temp file in the same directory (same file system, so the
    rename is atomic), are flushed and fsynced, then renamed over ``path``. On any
    exception, KeyboardInterrupt included, the temp file is removed.
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.{os.getpid()}{TEMP_SUFFIX}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class LocalStore:
    """Files under a local directory, addressed by relative ``/``-separated keys."""

    def __init__(self, root: str | os.PathLike[str], *, durable: bool = True) -> None:
        self.root = Path(root).expanduser()
        self._root = str(self.root)
        self.durable = durable

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def url(self, key: str) -> str:
        """A human-readable location for messages."""
        return str(self.path(key))

    def read(self, key: str) -> bytes | None:
        """Return the file's bytes, or ``None`` when it does not exist."""
        try:
            # Plain string paths: this is the hot path of a warm run (one call per chunk).
            with open(os.path.join(self._root, key), "rb") as fh:
                return fh.read()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def write(self, key: str, data: bytes, *, durable: bool = True) -> None:
        """Write atomically; ``durable=False`` skips the fsync (for rebuildable files)."""
        path = self.path(key)
        durable = durable and self.durable
        try:
            atomic_write(path, data, durable=durable)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data, durable=durable)

    def write_if_absent(self, key: str, data: bytes) -> bool:
        if self.path(key).exists():
            return False
        self.write(key, data)
        return True

    def read_prefix(self, key: str, size: int) -> bytes | None:
        try:
            with open(os.path.join(self._root, key), "rb") as fh:
                return fh.read(size)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def stat(self, key: str) -> FileStat | None:
        try:
            st = os.stat(os.path.join(self._root, key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return FileStat(st.st_size, st.st_mtime_ns, f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}")

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def names(self, prefix: str, suffix: str = "") -> list[str]:
        """Names (not keys) of the files directly under ``prefix`` ending in ``suffix``.

        Hidden files (temp files of writers, ``.DS_Store``) are never listed.
        """
        try:
            entries = os.scandir(self.path(prefix))
        except (FileNotFoundError, NotADirectoryError):
            return []
        with entries:
            return [
                e.name
                for e in entries
                if not e.name.startswith(".") and e.name.endswith(suffix) and e.is_file()
            ]

    def move(self, src: str, dst: str) -> None:
        target = self.path(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path(src), target)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(key).unlink()

    def clean_temp(self, prefix: str, grace_seconds: float = TEMP_GRACE_SECONDS) -> int:
        """Remove temp files under ``prefix`` left by killed writers; return how many."""
        cutoff = time.time() - grace_seconds
        removed = 0
        try:
            entries = list(os.scandir(self.path(prefix)))
        except FileNotFoundError:
            return 0
        for e in entries:
            if e.name.startswith(".") and e.name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    if e.stat().st_mtime < cutoff:
                        os.unlink(e.path)
                        removed += 1
        return removed

    def lock_path(self, key: str) -> str | None:
        """Local path of the claims lock file."""
        return str(self.path(key))

    def init_root(self) -> None:
        """Create the root with a ``.gitignore`` so a cache is never committed by mistake."""
        self.root.mkdir(parents=True, exist_ok=True)
        gitignore = self.root / ".gitignore"
        if not gitignore.exists():
            with contextlib.suppress(OSError):
                atomic_write(gitignore, b"# created by swarm-memo\n*\n", durable=False)
