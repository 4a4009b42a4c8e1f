"""``memo.launch``: a sweep fanned out as one job array of real submitit tasks (local
processes), sharing the cache through claims; counted with exec functions that log every
call to a file, so calls in every task are seen."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from helpers import CountingExec, expected_output, grid_expected
from swarm_memo import Launch, SwarmMemo, TaskFailedError
from swarm_memo.errors import ExecError, SpecError, SpecTypeError

submitit = pytest.importorskip("submitit")

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
PARAMS = {"alpha": 1}
SPEC = {"strat": [0, 1], "s": list(range(6))}  # 4 chunks of 3 points with {"strat": 1, "s": 3}
AXES = ("strat", "s")  # the key order of memo_chunk_spec
WAIT_LIMIT = 20.0  # seconds a gated exec_fn waits before giving up (never reached when green)


class SpreadExec(CountingExec):
    """Counts calls; the first call of each task waits until ``tasks`` processes have
    called, so every task is seen computing (proves the chunks are spread)."""

    def __init__(self, log: Path, folder: Path, tasks: int) -> None:
        super().__init__(log)
        self.folder = str(folder)
        self.tasks = tasks

    def __call__(self, params: dict[str, Any], point: Any) -> Any:
        Path(self.folder, str(os.getpid())).touch()
        deadline = time.monotonic() + WAIT_LIMIT
        while len(os.listdir(self.folder)) < self.tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return super().__call__(params, point)


class GatedExec(CountingExec):
    """Counts calls; every call waits until the gate file exists."""

    def __init__(self, log: Path, gate: Path) -> None:
        super().__init__(log)
        self.gate = str(gate)

    def __call__(self, params: dict[str, Any], point: Any) -> Any:
        deadline = time.monotonic() + WAIT_LIMIT
        while not os.path.exists(self.gate) and time.monotonic() < deadline:
            time.sleep(0.02)
        return super().__call__(params, point)


class RecordingExecutor:
    """Looks like a submitit executor; fails the test if anything is submitted."""

    def map_array(self, fn: Any, *iterables: Any) -> list[Any]:
        raise AssertionError("nothing should be submitted")


@pytest.fixture(autouse=True)
def importable_in_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tasks are new Python processes: they import this worktree's code and the helpers."""
    paths = [str(SRC), str(TESTS), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))


@pytest.fixture
def executor(tmp_path: Path) -> Any:
    ex = submitit.AutoExecutor(folder=tmp_path / "jobs", cluster="local")
    ex.update_parameters(timeout_min=2)
    return ex


def new_memo(root: Path, exec_fn: Any, **kwargs: Any) -> SwarmMemo:
    options: dict[str, Any] = {"max_workers": 1, "verbose": 0, "exec_fn": exec_fn}
    options.update(kwargs)
    return SwarmMemo(root, {"strat": 1, "s": 3}, 2, **options)


# ---------------------------------------------------------------------------- real tasks


@pytest.mark.timeout(60)
def test_three_tasks_compute_every_point_exactly_once(tmp_path: Path, executor: Any) -> None:
    # 12 chunks: more than the three tasks can claim ahead of their first call.
    spec = {"strat": list(range(6)), "s": list(range(6))}
    counting = SpreadExec(tmp_path / "calls.log", tmp_path / "pids", tasks=3)
    (tmp_path / "pids").mkdir()
    memo = new_memo(tmp_path / "cache", counting)

    handle = memo.launch(PARAMS, spec, executor, tasks=3)
    assert len(handle.jobs) == 3
    output, diag = handle.result()

    assert sorted(counting.counter().values()) == [1] * 36
    assert all(d.executed_points > 0 for d in handle.task_diagnostics), "chunks not spread"
    assert sum(d.executed_points for d in handle.task_diagnostics) == 36
    assert diag.cached_points == diag.total_points == 36
    fresh = new_memo(tmp_path / "fresh", CountingExec(tmp_path / "fresh.log"))
    assert output == fresh.run(PARAMS, spec)[0] == grid_expected(PARAMS, spec, AXES)
    assert handle.done()


@pytest.mark.timeout(60)
def test_failing_point_makes_result_raise_naming_it(tmp_path: Path, executor: Any) -> None:
    counting = CountingExec(tmp_path / "calls.log", fail_on=(1, 4))
    memo = new_memo(tmp_path / "cache", counting, on_error="raise")

    handle = memo.launch(PARAMS, SPEC, executor, tasks=2)
    with pytest.raises(TaskFailedError, match=r"task \d of 2 .*\(1, 4\)") as excinfo:
        handle.result()

    error = excinfo.value
    assert isinstance(error, ExecError)
    assert error.task in (0, 1)
    assert error.exc_type == "ExecError"
    assert "boom at (1, 4)" in error.worker_traceback
    # Every other chunk is stored; only the failing point's chunk is missing.
    status = memo.status(PARAMS, SPEC)
    assert status.missing == [{"s": [3, 4, 5], "strat": [1]}]


