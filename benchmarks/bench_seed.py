"""The seed-style figures of issue 23: one axis, the seed's own enumerator, a fresh memo.

Run from the repository root::

    python benchmarks/bench_seed.py             # full sizes (a few minutes)
    python benchmarks/bench_seed.py --smoke     # tiny sizes, checks it runs (< 10 s)
    python benchmarks/bench_seed.py --only cold --only warm

Every swarm-memo measurement builds a FRESH ``SwarmMemo`` inside the timing (its worker
pool starts inside it, as in a user's script) and closes it at the end of the timing: one
axis ``i`` of 200,000 ints, ``memo_chunk_spec={"i": 1000}``, ``exec_chunk_size=1000``,
``max_workers=2``, the seed quick start's custom ``enumerate_points`` returning
``[(i,) for i in split_spec["i"]]`` and custom ``collate_fn``/``merge_fn``; defaults
otherwise (``durable=True``; ``durable=False`` is shown next to it).

``cold`` (P1): a cold ``run`` vs the floor ``ProcessPoolExecutor(2).map(fn, range(N),
chunksize=1000)`` + ``pickle.dump`` of the outputs into 200 files, the pool created inside
the timing (target <= 1.5x).

``warm`` (P2): the same call again, everything cached, fresh memo, vs the floor: reading
every byte of swarm-memo's files (chunks, index, params) + ``pickle.load`` of the 200 P1
files (target <= 2.0x).

``efficiency`` (P3): 200 points x 20 ms ``time.sleep``, ``exec_chunk_size=1``, bins of 10,
fresh memo: ideal 2.0 s / measured (target >= 0.95); the bare pool (created inside the
timing, ``chunksize=1``) next to it.

``startup``: a fresh memo computing 10 trivial points (bins of 10, ``exec_chunk_size=1``)
against a forked ``ProcessPoolExecutor(2)`` created inside the timing (no target: the
cost of a memo's first call, mostly its workers' start); then the same as the first memo
of a fresh interpreter (the fork server's own start inside), against the same pool there.

``arrays`` (S4): a warm ``run`` of 160 outputs that are 1 MB float64 arrays, stored 4 per
file (40 files), fresh memo, vs ``pickle.load`` of the same arrays from 40 files of 4:
throughput ratio (target >= 0.5x).

``scale`` (S1, S2, S3; each call in a fresh subprocess, via ``bench_reuse.in_child``): one
axis of 10^6 ints stored in bins of 1000 (exec function ``first``: the int itself).
S1 a serial ``run`` of ``range(10^6 + 1)`` (one new point, all outputs returned): time
and driver RSS growth (targets 0.3 s, 50 MB); S3 ``run_streaming`` of the 10^6 stored
points under bins of 700: RSS growth (target 40 MB); S2 ``status`` of that rebinned
request: time and traced bytes per point (targets 0.5 us, 60 B).
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    MB,
    check,
    close_memo,
    fresh_dir,
    header,
    info,
    report,
    run_suite,
    write_batches,
)


# ---------------------------------------------------------------------------- user functions
def seed_enumerate(params: dict, split_spec: dict) -> list:
    """The seed quick start's enumerator, on one axis."""
    return [(i,) for i in split_spec["i"]]


def double(params: dict, point: tuple) -> int:
    return point[0] * 2


def bare_double(i: int) -> int:
    return i * 2


def nap(params: dict, point: tuple) -> int:
    time.sleep(params["sleep"])
    return point[0]


def bare_nap(job: tuple[int, float]) -> int:
    time.sleep(job[1])
    return job[0]


def array_of(params: dict, point: tuple) -> Any:
    import numpy as np

    return np.full(params["values"], float(point[0]))


def collate(outputs: list) -> list:
    return outputs


def merge(chunks: list) -> list:
    merged: list = []
    for chunk in chunks:
        merged.extend(chunk)
    return merged


