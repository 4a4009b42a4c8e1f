"""Stop signals that talk and never cost a finished point: a second signal while finished
points are being stored waits for them, the driver says what it does, no point starts
after the signal, and the pool shuts down cleanly. Real signals to real processes; each
moment is chosen with files (no sleeps)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from swarm_memo import RunInterrupted, SwarmMemo

STOPPER = Path(__file__).with_name("stopper.py")


class Sweep:
    """A stopper.py process in its own process group, read line by line on stderr."""

    def __init__(self, tmp_path: Path, *, points: int, chunk: int, exec_chunk: int,
                 workers: int = 2, grace: float = 60, executor: str = "process",
                 durable: bool = True, fast: int = 0) -> None:  # fmt: skip
        self.work = tmp_path
        self.cache = tmp_path / "cache"
        self.points, self.chunk = points, chunk
        args = [points, chunk, exec_chunk, workers, grace, executor, int(durable), fast]
        self.proc = subprocess.Popen(
            [sys.executable, str(STOPPER), str(self.cache), str(tmp_path), *map(str, args)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []

    def calls(self) -> list[int]:
        try:
            return [int(x) for x in (self.work / "calls.log").read_text().split()]
        except FileNotFoundError:
            return []

    def wait_calls(self, count: int) -> None:
        self.wait(lambda: len(self.calls()) >= count, f"{count} calls")

    def wait(self, condition, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + 90
        while not condition():
            assert self.proc.poll() is None, f"the sweep ended before {what}"
            assert time.monotonic() < deadline, f"never saw {what}"
            time.sleep(0.01)

    def read_until(self, text: str) -> str:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if text in line:
                return line.rstrip("\n")
        raise AssertionError(f"no line with {text!r} in {self.lines}")

    def signal(self, signum: int, group: bool = True) -> None:
        if group:
            os.killpg(self.proc.pid, signum)  # the job step, workers included
        else:
            os.kill(self.proc.pid, signum)  # the driver alone

    def finish(self) -> tuple[int, str]:
        try:
            _, rest = self.proc.communicate(timeout=90)
        finally:  # never leave a sweep running into the next tests
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.communicate()
        return self.proc.returncode, "\n".join(self.lines) + "\n" + rest

    def stored(self) -> int:
        memo = SwarmMemo(self.cache, {"x": self.chunk}, 1, verbose=0)
        return memo.status({}, {"x": list(range(self.points))}).cached_points


@pytest.mark.parametrize("durable", [True, False], ids=["writer threads", "inline writes"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT])
def test_a_second_signal_while_finished_points_are_stored_loses_none(tmp_path, signum, durable):
    # Points 0 and 1 of the chunk of 4 finish, 2 and 3 never do: after the (short) grace
    # period the two finished points are stored as a partial chunk, which waits at a
    # barrier while the second signal comes.
    (tmp_path / "block_storing").touch()
    sweep = Sweep(tmp_path, points=4, chunk=4, exec_chunk=1, grace=0.5, durable=durable, fast=2)
    sweep.wait_calls(4)
    sweep.signal(signum)
    sweep.wait(lambda: (tmp_path / "storing").exists(), "the storing of finished points")
    sweep.signal(signum)  # used to kill the driver (-15) or interrupt the storing
    time.sleep(0.2)  # let it land while the storing still waits (a wider window, no order)
    (tmp_path / "go").touch()
    code, stderr = sweep.finish()
    assert code == (-signal.SIGINT if signum == signal.SIGINT else 1), stderr
    assert "2 of 4 points stored; run again to compute the remaining 2" in stderr
    assert sweep.stored() == 2


def test_ctrl_c_says_what_it_waits_for_and_ends_with_the_true_count(tmp_path):
    sweep = Sweep(tmp_path, points=6, chunk=1, exec_chunk=1, grace=20, fast=4)
    sweep.wait(lambda: {4, 5} <= set(sweep.calls()), "the two slow points running")
    sweep.signal(signal.SIGINT)  # Ctrl-C in a terminal: the whole foreground group
    stopping = sweep.read_until("stopping")
    assert stopping == (
        "swarm-memo: stopping: waiting up to 20 s for 2 running points; Ctrl-C again to stop now"
    )
    sweep.signal(signal.SIGINT)
    code, stderr = sweep.finish()
    assert code == -signal.SIGINT  # KeyboardInterrupt, as Python ends on Ctrl-C
    last = [line for line in stderr.splitlines() if line.startswith("swarm-memo:")][-1]
    assert last == (
        "swarm-memo: stopped at once by a second SIGINT; 4 of 6 points stored; "
        "run again to compute the remaining 2"
    )
    assert sweep.stored() == 4


@pytest.mark.parametrize("executor", ["process", "thread"])
def test_no_point_starts_after_the_signal(tmp_path, executor):
    # Exec chunks of 2 points, more of them queued than workers: after SIGTERM to the
    # driver alone (workers hear of it from the driver), the two running points finish
    # and are stored; neither their chunks' second points nor the queued chunks start.
    sweep = Sweep(tmp_path, points=12, chunk=1, exec_chunk=2, executor=executor)
    sweep.wait_calls(2)
    sweep.signal(signal.SIGTERM, group=False)
    assert "waiting up to 60 s for 2 running points" in sweep.read_until("stopping")
    (tmp_path / "release").touch()
    code, stderr = sweep.finish()
    assert code == 1, stderr
    assert len(sweep.calls()) == 2, stderr
    assert "2 of 12 points stored; run again to compute the remaining 10" in stderr
    assert sweep.stored() == 2


def test_a_stop_signal_to_the_job_leaves_no_leaked_semaphores(tmp_path):
    # sbatch --signal=USR1 signals every process of the step, loky's resource tracker too.
    sweep = Sweep(tmp_path, points=4, chunk=1, exec_chunk=1, fast=2)
    sweep.wait_calls(4)
    sweep.signal(signal.SIGUSR1)
    sweep.read_until("stopping")
    (tmp_path / "release").touch()
    code, stderr = sweep.finish()
    assert code == 1, stderr
    assert "stopped because SIGUSR1; all 4 points stored" in stderr
    assert "leak" not in stderr, stderr
    assert "resource_tracker" not in stderr, stderr
    assert "KeyError" not in stderr, stderr


def _signals_the_driver_at_3(params, point):
    if point[0] == 3:
        os.kill(params["driver"], signal.SIGTERM)  # the first stop signal, mid-run
    return point[0] * 10


@pytest.mark.parametrize("executor", ["serial", "process"])
def test_a_second_signal_as_the_stopped_run_turns_to_storing_waits(tmp_path, monkeypatch, executor):
    """The engine has stopped (no point left running) and the run turns to storing what
    finished: a second signal landing in that hand-over used to raise at once, skipping
    the storing of unfinished chunks and the final count. It now waits, as it does while
    points are stored."""
    from swarm_memo.run import pipeline

    original = pipeline._Run._stopped

    def second_signal_first(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # lands before _stopped stores anything
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pipeline._Run, "_stopped", second_signal_first)
    memo = SwarmMemo(
        tmp_path / "cache", {"x": 4}, 2, exec_fn=_signals_the_driver_at_3, executor=executor,
        max_workers=1 if executor == "serial" else 2, verbose=0,
    )  # fmt: skip
    with pytest.raises(RunInterrupted) as stopped:
        memo.run({"driver": os.getpid()}, {"x": list(range(12))})
    assert "points stored" in str(stopped.value)
    stored, _ = memo.load({"driver": os.getpid()}, {"x": list(range(12))})
    said = int(str(stopped.value).split(" of ")[0].split()[-1])
    assert said == len([o for o in stored if o is not None]) >= 1
    memo.close()