@pytest.mark.timeout(60)
def test_launch_after_partial_sweep_computes_only_the_rest(tmp_path: Path, executor: Any) -> None:
    counting = CountingExec(tmp_path / "calls.log")
    memo = new_memo(tmp_path / "cache", counting)
    memo.run(PARAMS, {"strat": [0], "s": SPEC["s"]})
    counting.reset()

    output, _ = memo.launch(PARAMS, SPEC, executor, tasks=3).result()

    assert sorted(counting.calls()) == sorted(repr((1, s)) for s in SPEC["s"])
    assert output == grid_expected(PARAMS, SPEC, AXES)


@pytest.mark.timeout(60)
def test_status_while_tasks_run_answers_without_waiting(tmp_path: Path, executor: Any) -> None:
    gate = tmp_path / "gate"
    counting = GatedExec(tmp_path / "calls.log", gate)
    memo = new_memo(tmp_path / "cache", counting)

    handle = memo.launch(PARAMS, SPEC, executor, tasks=2)
    status = handle.status()  # the tasks cannot finish before the gate opens

    assert not handle.done()
    assert status.total_points == 12
    assert status.missing_points == 12
    gate.touch()
    output, _ = handle.result()
    assert output == grid_expected(PARAMS, SPEC, AXES)
    assert handle.status().complete


