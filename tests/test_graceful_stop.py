"""Graceful stops: SIGTERM (Slurm's time limit, scancel), Ctrl-C, SIGUSR1 and a deadline
stop a run without losing a finished point. Real signals to real process groups."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import CountingExec, expected_output, wait_until
from swarm_memo import RunInterrupted, SwarmMemo

SWEEPER = Path(__file__).with_name("sweeper.py")
POINTS = 400


def start_sweep(tmp_path: Path, workers: int, bin_size: int = 40) -> subprocess.Popen[str]:
    args = [str(tmp_path / "cache"), str(tmp_path / "calls.log"), str(POINTS), str(bin_size)]
    return subprocess.Popen(
        [sys.executable, str(SWEEPER), *args, "0.01", str(workers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a Slurm job step
    )


def wait_for_calls(log: CountingExec, count: int) -> None:
    wait_until(lambda: log.count() >= count, 60, f"{count} calls of the sweep")


def memo_on(tmp_path: Path, counting: CountingExec) -> SwarmMemo:
    return SwarmMemo(
        tmp_path / "cache",
        {"x": 40},
        1,
        exec_fn=counting,
        max_workers=1,
        verbose=0,
        on_code_change="ignore",  # the sweep logged its calls to another file
    )


@pytest.mark.parametrize(
    ("signum", "workers", "raised"),
    [
        (signal.SIGTERM, 2, "RunInterrupted"),
        (signal.SIGTERM, 1, "RunInterrupted"),
        (signal.SIGINT, 2, "KeyboardInterrupt"),
        (signal.SIGUSR1, 2, "RunInterrupted"),
    ],
)
def test_signal_to_the_job_stores_every_finished_point_and_exits_non_zero(
    tmp_path, signum, workers, raised
):
    sweep_log = CountingExec(tmp_path / "calls.log")
    proc = start_sweep(tmp_path, workers)
    wait_for_calls(sweep_log, 50)  # inside the first two chunks of 40 points: incomplete
    os.killpg(proc.pid, signum)  # to every process of the group, workers included
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert raised in stderr
    computed = set(sweep_log.calls())
    rerun = CountingExec(tmp_path / "rerun.log")
    memo = memo_on(tmp_path, rerun)
    stored = memo.status({"alpha": 1}, {"x": list(range(POINTS))}).cached_points
    # Every point the killed run computed is stored (a point in flight when the grace
    # period ended may be lost, none here: the grace period is 20 s)...
    assert stored == len(computed) >= 50
    output, diag = memo.run({"alpha": 1}, {"x": list(range(POINTS))})
    # ...and the next run computes exactly the rest.
    assert output == [expected_output({"alpha": 1}, (x,)) for x in range(POINTS)]
    assert set(rerun.calls()).isdisjoint(computed)
    assert rerun.count() == POINTS - stored == diag.executed_points


def test_deadline_stops_a_run_after_storing_every_finished_point(tmp_path):
    counting = CountingExec(tmp_path / "calls.log", sleep=0.01)
    memo = SwarmMemo(
        tmp_path / "cache", {"x": 40}, 1, exec_fn=counting, max_workers=1, verbose=0,
        deadline=0.5,
    )  # fmt: skip
    with pytest.raises(RunInterrupted, match="deadline"):
        memo.run({}, {"x": list(range(POINTS))})
    computed = counting.count()
    assert 0 < computed < POINTS
    status = memo.status({}, {"x": list(range(POINTS))})
    assert status.cached_points == computed  # the unfinished chunk's points too


def test_second_signal_stops_at_once(tmp_path):
    script = tmp_path / "slow.py"
    script.write_text(
        "import os, sys, time\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from swarm_memo import SwarmMemo\n"
        "def slow(params, point):\n"
        "    os.write(1, b'started\\n')  # one write: two workers' lines never interleave\n"
        "    time.sleep(60)\n"
        "memo = SwarmMemo(sys.argv[1], {'x': 1}, 1, exec_fn=slow, max_workers=2, verbose=0,\n"
        "                 grace_seconds=60)\n"
        "memo.run({}, {'x': [1, 2]})\n"
    )
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "cache")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert [proc.stdout.readline().strip() for _ in range(2)] == ["started"] * 2
        os.killpg(proc.pid, signal.SIGTERM)  # graceful: would wait up to 60 s for the workers
        time.sleep(0.5)
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)  # the second one does not wait
        _, stderr = proc.communicate(timeout=30)
    finally:  # a failed assertion must not leave the sweep running into the next tests
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode != 0
    assert "stopped at once" in stderr
    assert time.monotonic() - started < 30
