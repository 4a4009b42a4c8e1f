"""Issue 19: no write, move or delete through a symlink out of the root (also when a folder
is swapped for one mid-call), empty objects on object stores, deep params, real
read-only caches."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helpers import CountingExec, read_only_base, run_read_only
from swarm_memo import CacheWarning, SwarmMemo
from swarm_memo.cli import cli
from swarm_memo.errors import StoreError, UnhashableValueError
from swarm_memo.stores import local as _local_store
from swarm_memo.stores import nofollow as _nofollow
from swarm_memo.stores.local import LocalStore

SPEC = {"x": list(range(6))}
REPO = Path(__file__).resolve().parent.parent
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux dir_fd")
posix_only = pytest.mark.skipif(not hasattr(os, "fork"), reason="forks a child")


def make(root: Path | str, counting: CountingExec, **kw: Any) -> SwarmMemo:
    return SwarmMemo(root, {"x": 3}, 3, exec_fn=counting, max_workers=1, verbose=0, **kw)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "precious.txt").write_bytes(b"precious")
    return folder


# --------------------------------------------------------------------------- item 2


@linux_only
def test_delete_move_and_write_take_the_dir_fd_path_on_linux(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _nofollow.HAVE_DIR_FD
    store = LocalStore(tmp_path / "c")
    store.write("s/chunks/a.chunk", b"1")

    def no_fallback(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the lstat fallback was taken")

    calls: list[tuple[str, Any]] = []
    real_unlink, real_replace = os.unlink, os.replace

    def unlink(path: Any, *, dir_fd: int | None = None) -> None:
        calls.append(("unlink", dir_fd))
        real_unlink(path, dir_fd=dir_fd)

    def replace(src: Any, dst: Any, **kwargs: Any) -> None:
        calls.append(("replace", kwargs.get("dst_dir_fd")))
        real_replace(src, dst, **kwargs)

    monkeypatch.setattr(_local_store, "check_no_links", no_fallback)
    monkeypatch.setattr(os, "unlink", unlink)
    monkeypatch.setattr(os, "replace", replace)
    store.write("s/chunks/b.chunk", b"2")
    store.move("s/chunks/a.chunk", ".quarantine/s/a.chunk.1")
    store.delete("s/chunks/b.chunk")
    assert [kind for kind, _ in calls] == ["replace", "replace", "unlink"]
    assert all(isinstance(fd, int) for _, fd in calls)
    monkeypatch.undo()
    assert tree(tmp_path / "c") == {".quarantine/s/a.chunk.1": b"1"}


def swap_for_link(folder: Path, target: Path) -> None:
    """What an attacker does: the folder goes aside, a symlink out takes its place."""
    folder.rename(folder.with_name(folder.name + ".aside"))
    folder.symlink_to(target)


def test_a_folder_swapped_for_a_symlink_just_before_a_delete_is_not_followed(
    tmp_path: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path / "c")
    store.write("s/chunks/a.chunk", b"mine")
    (outside / "a.chunk").write_bytes(b"same name, not ours")
    real_unlink = os.unlink

    def unlink_after_a_swap(path: Any, *, dir_fd: int | None = None) -> None:
        monkeypatch.setattr(os, "unlink", real_unlink)
        swap_for_link(tmp_path / "c" / "s" / "chunks", outside)
        real_unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "unlink", unlink_after_a_swap)
    store.delete("s/chunks/a.chunk")
    assert tree(outside) == {"precious.txt": b"precious", "a.chunk": b"same name, not ours"}
    assert not (tmp_path / "c" / "s" / "chunks.aside" / "a.chunk").exists()  # deleted there


def test_a_folder_swapped_for_a_symlink_during_a_write_writes_nothing_through_it(
    tmp_path: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path / "c")
    store.write("s/chunks/a.chunk", b"old")
    real_replace = os.replace

    def replace_after_a_swap(src: Any, dst: Any, **kwargs: Any) -> None:
        monkeypatch.setattr(os, "replace", real_replace)
        swap_for_link(tmp_path / "c" / "s" / "chunks", outside)
        real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", replace_after_a_swap)
    store.write("s/chunks/a.chunk", b"new")  # in the folder it opened, now aside
    assert tree(outside) == {"precious.txt": b"precious"}
    assert (tmp_path / "c" / "s" / "chunks.aside" / "a.chunk").read_bytes() == b"new"


def test_symlink_race_smoke_deletes_and_writes_nothing_outside_the_root() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(
        [sys.executable, str(REPO / "stress" / "symlink_race.py"), "--smoke"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "failures: 0" in done.stdout


# --------------------------------------------------------------------------- item 3


@pytest.mark.parametrize("component", ["set", "chunks", "index", "claims.lock"])
def test_a_run_refuses_a_symlinked_component_and_writes_nothing_outside(
    tmp_path: Path, outside: Path, component: str
) -> None:
    counting = CountingExec(tmp_path / "calls.log")
    root = tmp_path / "cache"
    make(root, counting).run({}, {"x": [0]})
    (set_dir,) = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    link = set_dir if component == "set" else set_dir / component
    if component == "claims.lock":
        link.unlink()
        (outside / "claims.lock").write_bytes(b"")
    elif component == "index":
        os.replace(link, tmp_path / "old-index")  # its records go; chunks get new ones
    else:
        os.replace(link, tmp_path / "aside")
    link.symlink_to(outside / "claims.lock" if component == "claims.lock" else outside)
    before = tree(outside)
    counting.reset()
    named = set_dir.name if component == "set" else f"{set_dir.name}/{component}"
    with pytest.raises(StoreError, match=f"refusing to follow .*{named}: it is a symlink"):
        make(root, counting).run({}, SPEC)
    assert tree(outside) == before
    assert counting.count() == 0  # stopped before computing


def test_claims_refuse_a_lock_file_that_is_a_symlink(tmp_path: Path, outside: Path) -> None:
    from swarm_memo.cache.claims import claims_for

    store = LocalStore(tmp_path / "c")
    store.write("s/params.json", b"{}")
    (tmp_path / "c" / "s" / "claims.lock").symlink_to(outside / "lock")
    claims = claims_for(store, "s", None)
    with pytest.raises(StoreError, match=r"refusing to follow .*claims\.lock"):
        claims.try_claim("a")
    assert not (outside / "lock").exists()


def test_gc_params_reports_a_set_it_could_not_remove(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "cache"
    make(root, CountingExec(tmp_path / "calls.log")).run({}, SPEC)
    (set_dir,) = [d for d in root.iterdir() if d.is_dir()]
    os.replace(set_dir / "chunks", tmp_path / "aside")
    (set_dir / "chunks").symlink_to(outside)
    result = CliRunner().invoke(cli, ["gc", str(root), "--params", set_dir.name])
    assert result.exit_code == 0, result.output
    assert "removed 0 params set(s) (1 not entirely: see the warnings)" in result.stdout
    assert f"could not remove {set_dir / 'chunks'}: a symlink" in result.stderr
    assert tree(outside) == {"precious.txt": b"precious"}
    assert os.listdir(set_dir) == ["chunks"]  # the rest of the set is gone


# --------------------------------------------------------------------------- item 6


def nested_dict(depth: int) -> dict[str, Any]:
    top: dict[str, Any] = {}
    here = top
    for _ in range(depth - 1):
        here["k"] = {}
        here = here["k"]
    return top


def nested_list(depth: int) -> list[Any]:
    top: list[Any] = []
    here = top
    for _ in range(depth - 1):
        here.append([])
        here = here[0]
    return top


def cycle() -> list[Any]:
    loop: list[Any] = [1]
    loop.append({"back": loop})
    return loop


@pytest.mark.parametrize(
    ("params", "spec", "message"),
    [
        ({"deep": nested_dict(3000)}, SPEC,
         r"params is nested 3001 levels deep, at params\['deep'\]\['k'\]\['k'\]\['k'\]"
         r"\.\.\.\(2994 more levels\)\.\.\.\['k'\]\['k'\]: deeper than"),
        ({"deep": nested_list(10**5)}, SPEC,
         r"params is nested 100001 levels deep, at params\['deep'\]\[0\]\[0\]\[0\]"
         r"\.\.\.\(99994 more levels\)\.\.\.\[0\]\[0\]: deeper than"),
        ({}, {"x": [1, nested_list(5000)]},
         r"split_spec\['x'\]\[1\] is nested 5000 levels deep, at split_spec\['x'\]\[1\]\[0\]"),
        ({"loop": cycle()}, SPEC,
         r"params\['loop'\]\[1\]\['back'\] contains itself \(a reference cycle\)"),
    ],
)  # fmt: skip
def test_deeply_nested_values_raise_unhashable_value_error_naming_depth_and_place(
    tmp_path: Path, params: dict[str, Any], spec: dict[str, Any], message: str
) -> None:
    counting = CountingExec(tmp_path / "calls.log")
    memo = make(tmp_path / "cache", counting)
    with pytest.raises(UnhashableValueError, match=message):
        memo.run(params, spec)
    with pytest.raises(UnhashableValueError, match=message):
        memo.status(params, spec)
    assert counting.count() == 0
    assert not (tmp_path / "cache").exists()


# --------------------------------------------------------------------------- item 5


@pytest.fixture(scope="module")
def s3_options() -> Any:
    from moto_s3 import s3_server

    with s3_server() as options:
        yield options


def empty_one_chunk(url: str, options: dict[str, Any] | None) -> str:
    """Replace the first chunk file of the cache at ``url`` by 0 bytes; return its name."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(url, **(options or {}))
    victim = sorted(p for p in fs.find(root) if p.endswith(".chunk"))[0]
    fs.pipe_file(victim, b"")
    return victim.rsplit("/", 1)[1]


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_an_empty_chunk_file_is_damaged_on_every_store(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "s3":
        from moto_s3 import new_bucket

        options = request.getfixturevalue("s3_options")
        url, kw = f"s3://{new_bucket(options)}/cache", {"storage_options": options}
        cli_options = ["--storage-options", json.dumps(options)]
    else:
        url, kw, cli_options = str(tmp_path / "cache"), {}, []
    counting = CountingExec(tmp_path / "calls.log")
    make(url, counting, **kw).run({}, SPEC)
    name = empty_one_chunk(url, kw.get("storage_options"))
    counting.reset()
    listed = CliRunner().invoke(cli, ["ls", url, "--json", *cli_options])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.stdout)
    assert (row["chunks"], row["unreadable_chunks"], row["points"]) == (2, 1, 3)
    with pytest.warns(CacheWarning, match=f"ignoring damaged cache file .*{name}"):
        status = make(url, counting, **kw).status({}, SPEC)
    assert (status.cached_points, status.missing_points) == (3, 3)
    with pytest.warns(CacheWarning, match=f"ignoring cache file .*{name}: not a swarm-memo"):
        make(url, counting, **kw).run_streaming({}, SPEC)
    assert counting.count() == 3  # the emptied chunk's points, nothing else


