"""Random stop signals (SIGTERM, SIGINT, SIGUSR1) to a sweep's process group, at random
moments; in every other trial a second signal while finished points are being stored.

One signal: the points running finish within the grace period and no new point starts,
so the cache must serve exactly the points whose exec_fn started. Two signals while a
chunk is being stored (a barrier in the output's pickling holds the storing until both
signals were sent): the running points are abandoned, never the storing, so that chunk
is served. In every trial the driver exits with RunInterrupted or KeyboardInterrupt
(never killed by the signal), its last line's count is what the cache serves, every
served value is right, and a rerun completes the sweep computing only the rest.
"""

from __future__ import annotations

import random
import re
import signal
import sys
import time
from pathlib import Path

from common import (
    BIN,
    begin,
    calls,
    kill_group,
    rerun_computes_the_rest,
    served,
    start_driver,
    wait_calls,
)

POINTS = 60
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
COUNT = re.compile(r"(\d+) of (\d+) points stored|all (\d+) points stored")


def wait_file(path: Path, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def signal_and_wait(folder: Path, rng: random.Random, twice: bool) -> tuple[int, str, int]:
    """Run one sweep, signal it; its exit code, stderr and the signal."""
    cache, log = folder / "cache", folder / "calls.log"
    signum = rng.choice(SIGNALS)
    extra = ["--durable", str(rng.randint(0, 1))]
    if twice:
        extra += ["--block-storing", str(folder)]
    proc = start_driver(cache, log, str(POINTS), "--sleep", "0.02", *extra)
    try:
        if twice:
            if not wait_file(folder / "storing"):
                raise AssertionError("the storing never started")
            proc.send_signal(signum)  # to the driver: the workers hear of it from it
            time.sleep(0.05)
            proc.send_signal(signum)
            time.sleep(0.2)  # let it land while the storing still waits
            (folder / "go").touch()
        elif wait_calls(log, rng.randint(1, POINTS), proc):
            import os

            os.killpg(proc.pid, signum)  # the whole job step, as Slurm does
        _, stderr = proc.communicate(timeout=120)
    finally:
        kill_group(proc)
    return proc.returncode, stderr, signum


def trial(folder: Path, rng: random.Random, twice: bool) -> list[str]:
    code, stderr, signum = signal_and_wait(folder, rng, twice)
    values, problems = served(folder / "cache", POINTS)
    # A signal that lands once the run is over (its handlers gone) may end the process
    # the default way: only when every point is stored is that not a loss.
    finished = not twice and (code == 0 or (code < 0 and len(values) == POINTS))
    want = (-signal.SIGINT, 1) if signum == signal.SIGINT else (1,)
    if not finished and code not in want:
        problems.append(f"exit code {code} after {signum.name} (twice={twice}):\n{stderr[-1500:]}")
    counts = COUNT.findall(stderr)
    if not finished and counts:
        stored, _total, every = counts[-1]
        said = int(stored or every)
        if said != len(values):
            problems.append(f"the driver said {said} points stored, the cache serves {len(values)}")
    elif not finished:
        problems.append(f"no 'points stored' line:\n{stderr[-1500:]}")
    started = {int(line.split()[1]) for line in calls(folder / "calls.log") if "start" in line}
    if not twice and not finished and started != set(values):
        lost = sorted(started - set(values))
        problems.append(
            f"{len(lost)} started points not stored after {signum.name}: {lost[:20]}"
            f"\n{stderr[-1500:]}"
        )
    if twice and len(values) < BIN:
        problems.append(f"the chunk being stored was lost: {len(values)} points served")
    return problems + rerun_computes_the_rest(folder / "cache", POINTS, len(values))


def main() -> int:
    trials, rng, report = begin(
        __doc__ or "",
        "signals",
        "one signal: every point whose exec_fn started is stored (it finishes in the grace "
        "period and no point starts after the signal); two signals while storing: the "
        "chunk being stored is kept; always: the driver ends with RunInterrupted or "
        "KeyboardInterrupt, says the true stored count, every value is right and a rerun "
        "computes exactly the rest",
        smoke=2,
        full=150,
    )
    for index in range(trials):  # one signal and two signals in turn
        report.trial(lambda folder, twice=index % 2 == 1: trial(folder, rng, twice))
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
