"""Shared pieces of the stress scripts: the sweep they hammer, its oracle, how to run a
driver process, and the report each script prints.

Every script runs its trials on fresh caches under a temporary folder, checks each trial
against an oracle (the exact output of every point), and ends with a report: trials,
failures, and what "nothing lost" means for it. It exits 1 on any loss, wrong value or
unexpected exception, 0 otherwise (and 0 with a reason printed when it had to skip).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from workload import BIN, expected, spec  # noqa: E402

DRIVER = HERE / "workload.py"


def env() -> dict[str, str]:
    """The environment of driver processes: this checkout's swarm_memo and stress/."""
    path = os.pathsep.join([str(SRC), str(HERE), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


def start_driver(cache: Path, log: Path, *args: str, **popen: Any) -> subprocess.Popen[str]:
    """A sweep process (``workload.py``) in its own process group, as a job step."""
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(
        [sys.executable, str(DRIVER), str(cache), str(log), *args],
        env=env(),
        text=True,
        start_new_session=True,
        **popen,
    )


def kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL a driver's process group (its workers too) and reap the driver."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def calls(log: Path) -> list[str]:
    """Lines a workload's exec_fn logged (``start X`` / ``done X``)."""
    try:
        return log.read_text().splitlines()
    except FileNotFoundError:
        return []


def wait_calls(log: Path, count: int, proc: subprocess.Popen[str], timeout: float = 60) -> bool:
    """Wait until ``count`` calls started; False if the driver ended first."""
    deadline = time.monotonic() + timeout
    while sum(line.startswith("start") for line in calls(log)) < count:
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def memo_for(cache: Path, **kwargs: Any) -> Any:
    from workload import compute

    from swarm_memo import SwarmMemo

    kwargs.setdefault("verbose", 0)
    kwargs.setdefault("executor", "serial")
    kwargs.setdefault("on_code_change", "ignore")  # each process has its own Compute
    return SwarmMemo(cache, {"x": BIN}, 4, exec_fn=compute, **kwargs)


def params(pad: int) -> dict[str, int]:
    return {"pad": pad} if pad else {}


def stored_values(cache: Path, points: int, pad: int = 0) -> dict[int, Any]:
    """Every point the cache serves (``load``: nothing computed, nothing written), by the
    point each output names; a point served twice is reported as a wrong value."""
    output, _ = memo_for(cache).load(params(pad), spec(points))
    values: dict[int, Any] = {}
    for item in output:
        x = item.get("x") if isinstance(item, dict) else None
        values[x if x not in values else -1 - len(values)] = item
    return values


def check_values(values: dict[int, Any], pad: int = 0) -> list[str]:
    """Wrong values among ``values`` (point -> output)."""
    return [f"point {x}: stored {v!r:.200}" for x, v in values.items() if v != expected(x, pad)]


def rerun_and_check(cache: Path, points: int, pad: int = 0) -> tuple[list[str], int]:
    """Complete the sweep in this process: the wrong outputs, and how many points it
    computed."""
    memo = memo_for(cache)
    output, diag = memo.run(params(pad), spec(points))
    wrong = [f"point {x}: got {o!r:.200}" for x, o in enumerate(output) if o != expected(x, pad)]
    return wrong, diag.executed_points


def served(cache: Path, points: int, pad: int = 0) -> tuple[dict[int, Any], list[str]]:
    """What the cache serves after the trouble (point -> output), and its wrong values."""
    values = stored_values(cache, points, pad)
    return values, check_values(values, pad)


def rerun_computes_the_rest(cache: Path, points: int, served: int, pad: int = 0) -> list[str]:
    """Complete the sweep: its wrong outputs, and a problem unless it computed exactly the
    points the cache did not serve (``served`` of them did)."""
    wrong, executed = rerun_and_check(cache, points, pad)
    if executed != points - served:
        wrong.append(f"{served} points served, but the rerun computed {executed}")
    return wrong


class Report:
    """Trials, failures and the meaning of "nothing lost" for one script."""

    def __init__(self, name: str, lost_means: str) -> None:
        self.name = name
        self.lost_means = lost_means
        self.trials = 0
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.started = time.monotonic()

    def trial(self, run: Callable[[Path], list[str]]) -> None:
        """Run one trial in a fresh folder; its returned problems are failures."""
        self.trials += 1
        with tempfile.TemporaryDirectory(prefix=f"swarm-memo-{self.name}-") as folder:
            try:
                problems = run(Path(folder))
            except Exception:
                problems = [f"unexpected exception:\n{traceback.format_exc()}"]
        self.failures += [f"trial {self.trials}: {p}" for p in problems]

    def finish(self) -> int:
        seconds = time.monotonic() - self.started
        print(f"{self.name}: {self.trials} trials, {len(self.failures)} failures, {seconds:.0f} s")
        print(f"  nothing lost means: {self.lost_means}")
        for note in self.notes:
            print(f"  {note}")
        for failure in self.failures[:20]:
            print(f"  FAILED {failure}")
        return 1 if self.failures else 0


def begin(
    description: str, name: str, lost_means: str, smoke: int, full: int
) -> tuple[int, random.Random, Report]:
    """A script's start: its trial count from the command line (:func:`arguments`), its
    random generator (seeded as printed) and its report."""
    args = arguments(description, smoke, full)
    return args.trials, random.Random(args.seed), Report(name, lost_means)


def arguments(description: str, smoke: int, full: int) -> argparse.Namespace:
    """``--smoke`` (a few trials), ``--trials N``, ``--seed S``; the full mode by default."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true", help=f"{smoke} trials (the test suite)")
    parser.add_argument("--trials", type=int, default=None, help=f"default {full}")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    if args.trials is None:
        args.trials = smoke if args.smoke else full
    if args.seed is None:
        args.seed = int(time.time())
    print(f"seed {args.seed}")
    return args
