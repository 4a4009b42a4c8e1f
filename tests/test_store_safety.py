"""Trust: a cache root that cannot be one, symlinks out of the root, failed writes."""

from __future__ import annotations

import errno
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helpers import CountingExec, chunk_files, expected_output, read_only_base, run_read_only
from swarm_memo import CacheWarning, SwarmMemo
from swarm_memo.cli import cli
from swarm_memo.errors import SpecError, StoreError
from swarm_memo.stores import local as store_module
from swarm_memo.stores.local import LocalStore
from swarm_memo.stores.registry import open_store, register_store, split_scheme, unregister_store

SPEC = {"x": list(range(6))}


def make(root: Any, counting: CountingExec) -> SwarmMemo:
    return SwarmMemo(root, {"x": 3}, 3, exec_fn=counting, max_workers=1, verbose=0)


def all_files(root: Path) -> list[str]:
    return sorted(str(Path(d, f).relative_to(root)) for d, _, fs in os.walk(root) for f in fs)


# --------------------------------------------------------------------------- cache_root


def test_cache_root_that_is_a_file_fails_at_construction(tmp_path: Path, counting) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(SpecError, match=r"cache_root .*file.* is not a directory"):
        make(tmp_path / "file", counting)
    with pytest.raises(SpecError, match=r"is not a directory"):
        make(tmp_path / "file" / "below", counting)


def test_cache_root_that_is_a_dangling_symlink_fails_at_construction(
    tmp_path: Path, counting
) -> None:
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(SpecError, match=r"cache_root .*link.* is a dangling symlink"):
        make(tmp_path / "link", counting)


def test_cache_root_may_be_a_symlink_to_a_folder(tmp_path: Path, counting) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    output, _ = make(tmp_path / "link", counting).run({}, SPEC)
    assert output == [expected_output({}, (x,)) for x in range(6)]
    assert any(f.endswith(".chunk") for f in all_files(tmp_path / "real"))


@pytest.mark.parametrize(
    ("location", "scheme"),
    [
        ("C:\\data\\cache", None),
        ("C://data", None),
        ("relative/dir", None),
        ("/abs/dir", None),
        ("file:///abs/dir", "file"),
        ("s3://bucket/key", "s3"),
        ("MEMORY://x", "memory"),
        ("gcs+x://b", "gcs+x"),
    ],
)
def test_scheme_parsing(location: str, scheme: str | None) -> None:
    assert split_scheme(location)[0] == scheme


def test_file_url_and_windows_paths_are_local(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}")
    assert isinstance(store, LocalStore)
    assert store.root == tmp_path
    with pytest.raises(SpecError, match="storage_options only apply to a URL"):
        open_store(f"file://{tmp_path}", {"anon": True})
    with pytest.raises(SpecError, match="storage_options only apply to a URL"):
        open_store("C:\\cache", {"anon": True})


def test_registered_scheme_gets_its_factory(tmp_path: Path) -> None:
    seen: list[tuple[str, Any]] = []

    def factory(url: str, options: dict[str, Any] | None) -> LocalStore:
        seen.append((url, options))
        return LocalStore(tmp_path / "custom")

    register_store("mystore", factory)
    try:
        store = open_store("mystore://anything", {"token": 1})
    finally:
        unregister_store("mystore")
    assert isinstance(store, LocalStore)
    assert seen == [("mystore://anything", {"token": 1})]
    with pytest.raises(SpecError, match="'file' scheme"):
        register_store("file", factory)
    with pytest.raises(SpecError, match="URL scheme"):
        register_store("no way", factory)


# --------------------------------------------------------------------------- symlinks


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the cache with a precious file in it."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "precious.txt").write_text("keep me")
    return folder


def test_move_into_a_symlinked_quarantine_is_refused(tmp_path: Path, outside: Path) -> None:
    store = LocalStore(tmp_path / "cache")
    store.write("s/chunks/a.chunk", b"damaged")
    (tmp_path / "cache" / ".quarantine").symlink_to(outside)
    with pytest.raises(StoreError, match=r"refusing to follow .*\.quarantine") as info:
        store.move("s/chunks/a.chunk", ".quarantine/s/chunks/a.chunk.1")
    assert info.value.path.endswith(".quarantine")
    assert store.read("s/chunks/a.chunk") == b"damaged"
    assert all_files(outside) == ["precious.txt"]


def test_delete_through_a_symlinked_set_folder_is_refused(tmp_path: Path, outside: Path) -> None:
    store = LocalStore(tmp_path / "cache")
    store.init_root()
    (tmp_path / "cache" / "set").symlink_to(outside)
    with pytest.raises(StoreError, match=r"refusing to follow .*set"):
        store.delete("set/precious.txt")
    with pytest.raises(StoreError, match="refusing to follow"):
        store.move("set/precious.txt", "mine.txt")
    assert store.clean_temp("set", grace_seconds=0) == 0
    assert (outside / "precious.txt").read_text() == "keep me"


def test_deleting_a_symlinked_file_removes_the_link_only(tmp_path: Path, outside: Path) -> None:
    store = LocalStore(tmp_path / "cache")
    store.write("s/keep", b"1")
    (tmp_path / "cache" / "s" / "link.chunk").symlink_to(outside / "precious.txt")
    store.delete("s/link.chunk")
    assert not (tmp_path / "cache" / "s" / "link.chunk").is_symlink()
    assert (outside / "precious.txt").read_text() == "keep me"


