"""Walking below a local cache root without following a symlink.

Every write, move and delete of :class:`~swarm_memo.stores.local.LocalStore` opens the
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

from swarm_memo.errors import StoreError

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


def _parts(prefix: str) -> list[str]:
    return split_key(prefix) if prefix else []


def first_symlink(root: str, prefix: str, refuse: Refusal) -> str | None:
    """The name of a symlink directly in folder ``prefix``, if any (None also when the
    folder does not exist); raises ``refuse(...)`` when ``prefix`` is reached through one."""
    if not HAVE_DIR_FD:
        return None
    try:
        with (
            folder_fd(root, _parts(prefix), refuse, create=False) as fd,
            os.scandir(fd) as entries,
        ):
            return next((e.name for e in entries if e.is_symlink()), None)
    except FileNotFoundError:
        return None


def prune(root: str, prefix: str, refuse: Refusal) -> None:
    """Remove the empty folders at and below ``prefix`` (the root itself stays); a
    symlink is never entered nor removed."""
    if not HAVE_DIR_FD:
        _prune_by_path(os.path.join(root, *_parts(prefix)))
        return
    parts = _parts(prefix)
    with contextlib.suppress(OSError):  # gone, or a symlink
        with folder_fd(root, parts, refuse, create=False) as fd:
            for _path, dirs, _files, dir_fd in os.fwalk(".", topdown=False, dir_fd=fd):
                for name in dirs:
                    with contextlib.suppress(OSError):  # not empty, or a symlink
                        os.rmdir(name, dir_fd=dir_fd)
        if parts:
            with folder_fd(root, parts[:-1], refuse, create=False) as fd:
                os.rmdir(parts[-1], dir_fd=fd)  # fails unless empty


def _prune_by_path(top: str) -> None:
    if os.path.islink(top) or not os.path.isdir(top):
        return
    for dirpath, dirs, _files in os.walk(top, topdown=False):
        for name in dirs:
            with contextlib.suppress(OSError):  # not empty, or a symlink
                os.rmdir(os.path.join(dirpath, name))
    with contextlib.suppress(OSError):
        os.rmdir(top)


def symlinks(root: str, prefix: str, refuse: Refusal) -> list[str]:
    """Keys (``prefix/...``) of the symlinks at any depth below folder ``prefix``;
    ``[prefix]`` when it is one itself (without ``dir_fd``: none are looked for)."""
    if not HAVE_DIR_FD:
        return []
    try:
        with folder_fd(root, _parts(prefix), refuse, create=False) as fd:
            found = [
                os.path.normpath(os.path.join(path, name)).replace(os.sep, "/")
                for path, dirs, files, dir_fd in os.fwalk(".", dir_fd=fd)
                for name in (*dirs, *files)
                if _is_link(name, dir_fd)
            ]
    except StoreError:
        return [prefix]
    except OSError:
        return []
    return sorted(f"{prefix}/{rel}" if prefix else rel for rel in found)


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:  # gone meanwhile
        return False
