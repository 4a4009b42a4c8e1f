"""Concurrent processes and CLI calls on one cache.

Each trial starts two to four sweep processes on one fresh cache at once (random
executors, worker counts and point sets that overlap), and while they run calls the CLI
(``ls``, ``verify``, ``info``, ``progress``) over and over. Every sweep must exit 0 with
every output right (``workload.py --check``), every CLI call must exit 0 (``verify``: 1
is a damaged file), and afterwards one run over all points returns every output right,
computing only the points no sweep requested. Points computed by more than one process
are counted (claims make them rare; they are not a loss).
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from common import begin, calls, env, kill_group, memo_for, start_driver
from workload import expected

POINTS = 80
DUPLICATES: list[int] = []
CLI_CALLS: list[int] = []


def cli(cache: Path, rng: random.Random) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    command = rng.choice([["ls"], ["verify"], ["ls", "--json"], ["progress"]])
    args = [sys.executable, "-m", "swarm_memo", command[0], str(cache), *command[1:]]
    return command, subprocess.run(args, env=env(), capture_output=True, text=True, timeout=120)


def trial(folder: Path, rng: random.Random) -> list[str]:
    cache = folder / "cache"
    sweeps = []
    requested: set[int] = set()
    for index in range(rng.randint(2, 4)):
        start = rng.choice([0, 0, POINTS // 4])
        stop = rng.choice([POINTS, POINTS - POINTS // 4])
        requested |= set(range(start, stop))
        args = [str(stop), "--start", str(start), "--check"]
        args += ["--workers", str(rng.randint(1, 2)), "--sleep", "0.005"]
        sweeps.append(start_driver(cache, folder / f"calls{index}.log", *args))
    problems: list[str] = []
    try:
        while any(proc.poll() is None for proc in sweeps):
            if cache.exists():
                command, result = cli(cache, rng)
                CLI_CALLS.append(1)
                if result.returncode != 0 and "no params set" not in result.stderr:
                    problems.append(f"swarm-memo {' '.join(command)} exited "
                                    f"{result.returncode}: {result.stderr[-800:]}")  # fmt: skip
            time.sleep(0.05)
        for proc in sweeps:
            _, stderr = proc.communicate(timeout=300)
            if proc.returncode != 0:
                problems.append(f"a sweep exited {proc.returncode}:\n{stderr[-1500:]}")
    finally:
        for proc in sweeps:
            kill_group(proc)
    done = Counter(
        line.split()[1]
        for index in range(len(sweeps))
        for line in calls(folder / f"calls{index}.log")
        if line.startswith("done")
    )
    DUPLICATES.append(sum(count - 1 for count in done.values()))
    output, diag = memo_for(cache).run({}, {"x": list(range(POINTS))})
    problems += [f"point {x}: got {o!r}" for x, o in enumerate(output) if o != expected(x)]
    if diag.executed_points != POINTS - len(requested):
        problems.append(
            f"the run over all points computed {diag.executed_points}, "
            f"{POINTS - len(requested)} were requested by no sweep"
        )
    return problems


def main() -> int:
    trials, rng, report = begin(
        __doc__ or "",
        "many_processes",
        "every process returns every output right and exits 0, every CLI call exits 0 "
        "(verify finds no damaged file), and afterwards only points no sweep asked for are "
        "missing",
        smoke=2,
        full=60,
    )
    for _ in range(trials):
        report.trial(lambda folder: trial(folder, rng))
    report.notes.append(f"CLI calls during the runs: {len(CLI_CALLS)}")
    report.notes.append(f"points computed twice (not a loss): {sum(DUPLICATES)} in all")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
