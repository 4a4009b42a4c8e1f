"""Where bytes live: the ``Store`` protocol every backend implements.

A store knows nothing about chunks or pickles (that is ``_codec``) nor about the cache
layout (that is ``_cache``): it reads, writes, lists and moves opaque files by
``/``-separated keys relative to its root. ``open_store`` turns a ``cache_root`` into
a store (see ``_remote``): a local path (or ``file://`` URL) gives a
:class:`~swarm_memo.stores.local.LocalStore`, another URL the store registered for its
scheme, else an fsspec store. Every failed write is reported as a
:class:`~swarm_memo.errors.StoreError` naming the path (:func:`store_error`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from swarm_memo.errors import StoreError

TEMP_SUFFIX = ".tmp"
TEMP_GRACE_SECONDS = 3600.0
# ``.<name>.<uuid12>.<pid>.tmp``: what ``_local_store.atomic_write`` leaves when its
# writer dies.
TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{12}\.[0-9]+" + re.escape(TEMP_SUFFIX))


def is_temp_name(name: str) -> bool:
    """Whether ``name`` may be a temp file of a writer (hidden, ending in ``.tmp``).

    Runs clean those up; ``swarm-memo gc`` only removes the ones named exactly like
    :func:`~swarm_memo.stores.local.atomic_write` names them (:data:`TEMP_NAME`).
    """
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


@dataclass(frozen=True)
class FileStat:
    """Size and identity of one version of a stored file."""

    size: int
    mtime_ns: int
    token: str
    """Changes whenever the file is replaced (inode + size + mtime locally, ETag on S3)."""


@dataclass(frozen=True)
class Capabilities:
    """What a store can do beyond reading and writing files, so that callers ask a flag
    instead of probing (``lock_path`` returning None, an attribute present or not)."""

    record_locks: bool
    """It has local files for POSIX record locks: runs claim chunks with them."""
    atomic_create: bool
    """``write_if_absent`` is atomic between processes and machines: where there are no
    record locks, runs claim chunks with lease objects (:mod:`swarm_memo.cache.leases`)."""
    fsync: bool
    """Writes reach stable storage before they return (``durable`` local stores)."""
    folders: bool
    """Folders exist of their own (``prune`` removes empty ones); object stores: no."""


class Store(Protocol):
    """Everything swarm-memo asks of a place that holds bytes under ``/``-separated keys.

    Implementations: ``LocalStore`` (a directory), ``FsspecStore`` (any fsspec URL). Each
    is checked by the same contract suite (``tests/test_store_contract.py``).
    """

    @property
    def capabilities(self) -> Capabilities:
        """What this store can do (see :class:`Capabilities`)."""

    @property
    def background_writes(self) -> bool:
        """Whether a run writes chunk files on background threads: True when a write
        waits on the disk (fsync) or the network; False when it only copies into the page
        cache, where the threads' hand-offs cost more than the write."""

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

    def write_if_absent(self, key: str, data: bytes, *, durable: bool = True) -> bool:
        """Create the file unless it exists; True when this call created it.
        ``durable=False`` may skip flushing it to stable storage (a descriptive file)."""

    def exists(self, key: str) -> bool:
        """Whether the file exists."""

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

    def temp_files(self, prefix: str) -> dict[str, FileStat]:
        """The temp files killed writers left directly under ``prefix`` (name -> stat)."""

    def prune(self, prefix: str) -> None:
        """Remove the empty folders at and below ``prefix`` (stores without folders: no-op)."""

    def lock_path(self, key: str) -> str | None:
        """The local file for claims (POSIX record locks) at ``key``; None unless
        ``capabilities.record_locks``."""

    def check_writable(self, prefix: str) -> None:
        """Raise :class:`StoreError` when files surely cannot be written under ``prefix``
        (a read-only folder); stores that cannot tell without writing do nothing."""


def store_error(action: str, where: object, exc: OSError) -> StoreError:
    """A :class:`StoreError` for a failed ``action`` on ``where``, keeping ``exc.errno``."""
    error = StoreError(f"cannot {action} {where}: {exc.strerror or exc}", str(where))
    error.errno = exc.errno
    return error
