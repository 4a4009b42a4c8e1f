"""Losses that must not happen (issue 17, items 7-11): a finished point is stored, whatever
fails next to it, whatever the executor; a newer swarm-memo's files survive an older one; a
sweep with no axes works; a stored point survives a power cut."""

from __future__ import annotations

import os
import stat
import threading
import time
import warnings
from pathlib import Path

import pytest

from helpers import CountingExec, LockAt, expected_output
from swarm_memo import PointFailure, SwarmMemo
from swarm_memo.errors import CacheWarning, ExecError

EXECUTORS = ["serial", "thread", "process"]


def memo_for(tmp_path: Path, exec_fn, executor: str, bin_size: int = 4, **kwargs) -> SwarmMemo:
    workers = 1 if executor == "serial" else 2
    return SwarmMemo(tmp_path / "c", {"x": bin_size}, 2, exec_fn=exec_fn, executor=executor,
                     max_workers=workers, verbose=0, **kwargs)  # fmt: skip


# ------------------------------------------------------------------ item 7


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("bin_size", [4, 1])
def test_on_error_raise_stores_the_points_its_exec_chunk_finished(tmp_path, executor, bin_size):
    # exec chunks of 2: (2,) finishes, then (3,) fails in the same exec chunk. With memo
    # chunks of 1 point, (2,)'s chunk is even complete.
    counting = CountingExec(tmp_path / "calls.log", fail_on=(3,))
    memo = memo_for(
        tmp_path, counting, executor, bin_size, on_code_change="ignore"
    )  # fail_on/lock_at: exec_fn state, changed below
    with pytest.raises(ExecError) as info:
        memo.run({}, {"x": [0, 1, 2, 3]})
    assert info.value.point == (3,)
    counting.fail_on = None
    counting.reset()
    output, diag = memo.run({}, {"x": [0, 1, 2, 3]})
    assert output == [expected_output({}, (x,)) for x in range(4)]
    assert counting.calls() == ["(3,)"]  # (2,) was stored although its exec chunk failed
    assert diag.executed_points == 1
    memo.close()


# ------------------------------------------------------------------ item 8


@pytest.mark.parametrize("executor", EXECUTORS)
def test_an_unpicklable_output_is_skipped_like_a_failure_under_every_executor(tmp_path, executor):
    exec_fn = LockAt(tmp_path / "calls.log", lock_at=(2,))
    memo = memo_for(
        tmp_path, exec_fn, executor, on_error="skip", on_code_change="ignore"
    )  # fail_on/lock_at: exec_fn state, changed below
    output, diag = memo.run({}, {"x": [0, 1, 2, 3]})
    assert diag.failed_points == [(2,)]
    assert isinstance(output[2], PointFailure)
    assert output[2].stage == "pickle"
    assert [output[i] for i in (0, 1, 3)] == [expected_output({}, (x,)) for x in (0, 1, 3)]
    exec_fn.lock_at = None
    exec_fn.reset()
    output, diag = memo.run({}, {"x": [0, 1, 2, 3]})
    assert output == [expected_output({}, (x,)) for x in range(4)]
    assert exec_fn.calls() == ["(2,)"]  # the chunk's other points were stored
    assert diag.failed_points == []
    memo.close()


@pytest.mark.parametrize("executor", EXECUTORS)
def test_an_unpicklable_output_raises_the_same_way_under_every_executor(tmp_path, executor):
    exec_fn = LockAt(tmp_path / "calls.log", lock_at=(2,))
    memo = memo_for(
        tmp_path, exec_fn, executor, on_code_change="ignore"
    )  # fail_on/lock_at: exec_fn state, changed below
    with pytest.raises(ExecError, match=r"cannot be pickled .*at point \(2,\)") as info:
        memo.run({}, {"x": [0, 1, 2, 3]})
    assert info.value.point == (2,)
    exec_fn.lock_at = None
    exec_fn.reset()
    memo.run({}, {"x": [0, 1, 2, 3]})
    # (0,) and (1,) are stored; evaluation of the failing exec chunk stopped at (2,)
    assert sorted(exec_fn.calls()) == ["(2,)", "(3,)"]
    memo.close()


# ------------------------------------------------------------------ item 10


def no_axes_memo(tmp_path: Path, counting: CountingExec) -> SwarmMemo:
    return SwarmMemo(tmp_path / "c", {}, 1, exec_fn=counting, executor="serial", verbose=0)


