"""Workers never outlive their driver, even one killed by SIGKILL mid exec_fn."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import swarm_memo
from helpers import CountingExec, wait_until

psutil = pytest.importorskip("psutil")

SWEEPER = Path(__file__).parent / "sweeper.py"
SRC = str(Path(swarm_memo.__file__).resolve().parents[1])


def start_driver(tmp_path: Path, sleep: float) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    args = [str(tmp_path / "cache"), str(tmp_path / "calls.log"), "40", "4", str(sleep), "2"]
    return subprocess.Popen(
        [sys.executable, str(SWEEPER), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for_calls(log: CountingExec, count: int, timeout: float = 60) -> None:
    wait_until(lambda: log.count() >= count, timeout, "the driver's workers to start exec_fn")


@pytest.mark.parametrize("sleep", [30.0, 0.2], ids=["mid long exec_fn", "short exec_fns"])
def test_workers_exit_soon_after_their_driver_is_killed(tmp_path, sleep):
    log = CountingExec(tmp_path / "calls.log")
    driver = start_driver(tmp_path, sleep)
    try:
        wait_for_calls(log, 2)  # both workers are inside exec_fn
        workers = psutil.Process(driver.pid).children(recursive=True)
        assert len(workers) >= 2
        calls_at_kill = log.count()
        os.kill(driver.pid, signal.SIGKILL)  # the driver alone, not its process group
        driver.communicate(timeout=10)
        _gone, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, f"processes outlived their driver: {alive}"
        # A worker may start one more exec chunk in the moment before it notices; it
        # never works through what was queued.
        assert log.count() <= calls_at_kill + 2
        if sleep > 10:
            assert log.count() == calls_at_kill
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)


GIL_HOLDER = """
import os, re, sys
from swarm_memo import SwarmMemo

def backtrack(params, point):
    fd = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, b"started\\n")
    os.close(fd)
    # Catastrophic backtracking: C code that holds the GIL for hours, so no Python
    # thread of the worker (its watchdog) ever runs again.
    return re.match(r"(a+)+$", "a" * 40 + "b") is not None

memo = SwarmMemo(sys.argv[1], {"x": 1}, 1, exec_fn=backtrack, max_workers=2, verbose=0)
memo.run({}, {"x": [1, 2, 3, 4]})
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG)")
def test_workers_die_with_a_killed_driver_even_inside_c_code_holding_the_gil(tmp_path):
    script = tmp_path / "gil_holder.py"
    script.write_text(GIL_HOLDER)
    log = CountingExec(tmp_path / "calls.log")
    driver = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "cache"), log.log],
        env={**os.environ, "PYTHONPATH": SRC},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    workers: list[psutil.Process] = []
    try:
        wait_for_calls(log, 2)  # both workers are inside the regex
        workers = psutil.Process(driver.pid).children(recursive=True)
        assert len(workers) >= 2
        os.kill(driver.pid, signal.SIGKILL)  # the driver alone, not its process group
        driver.wait(timeout=10)
        _gone, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, f"processes outlived their driver: {alive}"
    finally:
        for process in workers:  # a failure must not leave workers spinning for hours
            with contextlib.suppress(psutil.Error):
                process.kill()
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