# --------------------------------------------------------------------------- item 7


@pytest.fixture
def ro_base() -> Any:
    base = read_only_base()
    yield base
    shutil.rmtree(base, ignore_errors=True)


def files_and_mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def a_write_fails(folder: Path) -> bool:
    try:
        (folder / "probe").write_bytes(b"")
    except PermissionError:
        return True
    return False


@posix_only
def test_reads_work_on_a_real_read_only_cache(ro_base: Path) -> None:
    cache, counting = ro_base / "cache", CountingExec(ro_base / "log" / "calls.log")
    expected, _ = make(cache, counting).run({"a": 1}, SPEC)
    before = files_and_mtimes(cache)

    def reads() -> Any:
        (set_dir,) = [d for d in cache.iterdir() if d.is_dir()]
        memo = make(cache, counting)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a read that tried to write would warn
            listed = CliRunner().invoke(cli, ["ls", str(cache), "--json"])
            verified = CliRunner().invoke(cli, ["verify", str(cache), "--json"])
            return (
                a_write_fails(cache) and a_write_fails(set_dir / "chunks"),
                memo.load({"a": 1}, SPEC),
                memo.status({"a": 1}, SPEC).complete,
                memo.status({"a": 2}, SPEC).missing_points,
                (listed.exit_code, json.loads(listed.stdout)[0]["points"]),
                (verified.exit_code, json.loads(verified.stdout)["ok"]),
            )

    kind, result = run_read_only(cache, reads)
    assert kind == "ok", result
    read_only, loaded, complete, missing, listed, verified = result
    assert read_only  # the child really could not write there
    assert loaded[0] == expected
    assert (complete, missing, listed, verified) == (True, 6, (0, 6), (0, True))
    assert files_and_mtimes(cache) == before
    assert counting.count() == 6  # the first run only


@posix_only
@pytest.mark.parametrize("params", [{"a": 1}, {"a": 2}])  # a stored set, a new one
def test_a_run_on_a_real_read_only_cache_stops_before_computing(
    ro_base: Path, params: dict[str, Any]
) -> None:
    cache, counting = ro_base / "cache", CountingExec(ro_base / "log" / "calls.log")
    make(cache, counting).run({"a": 1}, {"x": [0, 1, 2]})
    before = files_and_mtimes(cache)
    counting.reset()

    def run() -> Any:
        return make(cache, counting).run(params, SPEC)

    kind, error = run_read_only(cache, run)
    assert kind == "raised"
    assert isinstance(error, StoreError), repr(error)
    assert "cannot write to" in str(error)
    assert str(cache) in error.path
    assert counting.count() == 0
    assert files_and_mtimes(cache) == before
