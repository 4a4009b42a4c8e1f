"""A sweep run as its own process by the reliability tests (kill it, interrupt it, race it).

python sweeper.py CACHE LOG POINTS BIN SLEEP WORKERS [stream] [--barrier=PATH]

With ``--barrier=PATH`` it builds its memo, creates ``PATH.ready`` and waits for
``PATH.go`` before running: a test starts several sweeps at a moment it chooses.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from helpers import CountingExec, grid_expected
from swarm_memo import SwarmMemo

BARRIER_TIMEOUT = 120.0


def wait_at_barrier(barrier: str) -> None:
    """Say ready, then wait for the go signal (or give up, so a broken test cannot hang)."""
    Path(f"{barrier}.ready").touch()
    go = Path(f"{barrier}.go")
    deadline = time.monotonic() + BARRIER_TIMEOUT
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit(f"no go signal at {go} within {BARRIER_TIMEOUT} s")
        time.sleep(0.002)


def main() -> None:
    cache, log, points, bin_size, sleep, workers = sys.argv[1:7]
    options = sys.argv[7:]
    stream = "stream" in options
    barriers = [o.split("=", 1)[1] for o in options if o.startswith("--barrier=")]
    memo = SwarmMemo(
        cache,
        {"x": int(bin_size)},
        1,
        exec_fn=CountingExec(Path(log), sleep=float(sleep)),
        max_workers=int(workers),
        verbose=0,
        on_code_change="ignore",  # each process logs to its own file: other instance state
    )
    spec = {"x": list(range(int(points)))}
    for barrier in barriers:
        wait_at_barrier(barrier)
    if stream:
        diag = memo.run_streaming({"alpha": 1}, spec)
    else:
        output, diag = memo.run({"alpha": 1}, spec)
        assert output == grid_expected({"alpha": 1}, spec, ("x",))
    print("DONE", diag.executed_points, diag.cached_points, flush=True)


if __name__ == "__main__":
    main()
