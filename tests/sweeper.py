"""A sweep run as its own process by the reliability tests (kill it, interrupt it, race it).

python sweeper.py CACHE LOG POINTS BIN SLEEP WORKERS [stream]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from helpers import CountingExec
from swarm_memo import SwarmMemo


def main() -> None:
    cache, log, points, bin_size, sleep, workers = sys.argv[1:7]
    stream = len(sys.argv) > 7 and sys.argv[7] == "stream"
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
    if stream:
        diag = memo.run_streaming({"alpha": 1}, spec)
    else:
        output, diag = memo.run({"alpha": 1}, spec)
        assert [o["point"] for o in output] == [(x,) for x in range(int(points))]
    print("DONE", diag.executed_points, diag.cached_points, flush=True)


if __name__ == "__main__":
    main()
