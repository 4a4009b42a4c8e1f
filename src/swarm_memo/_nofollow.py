"""Walking below a local cache root without following a symlink.

Every write, move and delete of :class:`~swarm_memo._local_store.LocalStore` opens the
folders of its key one at a time, each relative to the one above it (``dir_fd``) and
with ``O_NOFOLLOW``, then acts on the file name relative to the last folder. A process
that swaps a folder for a symlink at any moment cannot redirect the call out of the
root: the open of the link fails (``ELOOP``) and the call raises a
:class:`~swarm_memo.errors.StoreError` naming it. Where the platform has no ``dir_fd``
(Windows), the folders are checked with ``lstat`` first instead, which a concurrent swap
can still defeat.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable, Iterator

from .errors import StoreError

DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# ``os.replace`` is never listed in ``os.supports_dir_fd`` (only ``os.rename``, which
# calls the same ``renameat``), so it must not be part of this test.
HAVE_DIR_FD = bool(NOFOLLOW) and {os.open, os.unlink, os.rename, os.mkdir} <= os.supports_dir_fd

Refusal = Callable[[str], StoreError]
"""Builds the error for a key (a folder below the root) that is a symlink."""


def split_key(key: str) -> list[str]:
    """The parts of a store key; raise :class:`StoreError` for ``..``, ``.`` or ``//``."""
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise StoreError(f"invalid store key {key!r}", key)
    return parts


@contextlib.contextmanager
def folder_fd(root: str, folders: list[str], refuse: Refusal, *, create: bool) -> Iterator[int]:
    """An fd of ``root/folders...``, each folder opened below the last, never through a
    symlink (the root itself may be one); missing folders are made when ``create``."""
    fds = [_open_root(root, create=create)]
    try:
        for depth, part in enumerate(folders):
            key = "/".join(folders[: depth + 1])
            fds.append(_open_child(fds[-1], part, key, refuse, create=create))
        yield fds[-1]
    finally:
        for fd in fds:
            os.close(fd)


def _open_root(root: str, *, create: bool) -> int:
    try:
        return os.open(root, DIR_FLAGS)
    except FileNotFoundError:
        if not create:
            raise
        os.makedirs(root, exist_ok=True)
        return os.open(root, DIR_FLAGS)


def _open_child(fd: int, name: str, key: str, refuse: Refusal, *, create: bool) -> int:
    """Open folder ``name`` below ``fd`` without following a symlink."""
    try:
        try:
            return os.open(name, DIR_FLAGS | NOFOLLOW, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, dir_fd=fd)
            return os.open(name, DIR_FLAGS | NOFOLLOW, dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            raise refuse(key) from exc
        raise


def check_no_links(root: str, folders: list[str], refuse: Refusal, *, create: bool) -> None:
    """Without ``dir_fd``: raise when one of ``folders`` is a symlink or a file (racy)."""
    for depth in range(len(folders)):
        key = "/".join(folders[: depth + 1])
        path = os.path.join(root, *folders[: depth + 1])
        if os.path.islink(path) or (os.path.exists(path) and not os.path.isdir(path)):
            raise refuse(key)
    if create and folders:
        os.makedirs(os.path.join(root, *folders), exist_ok=True)


def prune_below(fd: int) -> None:
    """Remove the empty folders below the folder open as ``fd`` (deepest first); a
    symlink is never entered nor removed."""
    for _path, dirs, _files, dir_fd in os.fwalk(".", topdown=False, dir_fd=fd):
        for name in dirs:
            with contextlib.suppress(OSError):  # not empty, or a symlink
                os.rmdir(name, dir_fd=dir_fd)


def symlinks_below(fd: int, prefix: str) -> list[str]:
    """Keys (``prefix/...``) of the symlinks at any depth below the folder open as ``fd``."""
    found = []
    for path, dirs, files, dir_fd in os.fwalk(".", dir_fd=fd):
        for name in (*dirs, *files):
            with contextlib.suppress(OSError):  # gone meanwhile
                if stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                    rel = os.path.normpath(os.path.join(path, name)).replace(os.sep, "/")
                    found.append(f"{prefix}/{rel}" if prefix else rel)
    return sorted(found)
