"""A byte store on any fsspec file system: ``memory://``, ``s3://``, ``gcs://``, ...

Object stores have no rename, so nothing is staged under a temp name: a chunk file is
written by one ``pipe`` (a single PUT on S3-like stores, which readers see whole or not
at all) from the driver process only; workers never touch the store. Claims need file
locks, which object stores lack: processes sharing a remote cache stay correct (every
write is whole and self-checking) but may compute the same chunk twice.
"""

from __future__ import annotations

import contextlib
import posixpath
from typing import Any

from ._store import FileStat, Store
from .errors import SpecError


class FsspecStore:
    """Files under a root URL of an fsspec file system, by ``/``-separated keys."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        import fsspec

        fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        self.fs = fs
        self.root = root.rstrip("/")
        self._url = url.rstrip("/")

    def __repr__(self) -> str:
        return f"FsspecStore({self._url!r})"

    def _path(self, key: str) -> str:
        return posixpath.join(self.root, key) if key else self.root

    def url(self, key: str) -> str:
        return posixpath.join(self._url, key)

    def read(self, key: str) -> bytes | None:
        try:
            data: bytes = self.fs.cat_file(self._path(key))
        except FileNotFoundError:
            return None
        return data

    def write(self, key: str, data: bytes, *, durable: bool = True) -> None:
        path = self._path(key)
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        self.fs.pipe_file(path, data)

    def write_if_absent(self, key: str, data: bytes) -> bool:
        if self.exists(key):
            return False
        self.write(key, data)
        return True

    def read_prefix(self, key: str, size: int) -> bytes | None:
        try:
            data: bytes = self.fs.cat_file(self._path(key), start=0, end=size)
        except FileNotFoundError:
            return None
        return data

    def stat(self, key: str) -> FileStat | None:
        try:
            info = self.fs.info(self._path(key))
        except FileNotFoundError:
            return None
        size = int(info.get("size") or 0)
        token = str(
            info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("created")
        )
        return FileStat(size, 0, f"{token}-{size}")

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._path(key)))

    def names(self, prefix: str, suffix: str = "") -> list[str]:
        path = self._path(prefix)
        self.fs.invalidate_cache(path)  # other processes write here too
        try:
            entries = self.fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        names = []
        for entry in entries:
            name = posixpath.basename(entry["name"].rstrip("/"))
            if entry.get("type") == "file" and not name.startswith(".") and name.endswith(suffix):
                names.append(name)
        return names

    def move(self, src: str, dst: str) -> None:
        self.fs.mv(self._path(src), self._path(dst))

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(key))

    def clean_temp(self, prefix: str, grace_seconds: float = 0.0) -> int:
        return 0  # writes are single PUTs: there are never temp files

    def lock_path(self, key: str) -> str | None:
        return None

    def init_root(self) -> None:
        self.fs.makedirs(self.root, exist_ok=True)


def open_store(cache_root: Any, storage_options: dict[str, Any] | None = None) -> Store:
    """A LocalStore for paths and ``file://`` URLs, an FsspecStore for other URLs."""
    from ._store import LocalStore

    text = str(cache_root)
    if "://" not in text:
        if storage_options:
            raise SpecError(
                f"storage_options only apply to a URL cache_root (s3://..., memory://...); "
                f"cache_root {text!r} is a local path"
            )
        return LocalStore(cache_root)
    protocol, _, rest = text.partition("://")
    if protocol == "file" and not storage_options:
        return LocalStore(rest)  # keeps atomic renames and claims
    return FsspecStore(text, storage_options)