def test_run_does_not_quarantine_through_a_symlink(tmp_path: Path, outside: Path) -> None:
    counting = CountingExec(tmp_path / "calls.log")
    root = tmp_path / "cache"
    make(root, counting).run({}, SPEC)
    victim = sorted(root.rglob("*.chunk"))[0]
    victim.write_bytes(b"damaged")
    (root / ".quarantine").symlink_to(outside)
    counting.reset()
    with pytest.warns(CacheWarning, match="could not move it: refusing to follow"):
        output, _ = make(root, counting).run({}, SPEC)
    assert output == [expected_output({}, (x,)) for x in range(6)]
    assert counting.count() == 3
    assert all_files(outside) == ["precious.txt"]


def test_gc_quarantine_does_not_follow_a_quarantine_symlink(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "cache"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)
        make(root, CountingExec(tmp_path / "calls.log")).run({}, SPEC)
    (root / ".quarantine").symlink_to(outside)
    result = CliRunner().invoke(cli, ["gc", str(root), "--quarantine"])
    assert result.exit_code == 0, result.output
    assert "refusing to follow" in result.stderr
    assert (outside / "precious.txt").read_text() == "keep me"
    assert (root / ".quarantine").is_symlink()


def test_gc_params_leaves_a_symlinked_chunks_folder_alone(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "cache"
    make(root, CountingExec(tmp_path / "calls.log")).run({}, SPEC)
    (set_dir,) = [d for d in root.iterdir() if d.is_dir()]
    for chunk in (set_dir / "chunks").iterdir():
        chunk.unlink()
    (set_dir / "chunks").rmdir()
    (set_dir / "chunks").symlink_to(outside)
    result = CliRunner().invoke(cli, ["gc", str(root), "--params", set_dir.name])
    assert result.exit_code == 0, result.output
    assert (outside / "precious.txt").read_text() == "keep me"


# --------------------------------------------------------------------------- failed writes


def _fail_opens(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    def refuse(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(store_module, "open", refuse, raising=False)


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS, errno.ENOSPC])
def test_failed_write_raises_store_error_naming_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    store = LocalStore(tmp_path / "cache")
    store.write("s/a.chunk", b"old")
    _fail_opens(monkeypatch, code)
    with pytest.raises(StoreError) as info:
        store.write("s/a.chunk", b"new")
    assert info.value.errno == code
    assert info.value.path == str(tmp_path / "cache" / "s" / "a.chunk")
    assert str(tmp_path / "cache" / "s" / "a.chunk") in str(info.value)
    monkeypatch.undo()
    assert all_files(tmp_path / "cache") == ["s/a.chunk"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks a child")
def test_read_only_folder_raises_store_error() -> None:
    base = read_only_base()  # as root, the write runs as nobody: root ignores modes
    try:
        store = LocalStore(base / "cache")
        store.write("s/a.chunk", b"old")
        kind, error = run_read_only(base / "cache", lambda: store.write("s/a.chunk", b"new"))
        assert kind == "raised"
        assert isinstance(error, StoreError)
        assert error.path == str(base / "cache" / "s" / "a.chunk")
        assert "Permission denied" in str(error)  # EACCES (errno is not pickled)
        assert all_files(base / "cache") == ["s/a.chunk"]
        assert store.read("s/a.chunk") == b"old"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_run_on_a_full_disk_raises_store_error_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counting
) -> None:
    memo = make(tmp_path / "cache", counting)
    real_open = open

    class DiskFull:
        def __init__(self, path: Any, mode: str) -> None:
            self.fh = real_open(path, mode)

        def __enter__(self) -> DiskFull:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()

        def write(self, data: bytes) -> int:
            self.fh.write(data[:10])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module, "open", DiskFull, raising=False)
    with pytest.raises(StoreError, match="No space left on device") as info:
        memo.run({}, SPEC)
    assert info.value.errno == errno.ENOSPC
    assert str(tmp_path / "cache") in info.value.path
    monkeypatch.undo()
    assert not [f for f in all_files(tmp_path / "cache") if f.endswith(".tmp")]


@pytest.mark.parametrize("durable", [True, False])  # writer threads, or inline writes
def test_a_failed_chunk_write_stops_the_run_and_keeps_the_chunks_written_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counting, durable: bool
) -> None:
    memo = SwarmMemo(tmp_path / "cache", {"x": 1}, 1, exec_fn=counting, max_workers=1,
                     verbose=0, durable=durable)  # fmt: skip
    real_write = LocalStore.write
    chunk_writes = []

    def third_chunk_fails(self: LocalStore, key: str, data: bytes, **kwargs: Any) -> None:
        if "/chunks/" in key:
            chunk_writes.append(key)
            if len(chunk_writes) == 3:
                raise StoreError(f"cannot write {key}: No space left on device", key)
        real_write(self, key, data, **kwargs)

    monkeypatch.setattr(LocalStore, "write", third_chunk_fails)
    spec = {"x": list(range(6))}
    with pytest.raises(StoreError, match="No space left"):
        memo.run({}, spec)
    monkeypatch.undo()
    stored = len(chunk_files(tmp_path / "cache"))
    assert 2 <= stored <= 5
    if not durable:
        assert stored == 2  # written on the driver: the run stopped at the failed write
    before = counting.count()
    output, diag = memo.run({}, spec)
    assert output == [expected_output({}, (x,)) for x in range(6)]
    assert diag.executed_points == 6 - stored == counting.count() - before
