"""Listing a large cache: does adding chunks cost more when ``chunks/`` already holds
100,000 files?

Run from the repository root::

    python benchmarks/bench_listing.py             # full sizes (a few minutes)
    python benchmarks/bench_listing.py --smoke     # tiny sizes, checks it runs
    python benchmarks/bench_listing.py --profile   # also cProfile a third add (driver only)

One benchmark, ``listing`` (``--only listing``), in steps:

1. build: one params set, ``memo_chunk_spec={"x": 1}`` (one point per chunk file),
   ``exec_chunk_size=1000``, ``max_workers=2``, a trivial exec function; ``run_streaming``
   over ``N_big`` = 100,000 points writes 100,000 chunk files, each fsynced as in any run
   (the build time is printed);
2. add to big: a fresh ``SwarmMemo`` on that cache (its pool warmed by a two-point run on
   other params) runs ``run_streaming`` over 20,000 NEW x values of the same params set:
   20,000 new chunk files next to the 100,000;
3. add to empty: the same 20,000 values, same params, same memo settings, on an empty
   cache. RATIO = add to big / add to empty (target <= 1.3: the engine lists ``chunks/``
   once per call and stats one file per missing chunk, instead of listing the folder
   every 0.1 s);
4. a warm ``status`` of the 120,000 points on the big cache (everything stored), next to a
   bare ``os.listdir`` of its ``chunks/`` folder, for reference.

The two adds alternate (empty first, then big) ``repeats`` times; each repetition of the
big case adds values not added before (the big cache grows by ``N_new`` each time), and
each empty case starts from a new empty cache.

``--profile`` adds ``N_new`` more values to the big cache under ``cProfile`` (the driver
only: the workers are other processes) and prints the top entries by own time, and how
often the store listed a folder and stat-ed a file.

Smoke sizes: N_big = 500, N_new = 100.
"""

from __future__ import annotations

import collections
import contextlib
import cProfile
import io
import os
import pstats
import statistics
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    close_memo,
    fresh_dir,
    header,
    info,
    median_seconds,
    report,
    run_suite,
    timed,
)

PARAMS = {"kind": "listing"}
WARM_PARAMS = {"kind": "warm-up"}
PROFILE_FLAG = "--profile"


def identity(params, point):
    """Trivial exec function: the point's x."""
    return point[0]


@dataclass(frozen=True)
class Sizes:
    n_big: int
    n_new: int
    exec_chunk: int
    repeats: int
    top: int


FULL = Sizes(n_big=100_000, n_new=20_000, exec_chunk=1000, repeats=1, top=5)
SMOKE = Sizes(n_big=500, n_new=100, exec_chunk=100, repeats=1, top=5)


def new_memo(root: Path, sz: Sizes, warm: bool = True):
    """A memo of one point per chunk file; ``warm`` starts its pool on other params."""
    from swarm_memo import SwarmMemo

    memo = SwarmMemo(root, {"x": 1}, sz.exec_chunk, exec_fn=identity, max_workers=2, verbose=0)
    if warm:
        memo.run_streaming(WARM_PARAMS, {"x": [-1, -2]})
    return memo


def add(root: Path, values: list[int], sz: Sizes) -> float:
    """Seconds of ``run_streaming`` over ``values`` (all new) by a fresh, warmed memo."""
    memo = new_memo(root, sz)
    try:
        diag, seconds = timed(lambda: memo.run_streaming(PARAMS, {"x": values}))
    finally:
        close_memo(memo)
    assert diag.executed_points == len(values), diag  # type: ignore[attr-defined]
    return seconds


def chunks_folder(root: Path) -> Path:
    """The ``chunks/`` folder of PARAMS: the one holding the most chunk files."""
    folders = [p for p in root.glob("*/chunks") if p.is_dir()]
    return max(folders, key=lambda p: len(os.listdir(p)))


def build(root: Path, sz: Sizes) -> None:
    memo = new_memo(root, sz, warm=False)
    try:
        diag, seconds = timed(lambda: memo.run_streaming(PARAMS, {"x": list(range(sz.n_big))}))
    finally:
        close_memo(memo)
    assert diag.executed_points == sz.n_big, diag  # type: ignore[attr-defined]
    files = len(os.listdir(chunks_folder(root)))
    info(
        "listing",
        f"build: {sz.n_big:,} points in {files:,} chunk files in {seconds:.1f} s "
        f"({seconds / sz.n_big * 1e3:.2f} ms per chunk file, fsynced)",
    )