@dataclass(frozen=True)
class Sizes:
    n: int
    bin: int
    repeats: int
    naps: int
    nap_seconds: float
    arrays: int
    array_values: int
    per_file: int
    scale: int
    trace_apart: bool = True  # S2: time a child untraced, then trace it in a second child


FULL = Sizes(200_000, 1000, 3, 200, 0.02, 160, 131_072, 4, 10**6)
SMOKE = Sizes(2_000, 100, 1, 10, 0.002, 8, 1_024, 4, 10_000, trace_apart=False)


def new_memo(root: Path, sz: Sizes, fn: Any = double, **kwargs: Any) -> Any:
    from swarm_memo import SwarmMemo

    return SwarmMemo(
        root,
        {"i": kwargs.pop("bin", sz.bin)},
        kwargs.pop("exec_chunk_size", sz.bin),
        enumerate_points=seed_enumerate,
        exec_fn=fn,
        collate_fn=collate,
        merge_fn=merge,
        max_workers=2,
        verbose=0,
        **kwargs,
    )


def memo_call(root: Path, sz: Sizes, params: dict, split: dict, **kwargs: Any) -> float:
    """Seconds of a fresh memo's ``run`` (construction and close inside the timing)."""
    started = time.perf_counter()
    memo = new_memo(root, sz, **kwargs)
    try:
        memo.run(params, split)
    finally:
        close_memo(memo)
    return time.perf_counter() - started


# ---------------------------------------------------------------------------- P1, P2
def floor_cold(sz: Sizes, folder: Path) -> float:
    started = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        outputs = list(pool.map(bare_double, range(sz.n), chunksize=sz.bin))
    write_batches(folder, outputs, sz.bin)
    return time.perf_counter() - started


def floor_warm(cache_root: Path, dumps: Path) -> float:
    """Read every byte of swarm-memo's files, then ``pickle.load`` every dump file."""
    started = time.perf_counter()
    for dirpath, _dirs, files in os.walk(cache_root):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as fh:
                fh.read()
    outputs: list = []
    for path in sorted(dumps.iterdir()):
        with open(path, "rb") as fh:
            outputs.extend(pickle.load(fh))
    return time.perf_counter() - started


