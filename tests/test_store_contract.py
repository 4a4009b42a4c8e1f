"""One contract for every store: local directory, ``memory://`` and S3 (moto on loopback)."""

from __future__ import annotations

import errno
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from moto_s3 import new_bucket, s3_server
from swarm_memo import _local_store
from swarm_memo._local_store import LocalStore
from swarm_memo._remote import open_store
from swarm_memo._store import Store
from swarm_memo.errors import StoreError

fsspec = pytest.importorskip("fsspec")


@dataclass
class Backend:
    """A fresh store plus what the tests need to look behind it."""

    store: Store
    all_files: Callable[[], list[str]]
    """Every file key under the root, hidden and temp files included."""
    break_writes: Callable[[pytest.MonkeyPatch], None]
    """Make the next writes fail half-way with ENOSPC."""


def _disk_full(*_args: Any, **_kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _local_backend(root: Path) -> Backend:
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

    return Backend(open_store(root), all_files, break_writes)


def _fsspec_backend(url: str, options: dict[str, Any] | None = None) -> Backend:
    store = open_store(url, options)
    fs = store.fs  # type: ignore[attr-defined]
    root = store.root  # type: ignore[attr-defined]

    def all_files() -> list[str]:
        fs.invalidate_cache()
        return sorted(p[len(root) :].lstrip("/") for p in fs.find(root))

    def break_writes(monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(fs, "pipe_file", _disk_full)

    return Backend(store, all_files, break_writes)


@pytest.fixture(scope="module")
def s3_options() -> Iterator[dict[str, Any]]:
    with s3_server() as options:
        yield options


@pytest.fixture(params=["local", "memory", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return _local_backend(tmp_path / "root")
    if request.param == "memory":
        return _fsspec_backend(f"memory://contract-{uuid.uuid4().hex}")
    options = request.getfixturevalue("s3_options")
    return _fsspec_backend(f"s3://{new_bucket(options)}/cache", options)


def test_missing_file_reads_as_none(backend: Backend) -> None:
    store = backend.store
    assert store.read("a/missing.bin") is None
    assert store.read_prefix("a/missing.bin", 10) is None
    assert store.stat("a/missing.bin") is None
    assert store.exists("a/missing.bin") is False
    assert store.names("a") == []
    assert store.folders("a") == []


def test_writes_run_in_the_background_where_they_wait_on_the_disk_or_the_network(
    backend: Backend,
) -> None:
    store = backend.store
    assert store.background_writes is True  # local stores fsync by default; remote: network
    if isinstance(store, LocalStore):
        assert LocalStore(store.root, durable=False).background_writes is False


def test_a_writable_store_passes_the_write_check_even_before_its_folders_exist(
    backend: Backend,
) -> None:
    backend.store.check_writable("not/yet/made")
    backend.store.write("not/yet/made/x.bin", b"x")
    assert backend.store.read("not/yet/made/x.bin") == b"x"


def test_write_then_overwrite_replaces_the_whole_file(backend: Backend) -> None:
    store = backend.store
    store.init_root()
    store.write("s/chunks/c.chunk", b"first version, long")
    store.write("s/chunks/c.chunk", b"second")
    assert store.read("s/chunks/c.chunk") == b"second"
    assert store.exists("s/chunks/c.chunk")
    assert [f for f in backend.all_files() if not f.endswith(".gitignore")] == ["s/chunks/c.chunk"]


def test_write_if_absent_creates_once(backend: Backend) -> None:
    store = backend.store
    assert store.write_if_absent("s/params.json", b"one") is True
    assert store.write_if_absent("s/params.json", b"two") is False
    assert store.read("s/params.json") == b"one"


def test_write_if_absent_two_writers_exactly_one_wins(backend: Backend) -> None:
    store = backend.store
    store.write("s/other", b"-")  # the folder exists: both writers race on the file only
    writers = 6
    barrier = threading.Barrier(writers)
    results: dict[int, bool] = {}

    def write(i: int) -> None:
        barrier.wait()
        results[i] = store.write_if_absent("s/params.json", f"writer {i}".encode())

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, won in results.items() if won]
    assert len(winners) == 1
    assert store.read("s/params.json") == f"writer {winners[0]}".encode()
    assert "s/params.json" in backend.all_files()
    assert not [f for f in backend.all_files() if f.endswith(".tmp")]


def test_listings_hide_hidden_and_temp_files(backend: Backend) -> None:
    store = backend.store
    store.write("s/chunks/a.chunk", b"a")
    store.write("s/chunks/b.idx", b"b")
    store.write("s/chunks/.DS_Store", b"c")
    store.write("s/chunks/.a.chunk.0123456789ab.42.tmp", b"half")
    assert sorted(store.names("s/chunks")) == ["a.chunk", "b.idx"]
    assert store.names("s/chunks", ".chunk") == ["a.chunk"]
    assert store.names("s") == []  # folders are not files


def test_folders_lists_visible_subfolders(backend: Backend) -> None:
    store = backend.store
    for key in ("p/x/f", "p/y/z/g", "p/.quarantine/h", "p/file", "q/f"):
        store.write(key, b"1")
    assert sorted(store.folders("p")) == ["x", "y"]
    assert sorted(store.folders("")) == ["p", "q"]
    assert store.folders("p/x") == []


def test_stat_token_changes_when_the_file_is_replaced(backend: Backend) -> None:
    store = backend.store
    store.write("s/f", b"12345")
    first = store.stat("s/f")
    assert first is not None
    assert first.size == 5
    assert store.stat("s/f") == first  # stable while nothing changes
    store.write("s/f", b"abcdef")
    second = store.stat("s/f")
    assert second is not None
    assert second.size == 6
    assert second.token != first.token
    store.write("s/f", b"ABCDEF")
    third = store.stat("s/f")
    assert third is not None
    assert third.token != second.token


def test_read_prefix_returns_the_first_bytes(backend: Backend) -> None:
    store = backend.store
    store.write("s/f", b"0123456789")
    assert store.read_prefix("s/f", 4) == b"0123"
    assert store.read_prefix("s/f", 100) == b"0123456789"


def test_move_and_delete(backend: Backend) -> None:
    store = backend.store
    store.write("s/chunks/a.chunk", b"payload")
    store.move("s/chunks/a.chunk", ".quarantine/s/chunks/a.chunk.1")
    assert store.read("s/chunks/a.chunk") is None
    assert store.read(".quarantine/s/chunks/a.chunk.1") == b"payload"
    store.delete(".quarantine/s/chunks/a.chunk.1")
    assert store.read(".quarantine/s/chunks/a.chunk.1") is None
    store.delete(".quarantine/s/chunks/a.chunk.1")  # deleting a missing file is fine
    store.delete("never/was")
    with pytest.raises(FileNotFoundError):
        store.move("s/chunks/a.chunk", "elsewhere")


def test_prune_removes_empty_folders_only(backend: Backend) -> None:
    store = backend.store
    store.write("s/chunks/a.chunk", b"a")
    store.write("s/index/x.idx", b"x")
    store.delete("s/index/x.idx")
    store.prune("s")
    assert store.folders("s") == ["chunks"]
    store.delete("s/chunks/a.chunk")
    store.prune("s")
    assert store.folders("") == []
    assert backend.all_files() == []


def test_failed_write_leaves_old_content_and_no_temp_file(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = backend.store
    store.write("s/chunks/a.chunk", b"old content")
    before = backend.all_files()
    backend.break_writes(monkeypatch)
    with pytest.raises(StoreError) as info:
        store.write("s/chunks/a.chunk", b"new content that will not fit")
    assert info.value.errno == errno.ENOSPC
    assert "a.chunk" in str(info.value)
    assert "a.chunk" in info.value.path
    with pytest.raises(StoreError):
        store.write_if_absent("s/chunks/b.chunk", b"new")
    monkeypatch.undo()
    assert store.read("s/chunks/a.chunk") == b"old content"
    assert backend.all_files() == before
    assert store.read("s/chunks/b.chunk") is None
