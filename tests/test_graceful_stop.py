"""Graceful stops: SIGTERM (Slurm's time limit, scancel), Ctrl-C, SIGUSR1 and a deadline
stop a run without losing a finished point. Real signals to real process groups."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import swarm_memo
from helpers import CountingExec, expected_output, wait_until
from swarm_memo import RunInterrupted, SwarmMemo
from swarm_memo.execution.pool import START_VARIABLE

SWEEPER = Path(__file__).with_name("sweeper.py")
POINTS = 400


def start_sweep(
    tmp_path: Path, workers: int, bin_size: int = 40, start: str = ""
) -> subprocess.Popen[str]:
    """The sweep in its own process; ``start="loky"``: workers start as fresh interpreters."""
    args = [str(tmp_path / "cache"), str(tmp_path / "calls.log"), str(POINTS), str(bin_size)]
    env = {**os.environ, START_VARIABLE: start} if start else None
    return subprocess.Popen(
        [sys.executable, str(SWEEPER), *args, "0.01", str(workers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a Slurm job step
        env=env,
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
    ("signum", "workers", "raised", "after", "start"),
    [
        (signal.SIGTERM, 2, "RunInterrupted", 50, ""),
        # after the first point, when the other worker is often still starting
        (signal.SIGTERM, 2, "RunInterrupted", 1, ""),
        (signal.SIGTERM, 2, "RunInterrupted", 1, "loky"),
        (signal.SIGTERM, 1, "RunInterrupted", 50, ""),
        (signal.SIGINT, 2, "KeyboardInterrupt", 50, ""),
        (signal.SIGUSR1, 2, "RunInterrupted", 50, ""),
    ],
)
def test_signal_to_the_job_stores_every_finished_point_and_exits_non_zero(
    tmp_path, signum, workers, raised, after, start
):
    sweep_log = CountingExec(tmp_path / "calls.log")
    proc = start_sweep(tmp_path, workers, start=start)
    wait_for_calls(sweep_log, after)  # inside the first two chunks of 40 points: incomplete
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
    assert stored == len(computed) >= after
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
        "    time.sleep(120)\n"
        "memo = SwarmMemo(sys.argv[1], {'x': 1}, 1, exec_fn=slow, max_workers=2, verbose=1,\n"
        "                 grace_seconds=120)\n"
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
        os.killpg(proc.pid, signal.SIGTERM)  # graceful: would wait up to 120 s for the workers
        # The driver has taken the first signal (it says so) before the second is sent:
        # two signals sent together could merge into one.
        said = read_stderr_until(proc, "stopping: waiting up to 120 s for 2 running points")
        os.killpg(proc.pid, signal.SIGTERM)  # the second one does not wait
        _, stderr = proc.communicate(timeout=60)  # far less than the grace period
    finally:  # a failed assertion must not leave the sweep running into the next tests
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert "send SIGTERM again to stop now" in said
    assert proc.returncode != 0
    assert "stopped at once by a second SIGTERM" in stderr


def read_stderr_until(proc: subprocess.Popen[str], text: str) -> str:
    """Read the process's stderr line by line up to the first line holding ``text``."""
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if text in line:
            return line
    raise AssertionError(f"no line with {text!r} in {lines}")


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="needs signal masks")
def test_workers_start_with_the_stop_signals_blocked(tmp_path):
    """A stop signal sent to the job step while a worker starts must wait for its
    handlers: it killed the worker (the pool broke and the exec chunks other workers had
    finished were lost). Python 3.11's multiprocessing, started by loky while spawning the
    first worker, unblocked SIGINT and SIGTERM in the middle of the spawn. Under loky's
    start (fresh interpreters), every process records the mask it starts with (a
    ``sitecustomize``, before any other code runs)."""
    records = tmp_path / "masks"
    records.mkdir()
    (tmp_path / "sitecustomize.py").write_text(
        textwrap.dedent(
            """
            import os, signal
            path = os.path.join(os.environ["MASK_RECORDS"], str(os.getpid()))
            with open(path, "w") as out:
                blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
                out.write(" ".join(sig.name for sig in blocked))
            """
        )
    )
    script = (
        "import os, sys\n"
        "from swarm_memo import SwarmMemo\n"
        "memo = SwarmMemo(sys.argv[1], {'x': 1}, 1, exec_fn=lambda p, x: os.getpid(),\n"
        "                 max_workers=2, verbose=0)\n"
        "print(*set(memo.run({}, {'x': [1, 2, 3, 4]})[0]))\n"
    )
    source = str(Path(swarm_memo.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{source}"}
    env.update({"MASK_RECORDS": str(records), START_VARIABLE: "loky"})
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "cache")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    workers = done.stdout.split()
    assert workers, done.stdout
    for pid in workers:
        assert set((records / pid).read_text().split()) >= {"SIGTERM", "SIGINT", "SIGUSR1"}


def _counted(params, point):
    with open(params["log"], "a") as out:
        out.write(f"{point}\n")
    return point


@pytest.mark.parametrize("signalled", ["before the run", "after the run started"])
def test_a_stop_signal_before_a_workers_first_chunk_of_the_run(tmp_path, monkeypatch, signalled):
    """A worker told to stop (SIGUSR1) while it was starting, or before it took any
    exec chunk of the run, starts none of the run's points; a signal from before the run
    started (an earlier, stopped run) does not stop it."""
    from swarm_memo.core.serial import DEFAULT_CODEC
    from swarm_memo.execution import worker

    monkeypatch.setattr(worker, "_CURRENT_RUN", "")  # a worker still starting
    monkeypatch.setattr(worker, "_STOPPED_RUNS", set())
    monkeypatch.setattr(worker, "_LAST_STOP_SIGNAL", 0.0)
    log = tmp_path / "calls.log"
    blob = DEFAULT_CODEC.dumps_run(_counted, {"log": str(log)})
    if signalled == "before the run":
        worker._stop_signal(signal.SIGUSR1, None)
    run_started = time.time()
    if signalled == "after the run started":
        worker._stop_signal(signal.SIGUSR1, None)
    result = worker.run_batch("run-1", blob, [(1,), (2,)], False, DEFAULT_CODEC, run_started)
    outputs = result.decode(DEFAULT_CODEC).outputs
    if signalled == "before the run":
        assert outputs == [(1,), (2,)]
        assert log.read_text().split() == ["(1,)", "(2,)"]
    else:
        assert outputs == []
        assert not log.exists()