def bench_cold(sz: Sizes) -> None:
    header("cold", f"P1: fresh memo, one axis of {sz.n:,} ints, seed enumerator, 2 workers")
    split = {"i": list(range(sz.n))}
    times: dict[str, list[float]] = {"durable": [], "not durable": [], "floor": []}
    for rep in range(sz.repeats):  # interleaved: the machine's load hits all three alike
        with fresh_dir() as tmp:
            params = {"rep": rep}
            times["durable"].append(memo_call(tmp / "a", sz, params, split))
            times["not durable"].append(memo_call(tmp / "b", sz, params, split, durable=False))
            times["floor"].append(floor_cold(sz, tmp / "dumps"))
    floor = sorted(times["floor"])[len(times["floor"]) // 2]
    for case in ("durable", "not durable"):
        memo = sorted(times[case])[len(times[case]) // 2]
        report("cold", f"P1 {case}", memo, "pool.map + 200 dumps", floor, max_ratio=1.5)


def bench_warm(sz: Sizes) -> None:
    header("warm", "P2: the same call, all cached, by a fresh memo")
    split = {"i": list(range(sz.n))}
    params = {"bench": "warm"}
    with fresh_dir() as tmp:
        root, dumps = tmp / "cache", tmp / "dumps"
        memo_call(root, sz, params, split, durable=False)
        floor_cold(sz, dumps)
        memo_times, floor_times = [], []
        for _ in range(max(3, sz.repeats)):
            memo_times.append(memo_call(root, sz, params, split))
            floor_times.append(floor_warm(root, dumps))
        memo, floor = sorted(memo_times)[1], sorted(floor_times)[1]
    report("warm", "P2 warm run", memo, "read all + pickle.load", floor, max_ratio=2.0)


# ---------------------------------------------------------------------------- P3
def bench_efficiency(sz: Sizes) -> None:
    ideal = sz.naps * sz.nap_seconds / 2
    header("efficiency", f"P3: {sz.naps} points x {sz.nap_seconds * 1000:g} ms, fresh memo")
    params = {"sleep": sz.nap_seconds}
    split = {"i": list(range(sz.naps))}
    memo_times, bare_times = [], []
    for _ in range(sz.repeats):
        with fresh_dir() as tmp:
            memo_times.append(memo_call(tmp, sz, params, split, fn=nap, bin=10, exec_chunk_size=1))
        started = time.perf_counter()
        with ProcessPoolExecutor(2) as pool:
            jobs = [(i, sz.nap_seconds) for i in range(sz.naps)]
            list(pool.map(bare_nap, jobs, chunksize=1))
        bare_times.append(time.perf_counter() - started)
    memo = sorted(memo_times)[len(memo_times) // 2]
    bare = sorted(bare_times)[len(bare_times) // 2]
    report("efficiency", "P3 time", memo, "bare pool, created inside", bare)
    check("efficiency", "P3 efficiency", ideal / memo, "", at_least=0.95)
    info("efficiency", f"bare pool efficiency {ideal / bare:.3f}")


# ---------------------------------------------------------------------------- start-up
def bench_startup(sz: Sizes) -> None:
    header("startup", "a fresh memo computing 10 trivial points (pool start inside)")
    split = {"i": list(range(10))}
    memo_times, bare_times = [], []
    for rep in range(2 * sz.repeats + 1):
        with fresh_dir() as tmp:
            memo_times.append(memo_call(tmp, sz, {"rep": rep}, split, bin=10, exec_chunk_size=1))
        started = time.perf_counter()
        with ProcessPoolExecutor(2) as pool:
            list(pool.map(bare_double, range(10)))
        bare_times.append(time.perf_counter() - started)
    memo = sorted(memo_times)[len(memo_times) // 2]
    bare = sorted(bare_times)[len(bare_times) // 2]
    report("startup", "10 points, fresh memo", memo, "forked ProcessPoolExecutor", bare)
    firsts = [first_in_process(mode) for _ in range(sz.repeats) for mode in ("memo", "bare")]
    first = sorted(firsts[0::2])[len(firsts) // 4]
    first_bare = sorted(firsts[1::2])[len(firsts) // 4]
    report("startup", "10 points, first memo of a process", first, "forked pool, same", first_bare)


FIRST_IN_PROCESS = """
import sys, time
sys.path.insert(0, {bench!r})
import bench_seed as b
from pathlib import Path
from concurrent.futures import ProcessPoolExecutor
started = time.perf_counter()
if {mode!r} == "memo":
    b.memo_call(Path({root!r}), b.SMOKE, {{}}, {{"i": list(range(10))}}, bin=10, exec_chunk_size=1)
else:
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(b.bare_double, range(10)))
print(time.perf_counter() - started)
"""


def first_in_process(mode: str) -> float:
    """Seconds of the first memo (or forked pool) of a fresh interpreter, swarm-memo
    imported before the timing: what a script pays, the fork server's start included."""
    import subprocess

    with fresh_dir() as tmp:
        code = FIRST_IN_PROCESS.format(bench=str(Path(__file__).parent), mode=mode, root=str(tmp))
        done = subprocess.run(
            [sys.executable, "-c", "import swarm_memo._memo\n" + code],
            capture_output=True, text=True, check=True, timeout=300,
        )  # fmt: skip
    return float(done.stdout.split()[-1])


# ---------------------------------------------------------------------------- S4
def bench_arrays(sz: Sizes) -> None:
    try:
        import numpy as np
    except ImportError:
        from _common import skip

        skip("arrays", "numpy is not installed")
        return
    mb = sz.arrays * sz.array_values * 8 / MB
    header("arrays", f"S4: warm load of {sz.arrays} float64 arrays ({mb:.0f} MB), fresh memo")
    params = {"values": sz.array_values}
    split = {"i": list(range(sz.arrays))}
    with fresh_dir() as tmp:
        root, dumps = tmp / "cache", tmp / "dumps"
        kwargs: dict[str, Any] = {"fn": array_of, "bin": sz.per_file, "exec_chunk_size": 1}
        memo_call(root, sz, params, split, durable=False, **kwargs)
        arrays = [np.full(sz.array_values, float(i)) for i in split["i"]]
        write_batches(dumps, arrays, sz.per_file)
        del arrays

        def loaded() -> float:
            from swarm_memo import SwarmMemo

            memo = SwarmMemo(root, {"i": sz.per_file}, 1, exec_fn=array_of, verbose=0)
            started = time.perf_counter()
            out, _diag = memo.run(params, split)
            seconds = time.perf_counter() - started
            assert len(out) == sz.arrays, len(out)
            memo.close()
            return seconds

        def bare() -> float:
            started = time.perf_counter()
            outputs: list = []
            for path in sorted(dumps.iterdir()):
                with open(path, "rb") as fh:
                    outputs.extend(pickle.load(fh))
            return time.perf_counter() - started

        memo_times, bare_times = [], []
        for _ in range(5):
            memo_times.append(loaded())
            bare_times.append(bare())
        memo, floor = sorted(memo_times)[2], sorted(bare_times)[2]
    report(
        "arrays",
        "S4 throughput",
        mb / memo,
        "pickle.load of 40 files",
        mb / floor,
        "MB/s",
        min_ratio=0.5,
    )


# ---------------------------------------------------------------------------- S1, S2, S3
def bench_scale(sz: Sizes) -> None:
    from bench_reuse import in_child, per_point, populate, traced_child

    n = sz.scale
    header("scale", f"S1-S3: one axis of {n:,} stored ints, bins of 1000, fresh subprocesses")
    params = {"bench": "scale"}
    with fresh_dir() as tmp:
        root = tmp / "cache"
        populate(root, {"a": 1000}, {"a": list(range(n))}, params, "first", 10_000)
        job = {"root": str(root), "params": params, "fn": "first"}
        whole, appended = {"a": ["range", 0, n, 1]}, {"a": ["range", 0, n + 1, 1]}
        s3 = in_child(spec={"a": 700}, split=whole, method="run_streaming", **job)
        s2 = traced_child(sz, spec={"a": 700}, split=whole, method="status", **job)
        s1 = in_child(spec={"a": 1000}, split=appended, method="run", **job)
    assert s1["executed_points"] == 1, s1
    assert s3["executed_points"] == 0, s3
    check("scale", "S1 run of 1 new + all stored: time", s1["seconds"], "s", at_most=0.3)
    check("scale", "S1 driver RSS growth", s1["growth"] / MB, "MB", at_most=50)
    check("scale", "S3 rebinned run_streaming: RSS growth", s3["growth"] / MB, "MB", at_most=40)
    us, per_b = per_point(s2)
    check("scale", "S2 rebinned status: time per point", us, "us", at_most=0.5)
    check("scale", "S2 rebinned status: traced bytes per point", per_b, "B", at_most=60)
    report("scale", "S2 rebinned status", s2["seconds"], "S1 run", s1["seconds"])


BENCHMARKS = {
    "cold": bench_cold,
    "warm": bench_warm,
    "efficiency": bench_efficiency,
    "startup": bench_startup,
    "arrays": bench_arrays,
    "scale": bench_scale,
}


def main(argv: list[str] | None = None) -> None:
    run_suite("seed", __doc__.splitlines()[0], BENCHMARKS, (FULL, SMOKE), argv)


if __name__ == "__main__":
    main()
