"""A byte store on any fsspec file system: ``memory://``, ``s3://``, ``gcs://``, ...

Object stores have no rename, so nothing is staged under a temp name: a file is written
by one ``pipe`` (a single PUT on S3-like stores, which readers see whole or not at all)
from the driver process only; workers never touch the store. Object stores have no file
locks: on S3 runs claim chunks with lease objects (``atomic_create``, see ``_leases``);
elsewhere processes sharing a remote cache stay correct (every write is whole and
self-checking) but may compute the same chunk twice.

``write_if_absent`` is a conditional PUT (``If-None-Match: *``) where fsspec offers it
(s3fs); elsewhere it is a check then a write, made atomic between the threads of one
process by a lock (enough for ``memory://``), not between processes.
"""

from __future__ import annotations

import contextlib
import posixpath
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Protocol, TypedDict

from swarm_memo.stores.base import Capabilities, FileStat, store_error

_CREATE_LOCK = threading.Lock()


def _mtime_ns(info: Mapping[str, object]) -> int:
    value = info.get("LastModified", info.get("mtime", info.get("created")))
    if isinstance(value, datetime):
        return int(value.timestamp() * 1e9)
    if isinstance(value, (int, float)):
        return int(value * 1e9)
    return 0


class _Entry(TypedDict):
    """What :meth:`FsspecStore._ls` reads of an entry of ``fs.ls(path, detail=True)`` (every
    fsspec file system gives these two keys; the others depend on the file system)."""

    name: str
    type: str


class FsspecStore:
    """Files under a root URL of an fsspec file system, by ``/``-separated keys.

    Parameters
    ----------
    url
        The root, e.g. ``s3://bucket/cache`` or ``memory://sweeps``.
    storage_options
        Passed to the fsspec file system (credentials, ``endpoint_url``, ...).
    """

    def __init__(self, url: str, storage_options: Mapping[str, object] | None = None) -> None:
        import fsspec

        fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        self.fs = fs
        self.root = root.rstrip("/")
        self._url = url.rstrip("/")
        self._exclusive_put = "s3" in _protocols(fs)
        # Claims are then lease objects (_leases): creation is atomic between processes.
        self.background_writes = True  # a write is a round trip to the store
        self.capabilities = Capabilities(
            record_locks=False, atomic_create=self._exclusive_put, fsync=False, folders=False
        )

    def __repr__(self) -> str:
        return f"FsspecStore({self._url!r})"

    def _path(self, key: str) -> str:
        return posixpath.join(self.root, key) if key else self.root

    def url(self, key: str) -> str:
        return posixpath.join(self._url, key) if key else self._url

    def init_root(self) -> None:
        try:
            self.fs.makedirs(self.root, exist_ok=True)
        except OSError as exc:
            raise store_error("create the cache root", self._url, exc) from exc

    # ------------------------------------------------------------------ reading

    def read(self, key: str) -> bytes | None:
        try:
            data: bytes = self.fs.cat_file(self._path(key))
        except (FileNotFoundError, IsADirectoryError):
            return None
        return data

    def read_prefix(self, key: str, size: int) -> bytes | None:
        try:
            data: bytes = self.fs.cat_file(self._path(key), start=0, end=size)
        except (FileNotFoundError, IsADirectoryError):
            return None
        except OSError:
            # S3 answers a ranged GET of an empty object with 416 "range not
            # satisfiable": an empty object has an empty prefix (a damaged chunk file).
            stat = self.stat(key)
            if stat is None:
                return None
            if stat.size == 0:
                return b""
            raise
        return data

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def stat(self, key: str) -> FileStat | None:
        path = self._path(key)
        self.fs.invalidate_cache(path)
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return None
        if info.get("type") != "file":
            return None
        size = int(info.get("size") or 0)
        mtime = _mtime_ns(info)
        etag = info.get("ETag") or info.get("etag")
        token = str(etag) if etag else f"{size}-{mtime}"
        return FileStat(size, mtime, token)

    def _ls(self, prefix: str) -> list[_Entry]:
        path = self._path(prefix)
        self.fs.invalidate_cache(path)  # other processes write here too
        try:
            entries: list[_Entry] = self.fs.ls(path, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return entries

    def _listed(self, prefix: str, kind: str) -> list[str]:
        out = []
        for entry in self._ls(prefix):
            name = posixpath.basename(entry["name"].rstrip("/"))
            if entry.get("type") == kind and name and not name.startswith("."):
                out.append(name)
        return out

    def names(self, prefix: str, suffix: str = "") -> list[str]:
        return [n for n in self._listed(prefix, "file") if n.endswith(suffix)]

    def folders(self, prefix: str) -> list[str]:
        return self._listed(prefix, "directory")

    def temp_files(self, prefix: str) -> dict[str, FileStat]:
        return {}  # writes are single PUTs: there are never temp files

    def lock_path(self, key: str) -> str | None:
        return None

    def check_writable(self, prefix: str) -> None:
        return None  # only a write tells (and a failed write raises StoreError)

    # ------------------------------------------------------------------ writing

    def write(self, key: str, data: bytes, *, durable: bool = True) -> None:
        path = self._path(key)
        try:
            self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
            self.fs.pipe_file(path, data)
        except OSError as exc:
            raise store_error("write", self.url(key), exc) from exc

    def write_if_absent(self, key: str, data: bytes, *, durable: bool = True) -> bool:
        path = self._path(key)
        try:
            if self._exclusive_put:
                return self._create(path, data)
            with _CREATE_LOCK:
                self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
                return self._create(path, data)
        except OSError as exc:
            raise store_error("write", self.url(key), exc) from exc

    def _create(self, path: str, data: bytes) -> bool:
        try:
            self.fs.pipe_file(path, data, mode="create")
        except FileExistsError:
            return False
        return True

    def move(self, src: str, dst: str) -> None:
        try:
            self.fs.mv(self._path(src), self._path(dst))
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise store_error(f"move {self.url(src)} to", self.url(dst), exc) from exc

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(key))

    def clean_temp(self, prefix: str, grace_seconds: float = 0.0) -> int:
        return 0  # writes are single PUTs: there are never temp files

    def prune(self, prefix: str) -> None:
        """Remove empty folders (pseudo-folders of ``memory://``; a no-op on S3)."""
        path = self._path(prefix)
        with contextlib.suppress(OSError, ValueError):
            for folder in sorted(self.fs.find(path, withdirs=True), key=len, reverse=True):
                if self.fs.isdir(folder) and not self.fs.ls(folder):
                    self.fs.rmdir(folder)
            if self.fs.isdir(path) and not self.fs.ls(path):
                self.fs.rmdir(path)


class _FileSystem(Protocol):
    """What :func:`_protocols` reads of an fsspec file system."""

    protocol: str | tuple[str, ...]


def _protocols(fs: _FileSystem) -> set[str]:
    protocol = fs.protocol
    return {protocol} if isinstance(protocol, str) else set(protocol)
