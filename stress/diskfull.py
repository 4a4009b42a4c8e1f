"""Disk full: a sweep on a small tmpfs that fills up part way through.

Each trial mounts a tmpfs of a random size (too small for the sweep), runs the sweep on
it in a child process (serial or two process workers, durable or not), then grows the
tmpfs (``mount -o remount``) and runs the sweep again. The first run must fail with a
swarm-memo ``StoreError`` (never another exception, never a hang); every point the full
cache serves must have exactly its value; the second run must complete with every output
right, computing only the points that were not served. Needs root and ``mount -t tmpfs``;
without them it says why and skips (exit 0).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from common import begin, env, rerun_computes_the_rest, served

POINTS = 60
PAD = 6000
"""Bytes of padding per output: the sweep needs about POINTS * PAD bytes."""

CHILD = """
import sys
sys.path[:0] = {paths!r}
from common import memo_for
from swarm_memo.errors import StoreError
from workload import spec
memo = memo_for(__import__("pathlib").Path(sys.argv[1]), executor=sys.argv[2],
                max_workers=2, durable=sys.argv[3] == "1")
try:
    memo.run({{"pad": {pad}}}, spec({points}))
except StoreError as exc:
    print("StoreError:", str(exc)[:300])
    sys.exit(3)
"""


def mount(folder: Path, size: int) -> str | None:
    """Mount a tmpfs of ``size`` bytes; the reason it cannot be done, or None."""
    folder.mkdir(parents=True, exist_ok=True)
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "not root: cannot mount a tmpfs"
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    return None if result.returncode == 0 else f"mount -t tmpfs failed: {result.stderr.strip()}"


def trial(folder: Path, rng: random.Random) -> list[str]:
    disk = folder / "disk"
    reason = mount(disk, rng.randint(40, 200) * 1024)
    if reason:
        raise RuntimeError(reason)
    try:
        cache = disk / "cache"
        executor = rng.choice(["serial", "process"])
        durable = rng.choice(["0", "1"])
        child = CHILD.format(
            paths=[str(Path(__file__).parent), str(Path(__file__).parents[1] / "src")],
            pad=PAD,
            points=POINTS,
        )
        result = subprocess.run(
            [sys.executable, "-c", child, str(cache), executor, durable],
            env=env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        how = f"({executor}, durable={durable})"
        problems = []
        if result.returncode != 3:
            problems.append(
                f"the run on a full disk {how} ended with {result.returncode}, not a "
                f"StoreError:\n{result.stdout[-800:]}{result.stderr[-1500:]}"
            )
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        values, wrong = served(cache, POINTS, pad=PAD)
        return problems + wrong + rerun_computes_the_rest(cache, POINTS, len(values), pad=PAD)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def main() -> int:
    trials, rng, report = begin(
        __doc__ or "",
        "diskfull",
        "a run that fills the disk fails with StoreError (no other exception, no hang); "
        "every point the full cache serves has exactly its value; once there is space, a "
        "run completes with every output right, computing only what was not served",
        smoke=2,
        full=100,
    )
    with tempfile.TemporaryDirectory() as probe:
        reason = mount(Path(probe) / "disk", 1024 * 1024)
        if reason is None:
            subprocess.run(["umount", "-l", str(Path(probe) / "disk")], check=False)
        else:
            print(f"diskfull: skipped: {reason}")
            return 0
    for _ in range(trials):
        report.trial(lambda folder: trial(folder, rng))
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