def test_a_sweep_with_no_axes_is_one_memoized_call(tmp_path):
    counting = CountingExec(tmp_path / "calls.log")
    memo = no_axes_memo(tmp_path, counting)
    assert memo.status({"alpha": 1}, {}).missing_points == 1
    output, diag = memo.run({"alpha": 1}, {})
    assert output == [expected_output({"alpha": 1}, ())]
    assert (diag.total_points, diag.executed_points) == (1, 1)
    assert counting.calls() == ["()"]
    assert memo.load({"alpha": 1}, {})[0] == [expected_output({"alpha": 1}, ())]
    assert memo.status({"alpha": 1}, {}).missing_points == 0
    assert memo.run({"alpha": 1}, {})[1].executed_points == 0
    assert memo.run_streaming({"alpha": 1}, {}).executed_points == 0
    assert counting.count() == 1  # nothing ran again
    assert memo.load({"alpha": 2}, {})[0] == []  # other params: nothing stored
    assert memo.run_streaming({"alpha": 2}, {}).executed_points == 1
    assert memo.run({"alpha": 2}, {})[0] == [expected_output({"alpha": 2}, ())]
    assert counting.calls() == ["()", "()"]


def test_the_index_of_a_sweep_with_no_axes_reads_back_without_warnings(tmp_path):
    counting = CountingExec(tmp_path / "calls.log")
    no_axes_memo(tmp_path, counting).run({"alpha": 1}, {})
    # A later sweep of the same params reads the set's index (pytest turns any warning
    # about a "malformed" segment into an error).
    grown = SwarmMemo(tmp_path / "c", {"x": 2}, 1, exec_fn=counting, executor="serial", verbose=0)
    assert grown.run({"alpha": 1}, {"x": [0, 1]})[1].executed_points == 2
    assert list((tmp_path / "c").glob("*/index/*.idx"))


# ------------------------------------------------------------------ item 11


