"""Losses that must not happen (issue 17, items 7-11): a finished point is stored, whatever
fails next to it, whatever the executor; a newer swarm-memo's files survive an older one; a
sweep with no axes works; a stored point survives a power cut."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import CountingExec, LockAt, expected_output
from swarm_memo import PointFailure, SwarmMemo
from swarm_memo.errors import ExecError

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
    memo = memo_for(tmp_path, counting, executor, bin_size)
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
    memo = memo_for(tmp_path, exec_fn, executor, on_error="skip")
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
    memo = memo_for(tmp_path, exec_fn, executor)
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
