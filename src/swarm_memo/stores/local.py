"""The local directory store.

:class:`LocalStore` writes every file through :func:`atomic_write`, so a reader never
sees a half-written file and a killed writer leaves at most a temp file, which listing
ignores and :meth:`LocalStore.clean_temp` removes once it is older than a grace period.
It never follows a symlink below its root when it writes, moves or deletes (see
:mod:`swarm_memo.stores.nofollow`), and it reports every failed write as a
:class:`~swarm_memo.errors.StoreError` naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import stat as stat_mod
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar, cast

from swarm_memo.errors import SpecError, StoreError
from swarm_memo.stores.base import (
    TEMP_GRACE_SECONDS,
    TEMP_SUFFIX,
    Capabilities,
    FileStat,
    is_temp_name,
    store_error,
)
from swarm_memo.stores.durable import sync_folder
from swarm_memo.stores.nofollow import (
    HAVE_DIR_FD,
    NOFOLLOW,
    check_no_links,
    first_symlink,
    folder_fd,
    prune,
    split_key,
    symlinks,
)

logger = logging.getLogger("swarm_memo")
_T = TypeVar("_T")
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | getattr(os, "O_BINARY", 0)


def atomic_write(
    path: Path, data: bytes, *, durable: bool = True, dir_fd: int | None = None
) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    The bytes go to a unique temp file in the same directory (same file system, so the
    rename is atomic), are flushed and fsynced, then renamed over ``path``; the folder is
    then fsynced too (:func:`sync_folder`), so the rename survives a power cut. On any
    exception, KeyboardInterrupt included, the temp file is removed. With ``dir_fd`` (the
    open folder of ``path``) both files are named relative to it, so no symlink on the
    way to the folder is followed.
    """
    tmp = _at(_temp_name(path), dir_fd)
    try:
        _write_file(tmp, data, durable=durable, dir_fd=dir_fd)
        os.replace(tmp, _at(path, dir_fd), src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    if durable:
        sync_folder(path.parent)


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.{os.getpid()}{TEMP_SUFFIX}")


def _at(path: Path, dir_fd: int | None) -> str:
    """How a file is named to a call: relative to ``dir_fd`` if given, else its path."""
    return path.name if dir_fd is not None else str(path)


def _write_file(path: str, data: bytes, *, durable: bool, dir_fd: int | None = None) -> None:
    """Create ``path`` (never an existing file nor through a symlink) holding ``data``."""
    fd = os.open(path, _CREATE_FLAGS, 0o666, dir_fd=dir_fd)
    try:
        fh = open(fd, "wb")  # noqa: SIM115 - closed by the with below
    except BaseException:
        os.close(fd)
        raise
    with fh:
        fh.write(data)
        fh.flush()
        if durable:
            os.fsync(fh.fileno())


def check_local_root(root: Path) -> None:
    """Raise :class:`SpecError` unless ``root`` is a folder or can become one."""
    if root.is_symlink() and not root.exists():
        raise SpecError(f"cache_root {str(root)!r} is a dangling symlink")
    if root.exists():
        if not root.is_dir():
            raise SpecError(f"cache_root {str(root)!r} exists and is not a directory")
        return
    for parent in root.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise SpecError(f"cache_root {str(root)!r}: {str(parent)!r} is not a directory")
            return


class LocalStore:
    """Files under a local directory, addressed by relative ``/``-separated keys.

    Parameters
    ----------
    root
        The directory; it may be a symlink, but no symlink below it is followed when a
        file is moved or deleted.
    durable
        ``False`` skips every fsync (tests, scratch caches).

    Raises
    ------
    SpecError
        ``root`` is an existing file or a dangling symlink.
    """

    def __init__(self, root: str | os.PathLike[str], *, durable: bool = True) -> None:
        self.root = Path(root).expanduser()
        check_local_root(self.root)
        self._root = str(self.root)
        self.durable = durable
        self._synced_folders: set[Path] = set()

    def __repr__(self) -> str:
        return f"LocalStore({self._root!r})"

    def path(self, key: str) -> Path:
        """The local path of ``key``."""
        return self.root.joinpath(*key.split("/")) if key else self.root

    def url(self, key: str) -> str:
        """A human-readable location for messages."""
        return str(self.path(key))

    def init_root(self) -> None:
        """Create the root with a ``.gitignore`` so a cache is never committed by mistake."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise store_error("create the cache folder", self.root, exc) from exc
        with contextlib.suppress(OSError):
            self.write_if_absent(".gitignore", b"# created by swarm-memo\n*\n")

    # ------------------------------------------------------------------ reading

    def read(self, key: str) -> bytes | None:
        """Return the file's bytes, or ``None`` when it does not exist."""
        try:
            # Plain string paths: this is the hot path of a warm run (one call per chunk).
            with open(os.path.join(self._root, key), "rb") as fh:
                return _read_all(fh)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def read_prefix(self, key: str, size: int) -> bytes | None:
        """At most the first ``size`` bytes, or ``None`` when the file does not exist."""
        try:
            with open(os.path.join(self._root, key), "rb") as fh:
                return fh.read(size)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def exists(self, key: str) -> bool:
        return os.path.isfile(os.path.join(self._root, key))

    def stat(self, key: str) -> FileStat | None:
        try:
            st = os.stat(os.path.join(self._root, key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat_mod.S_ISREG(st.st_mode):
            return None
        return FileStat(st.st_size, st.st_mtime_ns, f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}")

    def _entries(self, prefix: str) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(self.path(prefix)) as entries:
                return list(entries)
        except (FileNotFoundError, NotADirectoryError):
            return []

    def names(self, prefix: str, suffix: str = "") -> list[str]:
        """Names (not keys) of the files directly under ``prefix`` ending in ``suffix``.

        Hidden files (temp files of writers, ``.DS_Store``) are never listed.
        """
        return [
            e.name
            for e in self._entries(prefix)
            if not e.name.startswith(".") and e.name.endswith(suffix) and e.is_file()
        ]

    def folders(self, prefix: str) -> list[str]:
        """Non-hidden folders directly under ``prefix``; symlinked folders are not listed."""
        return [
            e.name
            for e in self._entries(prefix)
            if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
        ]

    def temp_files(self, prefix: str) -> dict[str, FileStat]:
        found = {}
        for e in self._entries(prefix):
            if is_temp_name(e.name) and e.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    st = e.stat(follow_symlinks=False)
                    found[e.name] = FileStat(st.st_size, st.st_mtime_ns, str(st.st_ino))
        return found

    @property
    def background_writes(self) -> bool:
        """Writes wait on the disk only when they fsync."""
        return self.durable

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(record_locks=True, atomic_create=True, fsync=self.durable, folders=True)

    def lock_path(self, key: str) -> str | None:
        """Local path of the claims lock file."""
        return str(self.path(key))

    def check_writable(self, prefix: str) -> None:
        """Raise :class:`StoreError` when ``prefix`` is read-only, or when it or an entry
        directly in it (``chunks/``, ``index/``, ``claims.lock``) is a symlink."""
        self._check_no_symlinks(prefix)
        folder = self.path(prefix)
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent  # the nearest folder that exists: where files go first
        if not os.access(folder, os.W_OK):
            error = OSError(errno.EACCES, "read-only")
            raise store_error("write to", folder, error)

    def _check_no_symlinks(self, prefix: str) -> None:
        link = first_symlink(self._root, prefix, self._refusal) if prefix else None
        if link is not None:
            raise self._refusal(f"{prefix}/{link}")

    # ------------------------------------------------------------------ writing

    def write(self, key: str, data: bytes, *, durable: bool = True) -> None:
        """Write atomically; ``durable=False`` skips the fsync (for rebuildable files).

        Raises
        ------
        StoreError
            The file cannot be written (permissions, full disk, a file in the way, a
            folder on the way that is a symlink); no temp file is left behind.
        """
        path = self.path(key)
        durable = durable and self.durable
        try:
            self._at_parent(key, lambda fd: atomic_write(path, data, durable=durable, dir_fd=fd))
            if durable:
                self._sync_parents(path.parent)
        except StoreError:
            raise
        except OSError as exc:
            raise store_error("write", path, exc) from exc

    def _at_parent(self, key: str, act: Callable[[int | None], _T]) -> _T:
        """``act(fd of the key's folder)``, its folders made if missing and never reached
        through a symlink; once more if a folder vanished meanwhile (``gc``, ``clear``)."""
        try:
            with self._parent(key, create=True) as (fd, _name):
                return act(fd)
        except FileNotFoundError:
            with self._parent(key, create=True) as (fd, _name):
                return act(fd)

    def write_if_absent(self, key: str, data: bytes, *, durable: bool = True) -> bool:
        """Create the file unless it exists; True when this call created it (without an
        fsync when ``durable=False``).

        The content goes to a temp file which is then hard-linked to the target: the link
        fails if the target exists, so of two concurrent writers exactly one wins, and a
        reader never sees a partial file.
        """
        path = self.path(key)
        if os.path.lexists(path):  # the common case: no temp file, no fsync
            return False
        durable = durable and self.durable
        try:
            created = self._at_parent(key, lambda fd: _link_new(path, data, durable, fd))
            if created and durable:
                sync_folder(path.parent)
                self._sync_parents(path.parent)
            return created
        except StoreError:
            raise
        except OSError as exc:
            raise store_error("write", path, exc) from exc

    def _sync_parents(self, folder: Path) -> None:
        """Once per folder a durable file goes to: fsync the folders above it up to the
        root's parent, so folders made by anyone (claims, a params description, this
        write) survive a power cut with the files in them."""
        if folder in self._synced_folders:
            return
        parents = [folder, *folder.parents]
        for parent in parents[1 : parents.index(self.root) + 1] if self.root in parents else []:
            sync_folder(parent)
        with contextlib.suppress(PermissionError):  # not ours: it may not be readable
            sync_folder(self.root.parent)
        self._synced_folders.add(folder)

    def open_lock(self, key: str) -> int | None:
        """Open the claims lock file ``key`` (made if missing) for reading and writing;
        None when it cannot be (a read-only cache). The caller closes the descriptor.

        Raises
        ------
        StoreError
            The file or a folder on the way is a symlink.
        """
        try:
            with self._parent(key, create=True) as (fd, name):
                return os.open(name, os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o644, dir_fd=fd)
        except StoreError:
            raise
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise self._refusal(key) from exc
            logger.debug("swarm-memo: no claims between processes (%s)", exc)
            return None

    # ------------------------------------------------------------------ moving, deleting

    @contextlib.contextmanager
    def _parent(self, key: str, *, create: bool) -> Iterator[tuple[int | None, str]]:
        """``(fd of the key's folder or None, file name)``, no symlink followed below root.

        Without ``dir_fd`` support the folders are checked first and the name is the
        file's full path. Raises :class:`StoreError` when a folder on the way is a
        symlink or not a folder.
        """
        parts = split_key(key)
        if not HAVE_DIR_FD:
            check_no_links(self._root, parts[:-1], self._refusal, create=create)
            yield None, str(self.path(key))
            return
        with folder_fd(self._root, parts[:-1], self._refusal, create=create) as fd:
            yield fd, parts[-1]

    def _refusal(self, key: str) -> StoreError:
        where = self.url(key)
        return StoreError(
            f"refusing to follow {where}: it is a symlink or not a folder (swarm-memo "
            f"never writes, moves or deletes through a link out of {self._root})",
            where,
        )

    def move(self, src: str, dst: str) -> None:
        """Move a file (a symlink moves as the link itself), never through a symlink.

        Raises
        ------
        StoreError
            A folder on either path is a symlink, or the move failed.
        FileNotFoundError
            ``src`` does not exist.
        """
        try:
            with (
                self._parent(src, create=False) as (sfd, sname),
                self._parent(dst, create=True) as (dfd, dname),
            ):
                os.replace(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd)
        except (StoreError, FileNotFoundError):
            raise
        except OSError as exc:
            raise store_error(f"move {self.url(src)} to", self.url(dst), exc) from exc

    def delete(self, key: str) -> None:
        """Delete a file if it exists (a symlink is removed itself, never its target)."""
        try:
            with self._parent(key, create=False) as (fd, name):
                os.unlink(name, dir_fd=fd)
        except (FileNotFoundError, NotADirectoryError):
            return
        except StoreError:
            raise
        except OSError as exc:
            raise store_error("delete", self.url(key), exc) from exc

    def clean_temp(self, prefix: str, grace_seconds: float = TEMP_GRACE_SECONDS) -> int:
        """Remove temp files under ``prefix`` left by killed writers; return how many."""
        cutoff = time.time_ns() - int(grace_seconds * 1e9)
        removed = 0
        for name, st in self.temp_files(prefix).items():
            if st.mtime_ns <= cutoff:
                # Housekeeping during runs: a folder swarm-memo refuses to delete through
                # (a symlink) is skipped here; `swarm-memo gc` reports it.
                with contextlib.suppress(StoreError):
                    self.delete(f"{prefix}/{name}" if prefix else name)
                    removed += 1
        return removed

    def prune(self, prefix: str) -> None:
        """Remove the empty folders at and below ``prefix``; symlinks are left alone."""
        prune(self._root, prefix, self._refusal)

    def symlinks(self, prefix: str) -> list[str]:
        """Keys of the symlinks below ``prefix``, which no write, move or delete follows
        (``[prefix]`` when it is one); ``swarm-memo gc`` names them."""
        return symlinks(self._root, prefix, self._refusal)


def _link_new(path: Path, data: bytes, durable: bool, dir_fd: int | None) -> bool:
    """Create ``path`` with ``data`` unless it exists (see ``write_if_absent``)."""
    tmp = _at(_temp_name(path), dir_fd)
    target = _at(path, dir_fd)
    try:
        _write_file(tmp, data, durable=durable, dir_fd=dir_fd)
        try:
            os.link(tmp, target, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except FileExistsError:
            return False
        except OSError as exc:  # no hard links here (some FUSE or SMB mounts)
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            return _create_exclusive(target, data, durable, dir_fd)
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)


def _create_exclusive(target: str, data: bytes, durable: bool, dir_fd: int | None) -> bool:
    try:
        _write_file(target, data, durable=durable, dir_fd=dir_fd)
    except FileExistsError:
        return False
    return True


def _read_all(fh: io.BufferedReader) -> bytes:
    """The rest of an open file in a ``bytearray`` filled in place: the memory the file
    is read into once is the memory numpy arrays of a codec-2 chunk file are built over
    (writable, no second copy). A file that grew or shrank meanwhile is read to its end.
    Typed ``bytes`` for the :class:`Store` protocol: readers use it as bytes-like only."""
    data = bytearray(os.fstat(fh.fileno()).st_size)
    got = fh.readinto(data)
    del data[got:]
    data += fh.read()
    return cast(bytes, data)