def bench_listing(sz: Sizes) -> None:
    header("listing", f"adding {sz.n_new:,} chunks to a cache of {sz.n_big:,} vs an empty one")
    with fresh_dir() as big:
        build(big, sz)
        added = [sz.n_big]  # the next new x value

        def add_big() -> float:
            values = list(range(added[0], added[0] + sz.n_new))
            added[0] += sz.n_new
            return add(big, values, sz)

        def add_empty() -> float:
            with fresh_dir() as empty:
                return add(empty, list(range(sz.n_big, sz.n_big + sz.n_new)), sz)

        times: dict[str, list[float]] = {"big": [], "empty": []}
        for _ in range(sz.repeats):
            times["empty"].append(add_empty())
            times["big"].append(add_big())
        t_empty, t_big = statistics.median(times["empty"]), statistics.median(times["big"])
        report(
            "listing",
            f"add {sz.n_new:,} chunks to {sz.n_big:,} stored",
            t_big,
            "add to an empty cache",
            t_empty,
            max_ratio=1.3,
            note=f"{t_big / sz.n_new * 1e6:.0f} vs {t_empty / sz.n_new * 1e6:.0f} us per chunk",
        )
        status_vs_listdir(big, added[0], sz)
        if PROFILE:
            profile_add(big, added[0], sz)


def status_vs_listdir(root: Path, n_stored: int, sz: Sizes) -> None:
    """A warm ``status`` of every stored point vs a bare listing of ``chunks/``."""
    memo = new_memo(root, sz, warm=False)
    try:
        spec = {"x": list(range(n_stored))}
        st, t_status = timed(lambda: memo.status(PARAMS, spec))
    finally:
        close_memo(memo)
    assert st.missing_points == 0, st  # type: ignore[attr-defined]
    folder = chunks_folder(root)
    t_listdir = median_seconds(3, lambda: timed(lambda: os.listdir(folder))[1])
    report(
        "listing",
        f"status of {n_stored:,} stored points",
        t_status,
        "os.listdir(chunks/)",
        t_listdir,
        note=f"{len(os.listdir(folder)):,} files; {t_status / n_stored * 1e6:.1f} us per point",
    )


@contextlib.contextmanager
def watch_store_and_claims() -> Iterator[dict[str, Any]]:
    """Count the folders the local store lists (by last path component) and the peak
    number of chunk claims one run holds at once (each claim is a POSIX record lock)."""
    from swarm_memo.cache.claims import Claims
    from swarm_memo.stores.local import LocalStore

    seen: dict[str, Any] = {"listed": collections.Counter(), "peak_claims": 0}
    entries, try_claim = LocalStore._entries, Claims.try_claim

    def counting_entries(store: LocalStore, prefix: str) -> list[os.DirEntry[str]]:
        seen["listed"][prefix.rsplit("/", 1)[-1] + "/"] += 1
        return entries(store, prefix)

    def counting_claim(claims: Claims, name: str) -> bool:
        claimed = try_claim(claims, name)
        seen["peak_claims"] = max(seen["peak_claims"], len(claims._held))
        return claimed

    with (
        mock.patch.object(LocalStore, "_entries", counting_entries),
        mock.patch.object(Claims, "try_claim", counting_claim),
    ):
        yield seen


def profile_add(root: Path, first: int, sz: Sizes) -> None:
    """cProfile of one more add to the big cache: the top entries by own time, the folders
    listed, the files stat-ed and the peak number of claims held."""
    memo = new_memo(root, sz)
    values = list(range(first, first + sz.n_new))
    profiler = cProfile.Profile()
    try:
        with watch_store_and_claims() as seen:
            profiler.enable()
            memo.run_streaming(PARAMS, {"x": values})
            profiler.disable()
    finally:
        close_memo(memo)
    info("listing", f"profile of adding {sz.n_new:,} chunks to {first:,} stored (driver):")
    out = io.StringIO()
    ordered = pstats.Stats(profiler, stream=out).sort_stats("tottime")
    ordered.print_stats(sz.top)
    out.write("\n   ... the same, swarm_memo's own functions only:\n")
    ordered.print_stats("swarm_memo", sz.top)
    print(out.getvalue().rstrip(), flush=True)
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    n_stat = sum(
        row[1] for (path, _, name), row in stats.items() if name == "stat" and "_store" in path
    )
    info("listing", f"folders listed during that add: {dict(sorted(seen['listed'].items()))}")
    info("listing", f"LocalStore.stat calls during that add: {n_stat:,}")
    info("listing", f"peak chunk claims (record locks) held at once: {seen['peak_claims']:,}")


PROFILE = False

if __name__ == "__main__":
    argv = sys.argv[1:]
    with contextlib.suppress(ValueError):
        argv.remove(PROFILE_FLAG)
        PROFILE = True
    run_suite("listing", __doc__.splitlines()[0], {"listing": bench_listing}, (FULL, SMOKE), argv)
