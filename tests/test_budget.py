"""``launch(..., task_seconds=...)``: tasks sized from stored per-point timings, each with a
deadline before its time is up; ``Launch.status()`` per task. Counted with exec functions
that log every call (``CountingExec``); tasks run on a thread pool (a futures executor)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from helpers import CountingExec, expected_output
from swarm_memo import SwarmMemo
from swarm_memo.core.diagnostics import Status
from swarm_memo.errors import CacheMissError, SpecError
from swarm_memo.run.budget import plan_tasks, task_deadline
from swarm_memo.run.launch import Launch

PARAMS = {"alpha": 2}
SPEC = {"x": list(range(24))}


def memo_for(tmp_path: Path, sleep: float = 0.0, **options: Any) -> SwarmMemo:
    log = tmp_path / "calls.log"
    return SwarmMemo(
        tmp_path / "cache",
        {"x": 2},
        1,
        exec_fn=CountingExec(log, sleep=sleep),
        max_workers=1,
        executor="thread",
        **{"verbose": 0, **options},
    )


def status(missing: int, chunks: int, seconds: float | None) -> Status:
    return Status(missing_points=missing, missing_chunks=chunks, estimated_seconds=seconds)


def test_tasks_are_sized_so_each_share_fits_before_its_deadline() -> None:
    # 100 points of 1 s; a task of 2 workers stops at 30 - 5 = 25 s: 50 points per task.
    estimate = plan_tasks(status(100, 50, 100.0), None, 30.0, workers=2, grace=0.0)
    assert estimate.deadline == 25.0
    assert estimate.tasks == 2
    assert estimate.seconds_per_point == 1.0
    assert "2 tasks" in estimate.note


def test_no_more_tasks_than_missing_chunks_and_the_estimate_says_why() -> None:
    estimate = plan_tasks(status(100, 3, 100.0), 1, 30.0, workers=1, grace=0.0)
    assert estimate.tasks == 3
    assert "4 would be needed" in estimate.note


def test_without_timings_the_asked_tasks_are_used_and_the_note_says_so() -> None:
    estimate = plan_tasks(status(100, 50, None), 4, 600.0, workers=1, grace=20.0)
    assert estimate.tasks == 4
    assert estimate.deadline == 540.0  # a tenth of the time before the end
    assert "no stored timings" in estimate.note


def test_the_margin_keeps_time_for_in_flight_points_but_at_most_half() -> None:
    assert task_deadline(100.0, grace_seconds=20.0) == 75.0
    assert task_deadline(10.0, grace_seconds=20.0) == 5.0


@pytest.mark.parametrize("bad", [0, -1.0, "60", True])
def test_bad_task_seconds_is_refused_before_submitting(tmp_path: Path, bad: Any) -> None:
    with ThreadPoolExecutor(1) as pool, pytest.raises(SpecError, match="task_seconds"):
        memo_for(tmp_path).launch(PARAMS, SPEC, pool, task_seconds=bad)
    assert CountingExec(tmp_path / "calls.log").count() == 0


def test_stored_timings_choose_the_tasks_and_the_launch_finishes(tmp_path: Path) -> None:
    memo = memo_for(tmp_path, sleep=0.01)
    memo.run(PARAMS, {"x": SPEC["x"][:4]})  # stores timings
    with ThreadPoolExecutor(8) as pool:
        handle = memo.launch(PARAMS, SPEC, pool, tasks=5, task_seconds=3600.0)
        out, _ = handle.result(timeout=60)
    assert handle.estimate is not None
    assert handle.estimate.seconds_per_point is not None
    assert handle.estimate.tasks == len(handle.jobs) == 1  # 20 points x ~10 ms fit in one, not 5
    assert out == [expected_output(PARAMS, (x,)) for x in SPEC["x"]]
    assert CountingExec(tmp_path / "calls.log").count() == 24


def test_a_task_stops_at_its_deadline_keeping_what_it_finished(tmp_path: Path) -> None:
    memo = memo_for(tmp_path, sleep=0.1)  # in-flight points finish (grace)
    with ThreadPoolExecutor(1) as pool:
        handle = memo.launch(PARAMS, SPEC, pool, tasks=1, task_seconds=1.0)  # stops at 0.5 s
        assert handle.estimate is not None
        assert handle.estimate.deadline == 0.5
        with pytest.raises(CacheMissError, match="launch again"):
            handle.result(timeout=60)
    calls = CountingExec(tmp_path / "calls.log").count()
    assert 0 < calls < 24
    stored = memo.status(PARAMS, SPEC).cached_points
    assert stored == calls  # nothing finished is lost


def test_status_shows_each_tasks_share(tmp_path: Path) -> None:
    memo = memo_for(tmp_path)
    memo.run(PARAMS, {"x": [0, 1, 2, 3]})  # chunks 0 and 1: task 0 and task 1 of 3
    handle = Launch(memo.config, PARAMS, SPEC, jobs=[None, None, None])
    now = handle.status()
    assert [t.chunks for t in now.tasks] == [4, 4, 4]
    assert [t.missing_chunks for t in now.tasks] == [3, 3, 4]
    assert [t.missing_points for t in now.tasks] == [6, 6, 8]
    assert now.missing_points == 20
    assert "task 2: 0 of 4 chunks" in now.summary()


def test_a_launch_without_timings_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    memo = memo_for(tmp_path, verbose=1)
    with ThreadPoolExecutor(2) as pool:
        memo.launch(PARAMS, SPEC, pool, tasks=2, task_seconds=600.0).result(timeout=60)
    assert "no stored timings for these params yet: 2 tasks" in capsys.readouterr().err
