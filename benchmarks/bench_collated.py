"""What storing a chunk's collated value instead of its points would save, and cost.

A histogram study: each point (a seed) returns a 1,000-bin float64 histogram (8 KB); the
``collate_fn`` sums a chunk's histograms. swarm-memo stores every point's histogram. A
store of collated values (one sum per chunk file) would hold about 1/100 of that. The
script measures swarm-memo's bytes, then runs four follow-up requests and counts the
points swarm-memo executes, next to the points a collated store would have to recompute:
every point of a requested chunk whose exact membership was not stored as one chunk (a
sum of 100 histograms cannot be split or regrouped). Last, the workaround, which also
measures what a collated store weighs: a point that is itself a batch of 100 seeds (the
reduction inside ``exec_fn``) stores one summed histogram per file.

    python benchmarks/bench_collated.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from swarm_memo import SwarmMemo

BINS = 1000
SEEDS = 2000
CHUNK = 100
CALLS = {"n": 0}


def histogram(params: dict[str, Any], point: tuple[int]) -> Any:
    CALLS["n"] += 1
    values = np.random.default_rng(point[0]).normal(size=200)
    return np.histogram(values, bins=BINS, range=(-4, 4))[0].astype(np.float64)


def batch_histogram(params: dict[str, Any], point: tuple[int]) -> Any:
    first = point[0] * CHUNK
    return sum(histogram(params, (seed,)) for seed in range(first, first + CHUNK))


def sum_arrays(outputs: list[Any]) -> Any:
    return sum(outputs)


def concat(chunks: list[Any]) -> list[Any]:
    return list(chunks)


def cache_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.chunk"))


def memberships(seeds: list[int], size: int) -> list[frozenset[int]]:
    return [frozenset(seeds[i : i + size]) for i in range(0, len(seeds), size)]


def run(memo: SwarmMemo, seeds: list[int]) -> int:
    CALLS["n"] = 0
    memo.run({}, {"seed": seeds})
    return CALLS["n"]


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "cache"
        options: dict[str, Any] = {
            "exec_fn": histogram,
            "collate_fn": sum_arrays,
            "merge_fn": concat,
            "max_workers": 1,
            "verbose": 0,
        }
        memo = SwarmMemo(root, {"seed": CHUNK}, 50, **options)
        seeds = list(range(SEEDS))
        run(memo, seeds)
        stored = cache_bytes(root)
        files = len(list(root.rglob("*.chunk")))
        print(f"INFO points stored: {SEEDS} x {BINS}-bin histograms in {files} files")
        print(f"INFO swarm-memo bytes on disk: {stored:,} ({stored / SEEDS:,.0f} per point)")
        stored_chunks = set(memberships(seeds, CHUNK))
        requests = {
            "extend the axis to 2,100 seeds": (memo, list(range(SEEDS + 100)), CHUNK),
            "rebin: chunks of 250": (
                SwarmMemo(root, {"seed": 250}, 50, **options),
                seeds,
                250,
            ),
            "the even seeds only": (memo, seeds[::2], CHUNK),
            "insert seed 10**6 after seed 999": (
                memo,
                [*seeds[:1000], 10**6, *seeds[1000:]],
                CHUNK,
            ),
        }
        print("| follow-up request | swarm-memo executes | a collated store recomputes |")
        print("| --- | --- | --- |")
        for label, (target, request, size) in requests.items():
            executed = run(target, request)
            recompute = sum(len(m) for m in memberships(request, size) if m not in stored_chunks)
            print(f"| {label} | {executed:,} | {recompute:,} |")
        batched_root = Path(folder) / "batched"
        batched = SwarmMemo(
            batched_root, {"batch": 1}, 4, exec_fn=batch_histogram, max_workers=1, verbose=0
        )
        batched.run({}, {"batch": list(range(SEEDS // CHUNK))})
        summed = cache_bytes(batched_root)
        print(
            f"INFO one summed histogram per file (what a collated store holds; here a batch "
            f"of {CHUNK} seeds per point): {summed:,} bytes, {stored / summed:.0f}x less"
        )


if __name__ == "__main__":
    main()
