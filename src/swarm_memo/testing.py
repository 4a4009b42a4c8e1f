"""Tests a third-party :class:`~swarm_memo.stores.base.Store` can reuse (like zarr's
``zarr.testing.store.StoreTests``): subclass :class:`StoreTests` in your test suite and
give it a ``backend`` fixture returning a :class:`StoreBackend` around a fresh store::

    from swarm_memo.testing import StoreBackend, StoreTests

    class TestMyStore(StoreTests):
        @pytest.fixture
        def backend(self, tmp_path):
            store = MyStore(tmp_path)
            return StoreBackend(store, all_files=..., break_writes=...)

swarm-memo runs the same class against its local store, ``memory://`` and S3 (moto).
Needs pytest (imported here, never by ``swarm_memo`` itself).
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from swarm_memo.errors import StoreError
from swarm_memo.stores.base import Store


@dataclass
class StoreBackend:
    """A fresh store plus what the tests need to look behind it."""

    store: Store
    all_files: Callable[[], list[str]]
    """Every file key under the root, hidden and temp files included."""
    break_writes: Callable[[pytest.MonkeyPatch], None]
    """Make the next writes fail half-way with ENOSPC."""


class StoreTests:
    """The contract every store meets; a subclass provides the ``backend`` fixture."""

    def test_capabilities_are_declared(self, backend: StoreBackend) -> None:
        caps = backend.store.capabilities
        assert isinstance(caps.record_locks, bool)
        assert (backend.store.lock_path("s/claims.lock") is not None) == caps.record_locks

    def test_missing_file_reads_as_none(self, backend: StoreBackend) -> None:
        store = backend.store
        assert store.read("a/missing.bin") is None
        assert store.read_prefix("a/missing.bin", 10) is None
        assert store.stat("a/missing.bin") is None
        assert store.exists("a/missing.bin") is False
        assert store.names("a") == []
        assert store.folders("a") == []

    def test_a_writable_store_passes_the_write_check_even_before_its_folders_exist(
        self,
        backend: StoreBackend,
    ) -> None:
        backend.store.check_writable("not/yet/made")
        backend.store.write("not/yet/made/x.bin", b"x")
        assert backend.store.read("not/yet/made/x.bin") == b"x"

    def test_write_then_overwrite_replaces_the_whole_file(self, backend: StoreBackend) -> None:
        store = backend.store
        store.init_root()
        store.write("s/chunks/c.chunk", b"first version, long")
        store.write("s/chunks/c.chunk", b"second")
        assert store.read("s/chunks/c.chunk") == b"second"
        assert store.exists("s/chunks/c.chunk")
        assert [f for f in backend.all_files() if not f.endswith(".gitignore")] == [
            "s/chunks/c.chunk"
        ]

    def test_write_if_absent_creates_once(self, backend: StoreBackend) -> None:
        store = backend.store
        assert store.write_if_absent("s/params.json", b"one") is True
        assert store.write_if_absent("s/params.json", b"two") is False
        assert store.read("s/params.json") == b"one"

    def test_write_if_absent_two_writers_exactly_one_wins(self, backend: StoreBackend) -> None:
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

    def test_listings_hide_hidden_and_temp_files(self, backend: StoreBackend) -> None:
        store = backend.store
        store.write("s/chunks/a.chunk", b"a")
        store.write("s/chunks/b.idx", b"b")
        store.write("s/chunks/.DS_Store", b"c")
        store.write("s/chunks/.a.chunk.0123456789ab.42.tmp", b"half")
        assert sorted(store.names("s/chunks")) == ["a.chunk", "b.idx"]
        assert store.names("s/chunks", ".chunk") == ["a.chunk"]
        assert store.names("s") == []  # folders are not files

    def test_folders_lists_visible_subfolders(self, backend: StoreBackend) -> None:
        store = backend.store
        for key in ("p/x/f", "p/y/z/g", "p/.quarantine/h", "p/file", "q/f"):
            store.write(key, b"1")
        assert sorted(store.folders("p")) == ["x", "y"]
        assert sorted(store.folders("")) == ["p", "q"]
        assert store.folders("p/x") == []

    def test_stat_token_changes_when_the_file_is_replaced(self, backend: StoreBackend) -> None:
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

    def test_read_prefix_returns_the_first_bytes(self, backend: StoreBackend) -> None:
        store = backend.store
        store.write("s/f", b"0123456789")
        assert store.read_prefix("s/f", 4) == b"0123"
        assert store.read_prefix("s/f", 100) == b"0123456789"

    def test_move_and_delete(self, backend: StoreBackend) -> None:
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

    def test_prune_removes_empty_folders_only(self, backend: StoreBackend) -> None:
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
        self, backend: StoreBackend, monkeypatch: pytest.MonkeyPatch
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