def folder_events(monkeypatch) -> list[tuple[str, str]]:
    """("rename", folder) for every rename, ("fsync", folder) for every fsync of a folder."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst, **kwargs) -> None:
        real_replace(src, dst, **kwargs)
        folder_fd = kwargs.get("dst_dir_fd")  # LocalStore names files relative to their folder
        if folder_fd is None:
            events.append(("rename", os.path.dirname(os.fspath(dst))))
        else:
            events.append(("rename", os.readlink(f"/proc/self/fd/{folder_fd}")))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def run_six_points(root: Path, durable: bool) -> None:
    memo = SwarmMemo(root, {"x": 2}, 2, exec_fn=CountingExec(root.parent / f"{root.name}.log"),
                     max_workers=1, verbose=0, durable=durable)  # fmt: skip
    memo.run({}, {"x": list(range(6))})


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names fds through /proc")
def test_a_stored_chunk_survives_a_power_cut_its_folder_is_fsynced(tmp_path, monkeypatch):
    events = folder_events(monkeypatch)
    run_six_points(tmp_path / "scratch", durable=False)
    assert [e for e in events if e[0] == "fsync"] == []  # durable=False: no fsync at all
    events.clear()
    run_six_points(tmp_path / "c", durable=True)
    monkeypatch.undo()
    (chunks,) = {str(p.parent) for p in tmp_path.glob("c/*/chunks/*.chunk")}
    renames = [i for i, event in enumerate(events) if event == ("rename", chunks)]
    assert len(renames) == 3
    # each chunk file's rename is followed by an fsync of its folder (before the run ends)
    assert ("fsync", chunks) in events[renames[-1] :]
    assert events.count(("fsync", chunks)) <= 3
    # the folders made for them are entries of fsynced folders too
    synced = {folder for kind, folder in events if kind == "fsync"}
    set_folder = str(Path(chunks).parent)
    assert {str(tmp_path), str(tmp_path / "c"), set_folder, chunks} <= synced


def test_writers_renaming_during_a_folder_fsync_share_the_next_one(monkeypatch):
    from swarm_memo.stores import durable as _durable

    calls: list[str] = []
    first_running, release = threading.Event(), threading.Event()

    def slow_fsync(folder: str) -> None:
        calls.append(folder)
        if len(calls) == 1:
            first_running.set()
            assert release.wait(10)

    monkeypatch.setattr(_durable, "_fsync_folder", slow_fsync)
    syncer = _durable._FolderSync()
    threads = [threading.Thread(target=syncer.sync, args=("f",)) for _ in range(4)]
    threads[0].start()
    assert first_running.wait(10)
    for thread in threads[1:]:  # they renamed while the first fsync runs: it misses them
        thread.start()
    deadline = time.monotonic() + 10
    while syncer._requested < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for thread in threads:
        thread.join(10)
    assert calls == ["f", "f"]  # one fsync for the first, one shared by the other three


# ------------------------------------------------------------------ item 9


def as_newer_format(path: Path) -> bytes:
    """Turn a chunk file into an intact file of a newer format (version 3); its bytes."""
    data = bytearray(path.read_bytes())
    data[8:10] = (3).to_bytes(2, "big")  # the format version; the checksum skips the header
    path.write_bytes(bytes(data))
    return bytes(data)


def test_a_file_of_a_newer_format_is_never_overwritten(tmp_path):
    counting = CountingExec(tmp_path / "calls.log")
    memo = SwarmMemo(tmp_path / "c", {"x": 2}, 2, exec_fn=counting, max_workers=1, verbose=0)
    spec = {"x": [0, 1, 2, 3]}
    expected = [expected_output({}, (x,)) for x in range(4)]
    memo.run({}, spec)
    (chunks,) = {p.parent for p in tmp_path.glob("c/*/chunks/*.chunk")}
    newer = min(chunks.glob("*.chunk"), key=lambda p: p.stat().st_mtime_ns)
    newer_bytes = as_newer_format(newer)
    counting.reset()
    with pytest.warns(CacheWarning, match="cannot read"):
        output, diag = memo.run({}, spec)
    assert output == expected
    assert diag.executed_points == 2  # its points are computed here, not read
    assert newer.read_bytes() == newer_bytes  # the newer version's file is untouched
    assert len(list(chunks.glob("*~format2.chunk"))) == 1  # this version's copy
    with pytest.warns(CacheWarning, match="cannot read"):
        output, diag = memo.run({}, spec)
    assert output == expected
    assert diag.executed_points == 0  # ... which later runs read
    assert counting.count() == 2
    with pytest.warns(CacheWarning, match="cannot read"):
        assert memo.load({}, spec, strict=True)[0] == expected
    with pytest.warns(CacheWarning, match="cannot read"):
        assert memo.status({}, spec).missing_points == 0
    with pytest.warns(CacheWarning, match="cannot read"):
        assert memo.run_streaming({}, spec).executed_points == 0
    assert newer.read_bytes() == newer_bytes


def test_a_newer_file_stays_when_this_versions_copy_is_set_aside_for_another_order(tmp_path):
    counting = CountingExec(tmp_path / "calls.log")

    def memo(order: list[str]) -> SwarmMemo:
        return SwarmMemo(tmp_path / "c", {"a": 2, "b": 2}, 4, exec_fn=counting,
                         axis_order=order, max_workers=1, verbose=0)  # fmt: skip

    spec = {"a": [0, 1], "b": [0, 1]}
    memo(["a", "b"]).run({}, spec)
    (newer,) = tmp_path.glob("c/*/chunks/*.chunk")
    newer_bytes = as_newer_format(newer)
    with pytest.warns(CacheWarning, match="cannot read"):
        memo(["a", "b"]).run({}, spec)  # this version's copy, in order (a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unreadable here; another axis order
        output, _ = memo(["b", "a"]).run({}, spec)
    assert output == [expected_output({}, (b, a)) for b in (0, 1) for a in (0, 1)]
    assert newer.read_bytes() == newer_bytes  # neither overwritten nor moved
    names = sorted(p.name[len(newer.stem) :] for p in newer.parent.glob("*.chunk"))
    assert names[:2] == [".chunk", "~format2.chunk"]
    assert len(names) == 3
    assert names[2].startswith("~format2.order-")


def test_compact_never_removes_a_file_of_a_newer_format(tmp_path):
    counting = CountingExec(tmp_path / "calls.log")

    def memo(bin_size: int) -> SwarmMemo:
        return SwarmMemo(tmp_path / "c", {"x": bin_size}, 2, exec_fn=counting,
                         max_workers=1, verbose=0)  # fmt: skip

    spec = {"x": [0, 1, 2, 3]}
    memo(2).run({}, spec)  # files of 2 points, described by the index
    (chunks,) = {p.parent for p in tmp_path.glob("c/*/chunks/*.chunk")}
    newer = min(chunks.glob("*.chunk"), key=lambda p: p.stat().st_mtime_ns)
    newer_bytes = as_newer_format(newer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)  # unreadable here
        memo(4).run({}, spec)  # its points, computed again in a file of another layout
        memo(4).compact({}, spec)  # which holds every point of the newer file
    assert newer.read_bytes() == newer_bytes