@pytest.mark.timeout(60)
def test_task_stopped_at_its_time_limit_keeps_finished_chunks_and_is_requeued(
    tmp_path: Path, executor: Any
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    counting = PidExec(tmp_path / "calls.log", pids, sleep=0.1)
    memo = new_memo(tmp_path / "cache", counting)
    handle = memo.launch(PARAMS, SPEC, executor, tasks=1)
    deadline = time.monotonic() + WAIT_LIMIT
    while handle.status().cached_chunks == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    stored = {repr(p) for p in expected_points(handle.status())}
    (task_pid,) = (int(name) for name in os.listdir(pids))

    # What Slurm sends (through submitit) as the time limit approaches; with
    # timeout_min < 10 submitit counts any USR2 as the time limit.
    os.kill(task_pid, signal.SIGUSR2)
    output, _ = handle.result()

    assert output == grid_expected(PARAMS, SPEC, AXES)
    assert len(os.listdir(pids)) == 2, "the task was not requeued"
    calls = counting.counter()
    assert set(calls) == {repr(p) for p in grid_points_of(SPEC)}
    assert stored, "no chunk was stored before the signal"
    assert all(calls[p] == 1 for p in stored), calls  # finished chunks are not recomputed


class PidExec(CountingExec):
    """Counts calls and leaves a file named after each process that calls it."""

    def __init__(self, log: Path, folder: Path, sleep: float) -> None:
        super().__init__(log, sleep=sleep)
        self.folder = str(folder)

    def __call__(self, params: dict[str, Any], point: Any) -> Any:
        Path(self.folder, str(os.getpid())).touch()
        return super().__call__(params, point)


def grid_points_of(spec: dict[str, list[Any]]) -> list[tuple[Any, ...]]:
    return [(strat, s) for strat in spec["strat"] for s in spec["s"]]


def expected_points(status: Any) -> list[tuple[Any, ...]]:
    """Points of the chunks a status does not list as missing."""
    missing = {(strat, s) for m in status.missing for strat in m["strat"] for s in m["s"]}
    return [p for p in grid_points_of(SPEC) if p not in missing]


SUBMIT_AND_EXIT = """
import sys, submitit
from pathlib import Path
from helpers import CountingExec
from swarm_memo import SwarmMemo
root = Path(sys.argv[1])
memo = SwarmMemo(root / "cache", {"strat": 1, "s": 3}, 2, max_workers=1, verbose=0,
                 exec_fn=CountingExec(root / "calls.log", sleep=0.05))
ex = submitit.AutoExecutor(folder=root / "jobs", cluster="local")
ex.update_parameters(timeout_min=2)
handle = memo.launch({"alpha": 1}, {"strat": [0, 1], "s": list(range(6))}, ex, tasks=2)
print(len(handle.jobs))
"""


@pytest.mark.timeout(60)
def test_submitter_may_exit_and_a_later_run_finishes_the_sweep(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SUBMIT_AND_EXIT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["2"]

    counting = CountingExec(tmp_path / "calls.log", sleep=0.05)
    output, _ = new_memo(tmp_path / "cache", counting).run(PARAMS, SPEC)

    assert output == grid_expected(PARAMS, SPEC, AXES)
    # The tasks (possibly still running when run() began) and run() shared the chunks.
    deadline = time.monotonic() + WAIT_LIMIT
    while counting.count() < 12 and time.monotonic() < deadline:
        time.sleep(0.05)  # a task may still be logging its last point
    assert sorted(counting.counter().values()) == [1] * 12


# ---------------------------------------------------------------------------- in process


def test_nothing_missing_submits_nothing_and_result_loads(make_memo: Any) -> None:
    memo = make_memo()
    expected, _ = memo.run(PARAMS, SPEC)

    handle = memo.launch(PARAMS, SPEC, RecordingExecutor(), tasks=4)

    assert handle.jobs == []
    assert handle.done()
    output, diag = handle.result()
    assert output == expected
    assert diag.cached_points == 12


def test_no_more_tasks_than_missing_chunks(make_memo: Any) -> None:
    memo = make_memo()
    memo.run(PARAMS, {"strat": [0], "s": SPEC["s"]})
    with ThreadPoolExecutor(4) as pool:
        handle = memo.launch(PARAMS, SPEC, pool, tasks=10)
        assert len(handle.jobs) == 2  # strat=1: two chunks of three points
        output, _ = handle.result()
    assert output == grid_expected(PARAMS, SPEC, AXES)


def test_a_futures_executor_runs_the_tasks_once_each_point(
    make_memo: Any, counting: CountingExec
) -> None:
    memo = make_memo()
    with ThreadPoolExecutor(3) as pool:
        output, _ = memo.launch(PARAMS, SPEC, pool, tasks=3).result()
    assert sorted(counting.counter().values()) == [1] * 12
    assert output == grid_expected(PARAMS, SPEC, AXES)


def test_failed_task_of_a_futures_executor_keeps_the_point(make_memo: Any, tmp_path: Path) -> None:
    memo = make_memo(exec_fn=CountingExec(tmp_path / "log", fail_on=(0, 2)))
    with ThreadPoolExecutor(2) as pool:
        handle = memo.launch(PARAMS, SPEC, pool, tasks=2)
        with pytest.raises(TaskFailedError, match=r"\(0, 2\)") as excinfo:
            handle.result()
    assert excinfo.value.point == (0, 2)
    assert excinfo.value.job_id is None


def test_skipped_points_are_reported_by_result(make_memo: Any, tmp_path: Path) -> None:
    memo = make_memo(exec_fn=CountingExec(tmp_path / "log", fail_on=(0, 2)), on_error="skip")
    # One task: two would retry the failed point, and a partial chunk rewritten by a second
    # task may lose its index record to the first task's later batch (a race in the index).
    with ThreadPoolExecutor(1) as pool:
        output, diag = memo.launch(PARAMS, SPEC, pool, tasks=1).result()
    assert diag.failed_points == [(0, 2)]
    assert expected_output(PARAMS, (0, 2)) not in output
    assert len(output) == 11


@pytest.mark.parametrize(
    ("tasks", "error", "message"),
    [
        (0, SpecError, r"tasks must be None or an int >= 1; got 0"),
        (-2, SpecError, r"got -2"),
        (1.5, SpecTypeError, r"tasks must be None or an int >= 1; got 1\.5"),
        (True, SpecTypeError, r"got True"),
        ("3", SpecTypeError, r"got '3'"),
    ],
)
def test_bad_tasks_is_refused_before_submitting(
    make_memo: Any, tasks: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        make_memo().launch(PARAMS, SPEC, RecordingExecutor(), tasks=tasks)


@pytest.mark.parametrize("executor", [object(), "slurm", None, 4])
def test_an_executor_without_map_array_or_submit_is_refused(make_memo: Any, executor: Any) -> None:
    with pytest.raises(SpecTypeError, match=r"executor must be a submitit executor"):
        make_memo().launch(PARAMS, SPEC, executor, tasks=2)


def test_a_memo_that_cannot_be_pickled_is_refused_before_submitting(
    make_memo: Any,
) -> None:
    with ThreadPoolExecutor(1) as own_pool:
        memo = make_memo(executor=own_pool)
        with pytest.raises(SpecTypeError, match=r"cannot be sent to the tasks"):
            memo.launch(PARAMS, SPEC, RecordingExecutor(), tasks=2)


def test_a_memo_without_exec_fn_is_refused_before_submitting(make_memo: Any) -> None:
    with pytest.raises(SpecError, match=r"12 points are missing .* no exec_fn"):
        make_memo(exec_fn=None).launch(PARAMS, SPEC, RecordingExecutor(), tasks=2)


def test_bad_split_spec_is_refused_before_submitting(make_memo: Any) -> None:
    with pytest.raises(SpecError):
        make_memo().launch(PARAMS, {"strat": [0]}, RecordingExecutor(), tasks=2)


def test_launch_handle_repr_counts_running_tasks(make_memo: Any) -> None:
    memo = make_memo()
    memo.run(PARAMS, SPEC)
    assert repr(memo.launch(PARAMS, SPEC, RecordingExecutor())) == "Launch(0 tasks, 0 running)"
    assert isinstance(memo.launch(PARAMS, SPEC, RecordingExecutor()), Launch)


def test_pickling_an_exec_instance_keeps_its_code_fingerprint(tmp_path: Path) -> None:
    before = new_memo(tmp_path / "a", NeverPickled(tmp_path / "log"))._requests().code
    pickle.dumps(NeverPickled(tmp_path / "log"))
    assert new_memo(tmp_path / "b", NeverPickled(tmp_path / "log"))._requests().code == before


class NeverPickled(CountingExec):
    """Only pickled by the test above."""
