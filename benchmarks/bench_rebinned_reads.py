"""Warm cost of a request served from other files (reading never grows the cache).

Since a call that computes nothing writes nothing, a request under another binning than
the stored one is served point by point from the stored files on every call, instead of
being copied once into files of its own layout. This measures what that costs, side by
side in one run: the same warm request (a) on its own layout and (b) rebinned, served from
many files; then (b) again after ``compact()`` rewrote it into its own layout.

    python benchmarks/bench_rebinned_reads.py            # 100,000 points
    python benchmarks/bench_rebinned_reads.py --smoke    # tiny, for the test suite
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from swarm_memo import SwarmMemo


def _exec(params: dict[str, Any], point: tuple[int]) -> float:
    return point[0] * 0.5


def _memo(root: Path, bins: int) -> SwarmMemo:
    return SwarmMemo(root, {"i": bins}, 1000, exec_fn=_exec, executor="serial", verbose=0)


def _best(memo: SwarmMemo, spec: dict[str, list[int]], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        _, diag = memo.run({}, spec)
        times.append(time.perf_counter() - started)
        assert diag.executed_points == 0
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    points, repeats = (2_000, 2) if args.smoke else (args.points, args.repeats)
    spec = {"i": list(range(points))}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _memo(root, 1000).run({}, spec)  # stored in bins of 1000
        own = _best(_memo(root, 1000), spec, repeats)
        rebinned_memo = _memo(root, 700)  # every chunk straddles two stored files
        files_before = len(list(root.glob("*/chunks/*.chunk")))
        rebinned = _best(rebinned_memo, spec, repeats)
        assert len(list(root.glob("*/chunks/*.chunk"))) == files_before  # nothing written
        rebinned_memo.compact({}, spec)
        compacted = _best(rebinned_memo, spec, repeats)
    print(f"{points:,} points stored in bins of 1000, warm run() (median of {repeats}):")
    print(f"  own layout (bins of 1000)            {own:8.3f} s   1.00x")
    print(f"  rebinned (bins of 700), from files   {rebinned:8.3f} s   {rebinned / own:.2f}x")
    print(f"  rebinned after compact()             {compacted:8.3f} s   {compacted / own:.2f}x")


if __name__ == "__main__":
    main()
