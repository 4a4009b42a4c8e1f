"""One contract for every store: local directory, ``memory://`` and S3 (moto on loopback)."""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from moto_s3 import new_bucket, s3_server
from swarm_memo.stores import local as _local_store
from swarm_memo.stores.local import LocalStore
from swarm_memo.stores.registry import open_store
from swarm_memo.testing import StoreBackend, StoreTests

fsspec = pytest.importorskip("fsspec")


def _disk_full(*_args: Any, **_kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _local_backend(root: Path) -> StoreBackend:
    def all_files() -> list[str]:
        return sorted(
            str(Path(d, f).relative_to(root)).replace(os.sep, "/")
            for d, _, files in os.walk(root)
            for f in files
        )

    def break_writes(monkeypatch: pytest.MonkeyPatch) -> None:
        real_open = open

        class HalfWritten:
            def __init__(self, path: Any, mode: str) -> None:
                self.fh = real_open(path, mode)

            def __enter__(self) -> HalfWritten:
                return self

            def __exit__(self, *exc: object) -> None:
                self.fh.close()

            def write(self, data: bytes) -> int:
                self.fh.write(data[: len(data) // 2])
                self.fh.flush()
                _disk_full()
                return 0

        monkeypatch.setattr(_local_store, "open", HalfWritten, raising=False)

    return StoreBackend(open_store(root), all_files, break_writes)


def _fsspec_backend(url: str, options: dict[str, Any] | None = None) -> StoreBackend:
    store = open_store(url, options)
    fs = store.fs  # type: ignore[attr-defined]
    root = store.root  # type: ignore[attr-defined]

    def all_files() -> list[str]:
        fs.invalidate_cache()
        return sorted(p[len(root) :].lstrip("/") for p in fs.find(root))

    def break_writes(monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(fs, "pipe_file", _disk_full)

    return StoreBackend(store, all_files, break_writes)


@pytest.fixture(scope="module")
def s3_options() -> Iterator[dict[str, Any]]:
    with s3_server() as options:
        yield options


class TestStores(StoreTests):
    """The exported contract (``swarm_memo.testing.StoreTests``) on every store we ship."""

    @pytest.fixture(params=["local", "memory", "s3"])
    def backend(self, request: pytest.FixtureRequest, tmp_path: Path) -> StoreBackend:
        if request.param == "local":
            return _local_backend(tmp_path / "root")
        if request.param == "memory":
            return _fsspec_backend(f"memory://contract-{uuid.uuid4().hex}")
        options = request.getfixturevalue("s3_options")
        return _fsspec_backend(f"s3://{new_bucket(options)}/cache", options)

    def test_writes_run_in_the_background_where_they_wait_on_the_disk_or_the_network(
        self, backend: StoreBackend
    ) -> None:
        store = backend.store
        assert store.background_writes is True  # local stores fsync by default; remote: network
        if isinstance(store, LocalStore):
            assert LocalStore(store.root, durable=False).background_writes is False
