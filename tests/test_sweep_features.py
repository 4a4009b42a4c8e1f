"""Chunk order, stalled claims, and errors that name what went wrong."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from helpers import CountingExec, expected_output
from swarm_memo import CollateError, ExecError, SpecError, StoreError, SwarmMemo
from swarm_memo.errors import SpecTypeError
from swarm_memo.stores import local as store_module


def order_log(tmp_path: Path, **kwargs):
    counting = CountingExec(tmp_path / "calls.log")
    memo = SwarmMemo(tmp_path / "c", {"x": 1}, 1, exec_fn=counting, max_workers=1, verbose=0,
                     **kwargs)  # fmt: skip
    return memo, counting


def test_coarse_to_fine_computes_bit_reversed_chunks_and_keeps_the_output_order(tmp_path):
    memo, counting = order_log(tmp_path, chunk_order="coarse-to-fine")
    output, _ = memo.run({}, {"x": list(range(8))})
    assert counting.calls() == [repr((x,)) for x in (0, 4, 2, 6, 1, 5, 3, 7)]
    assert output == [expected_output({}, (x,)) for x in range(8)]


def test_coarse_to_fine_covers_a_2d_grid_evenly_first(tmp_path):
    counting = CountingExec(tmp_path / "calls.log")
    memo = SwarmMemo(tmp_path / "c", {"a": 1, "b": 1}, 1, exec_fn=counting, max_workers=1,
                     verbose=0, chunk_order="coarse-to-fine")  # fmt: skip
    memo.run({}, {"a": list(range(4)), "b": list(range(4))})
    first_four = [eval(call) for call in counting.calls()[:4]]
    assert first_four == [(0, 0), (0, 2), (2, 0), (2, 2)]


def test_a_callable_chunk_order_receives_sub_specs_and_decides(tmp_path):
    seen = []

    def backwards(sub_specs):
        seen.extend(sub_specs)
        return list(range(len(sub_specs)))[::-1]

    memo, counting = order_log(tmp_path, chunk_order=backwards)
    output, _ = memo.run({}, {"x": [10, 20, 30]})
    assert seen == [{"x": [10]}, {"x": [20]}, {"x": [30]}]
    assert counting.calls() == ["(30,)", "(20,)", "(10,)"]
    assert output == [expected_output({}, (x,)) for x in (10, 20, 30)]


def test_a_chunk_order_that_is_not_a_permutation_is_refused(tmp_path):
    memo, counting = order_log(tmp_path, chunk_order=lambda specs: [0, 0])
    with pytest.raises(SpecError, match=r"each chunk index 0\.\.1 exactly once"):
        memo.run({}, {"x": [1, 2]})
    assert counting.count() == 0


def test_a_stalled_claim_is_taken_over_after_claim_timeout(tmp_path):
    """Another live process claims a chunk and never writes it (a suspended job)."""
    from swarm_memo.cache.claims import claim_offset
    from swarm_memo.run.cells import chunk_claim_names
    from swarm_memo.run.plan import Access, plan_run

    memo, counting = order_log(tmp_path, claim_timeout=0.5)
    spec = {"x": [1, 2, 3]}
    plan = plan_run(memo.config, {}, spec, access=Access.READ)
    lock = tmp_path / "c" / plan.pset.set_id / "claims.lock"
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time\n"
         "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
         "fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, int(sys.argv[2]))\n"
         "print('held', flush=True)\n"
         "time.sleep(120)\n",
         str(lock), str(claim_offset(chunk_claim_names(plan, plan.named_chunks[1][1])[0]))],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        output, _ = memo.run({}, spec)
        assert output == [expected_output({}, (x,)) for x in spec["x"]]
        assert sorted(counting.calls()) == ["(1,)", "(2,)", "(3,)"]  # (2,) computed here
        assert holder.poll() is None  # the holder was alive all along
    finally:
        holder.kill()
        holder.communicate()


def test_a_waiting_run_says_how_many_chunks_it_waits_for(tmp_path, monkeypatch):
    from swarm_memo.execution import progress as _progress

    messages = []
    monkeypatch.setattr(_progress.Progress, "waiting", lambda self, n: messages.append(n))
    memo, counting = order_log(tmp_path, claim_timeout=0.3)
    from swarm_memo.cache.claims import Claims

    monkeypatch.setattr(Claims, "try_claim", lambda self, name: False)  # held elsewhere
    memo.run({}, {"x": [1, 2]})
    assert counting.count() == 2  # taken over after the timeout
    assert 2 in messages  # both chunks were waited for, then taken over
    assert messages[-1] == 0


def unpicklable(params, point):
    return threading.Lock() if point[0] == 2 else point[0]


@pytest.mark.parametrize("executor", ["serial", "thread"])
def test_an_unpicklable_output_names_its_point_in_process_executors_too(tmp_path, executor):
    memo = SwarmMemo(tmp_path, {"x": 3}, 1, exec_fn=unpicklable, executor=executor, verbose=0)
    with pytest.raises(ExecError, match=r"cannot be pickled .*at point \(2,\)") as info:
        memo.run({}, {"x": [1, 2, 3]})
    assert info.value.point == (2,)


def test_a_collate_fn_that_raises_names_the_chunk(tmp_path):
    def picky(outputs):
        if 3 in outputs:
            raise ValueError("no threes")
        return outputs

    memo = SwarmMemo(tmp_path, {"x": 2}, 2, exec_fn=lambda p, pt: pt[0], collate_fn=picky,
                     max_workers=1, verbose=0)  # fmt: skip
    with pytest.raises(
        CollateError, match=r"collate_fn raised ValueError for chunk \{'x': \[3, 4\]\}"
    ):
        memo.run({}, {"x": [1, 2, 3, 4]})


def test_a_full_disk_stops_the_run_before_any_point_is_computed(tmp_path, monkeypatch):
    memo, counting = order_log(tmp_path)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module, "_write_file", full)
    with pytest.raises(StoreError, match="No space left on device"):
        memo.run({}, {"x": [1, 2, 3]})
    assert counting.count() == 0


def test_a_read_only_cache_stops_the_run_before_any_point_is_computed(tmp_path, monkeypatch):
    memo, counting = order_log(tmp_path)
    memo.run({}, {"x": [1]})  # the set exists: its description is not written again
    counting.reset()
    monkeypatch.setattr(store_module.os, "access", lambda path, mode: False)
    with pytest.raises(StoreError, match="cannot write to"):
        memo.run({}, {"x": [1, 2, 3]})
    assert counting.count() == 0


def fsynced_chunk_files(tmp_path: Path, monkeypatch, durable: bool) -> tuple[int, int]:
    """(chunk files fsynced, chunk files on disk) after a run of 6 points in 3 chunks."""
    synced: list[str] = []
    real_fsync = store_module.os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(store_module.os, "fsync", counting_fsync)
    counting = CountingExec(tmp_path / "calls.log")
    memo = SwarmMemo(tmp_path / "c", {"x": 2}, 2, exec_fn=counting, max_workers=1, verbose=0,
                     durable=durable)  # fmt: skip
    output, _ = memo.run({}, {"x": list(range(6))})
    assert output == [expected_output({}, (x,)) for x in range(6)]
    monkeypatch.undo()
    assert memo.run({}, {"x": list(range(6))})[1].executed_points == 0  # stored all the same
    return sum(".chunk." in path for path in synced), len(list(tmp_path.glob("c/*/chunks/*")))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names fds through /proc")
def test_chunk_files_are_fsynced_unless_durable_is_false(tmp_path, monkeypatch):
    assert fsynced_chunk_files(tmp_path / "a", monkeypatch, durable=True) == (3, 3)
    assert fsynced_chunk_files(tmp_path / "b", monkeypatch, durable=False) == (0, 3)


def test_durable_must_be_a_bool(tmp_path):
    with pytest.raises(SpecTypeError, match="durable must be True or False"):
        SwarmMemo(tmp_path, {"x": 1}, 1, durable="no")
