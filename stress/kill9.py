"""kill -9 of the driver at random moments of a sweep (its workers die with it).

Each trial starts a sweep of a few hundred points on two process workers, SIGKILLs the
driver (and so its workers) after a random number of started points, then checks the
cache: every point it serves has exactly its value, and a new run completes the sweep
with every output right, computing only points that were not served.
"""

from __future__ import annotations

import contextlib
import random
import signal
import sys
from pathlib import Path

import psutil
from common import begin, kill_group, rerun_computes_the_rest, served, start_driver, wait_calls

POINTS = 120


def describe(processes: list[psutil.Process]) -> list[str]:
    names = []
    for process in processes:
        with contextlib.suppress(psutil.Error):  # gone meanwhile
            names.append(" ".join(process.cmdline())[-80:])
    return names


def trial(folder: Path, rng: random.Random) -> list[str]:
    cache, log = folder / "cache", folder / "calls.log"
    proc = start_driver(cache, log, str(POINTS), "--sleep", "0.01")
    started = wait_calls(log, rng.randint(1, POINTS), proc)
    problems: list[str] = []
    if started:
        workers = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGKILL)  # the driver alone: its workers must follow
        _, alive = psutil.wait_procs(workers, timeout=20)
        if alive:
            problems.append(f"{len(alive)} processes outlived the driver: {describe(alive)}")
    else:
        _, stderr = proc.communicate(timeout=120)
        if proc.returncode != 0:
            return [f"the sweep failed before the kill:\n{stderr[-2000:]}"]
    kill_group(proc)
    values, wrong = served(cache, POINTS)
    return problems + wrong + rerun_computes_the_rest(cache, POINTS, len(values))


def main() -> int:
    trials, rng, report = begin(
        __doc__ or "",
        "kill9",
        "every point the cache serves after the kill has exactly its value; the rerun "
        "completes the sweep with every output right and computes exactly the points "
        "that were not served (no damaged or half-written file is ever served)",
        smoke=2,
        full=200,
    )
    for _ in range(trials):
        report.trial(lambda folder: trial(folder, rng))
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
