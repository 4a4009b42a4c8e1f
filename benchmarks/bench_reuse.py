"""Reuse benchmarks: a big populated cache, read back as is, through other bin sizes, and
by requests much smaller than the cache.

Run from the repository root::

    python benchmarks/bench_reuse.py             # full sizes (a few minutes)
    python benchmarks/bench_reuse.py --smoke     # tiny sizes, checks it runs
    python benchmarks/bench_reuse.py --only scaling   # one benchmark

``reuse``: one cache of 1,000,000 points, in steps:

1. populate: a grid of axes "a" (1000 ints) x "b" (1000 ints), memo_chunk_spec
   {"a": 100, "b": 10} (1000 chunk files of 1000 points), trivial exec function,
   max_workers=2, exec_chunk_size=10000, filled once with ``run_streaming``;
2. ``memo.status`` on the full grid (target: well under 1 s), next to a bare listing of
   the chunk folder;
3. a warm ``memo.run`` (everything cached) vs a bare loop that reads and unpickles the same
   1000 chunk files (header and meta skipped) into one list;
4. a REBINNED request: a new SwarmMemo on the same cache_root with memo_chunk_spec
   {"a": 10, "b": 100}: no requested chunk has a file, every point is stored. Its
   ``status`` (in a fresh subprocess: time and peak RSS growth per point, targets 0.5 us
   and 60 B), then its ``run`` vs (the bare warm load + pickling and writing the same
   1000 x 1000 outputs to 1000 files); Diagnostics.reused_points and executed_points
   (must be 0) are printed.

``one_axis``: one axis "a" of 1,000,000 ints stored in chunks of 1000; a ``run`` of ONE new
point ({"a": [1000000]}, max_workers=1) in a fresh subprocess, vs the same run on an empty
cache (targets: at most 0.3 s and +50 MB of driver RSS); the same for ``status``; then a
rebinned ``status`` ({"a": 700}) of the whole axis vs the same with the stored binning
(exact hits: the cost of planning a 10^6-value axis): time and peak RSS growth per point,
and what reuse adds to them (targets 0.5 us and 60 B).

``scaling``: 4-D grids of 10^4, 10^5 and 10^6 points (sides 10, 18, 32), stored with bins
{"a": 2, "b": 2, "c": 4, "d": 4} (64 points per file); a rebinned ``status``
({"a": 4, "b": 1, "c": 2, "d": 8}) in a fresh subprocess; per-point time at 10^6 vs 10^5
(target: flat, ratio <= 1.3). Caches are populated without fsync (only reads are timed).

``lru``: 5120 outputs of 100 KB (512 MB) stored in chunks of 64; ``run_streaming`` of a
rebinned grid ({"a": 41}) with one new point in every chunk (exec_chunk_size 1), in a fresh
subprocess: peak RSS growth vs the bytes stored (the reuse LRU is bounded in bytes, 256 MB).
The same without new points (every chunk fully reused) is printed for information.

Smoke sizes: 100 x 100 points, chunks {"a": 10, "b": 5} then {"a": 5, "b": 10}; 10,000
points on one axis; 4-D sides 4 and 6; 64 outputs of 10 KB.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

from swarm_memo.cache.codec import body_of

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    MB,
    PeakRSS,
    check,
    chunk_files,
    fresh_dir,
    header,
    info,
    median_seconds,
    report,
    run_suite,
    timed,
)


def combine(params, point):
    """Trivial exec function; points are (a, b) tuples (axis_order defaults to sorted)."""
    a, b = point
    return a * 1_000_000 + b


def first(params, point):
    """Exec function of the one-axis and 4-D grids."""
    return point[0]


def blob(params, point):
    """An output of ``params["size"]`` bytes (the LRU benchmark)."""
    return point[0].to_bytes(8, "big") * (params["size"] // 8)


@dataclass(frozen=True)
class Sizes:
    n_a: int
    n_b: int
    spec: dict
    rebinned: dict
    exec_chunk: int
    repeats: int
    one_axis: int
    one_axis_bin: int
    sides: tuple[int, ...]
    lru_outputs: int
    lru_size: int
    trace_apart: bool = True  # time a child call untraced, then trace it in a second child


FULL = Sizes(
    1000, 1000, {"a": 100, "b": 10}, {"a": 10, "b": 100}, 10_000, 3,
    10**6, 1000, (10, 18, 32), 5120, 100_000,
)  # fmt: skip
SMOKE = Sizes(
    100, 100, {"a": 10, "b": 5}, {"a": 5, "b": 10}, 500, 1,
    10**4, 100, (4, 6), 64, 10_000, trace_apart=False,
)  # fmt: skip


def new_memo(root: Path, spec: dict, sz: Sizes):
    from swarm_memo import SwarmMemo

    return SwarmMemo(root, spec, sz.exec_chunk, exec_fn=combine, max_workers=2, verbose=0)


def bare_load(files: list[Path]) -> tuple[list, float]:
    """Read + unpickle every chunk file into one flat list of outputs."""
    started = time.perf_counter()
    outputs: list = []
    for path in files:
        with open(path, "rb") as fh:
            data = fh.read()
        outputs.extend(pickle.loads(body_of(data))["outputs"])
    return outputs, time.perf_counter() - started


def bare_write(outputs: list, per_file: int, folder: Path, fsync: bool = False) -> float:
    """Pickle + write ``outputs`` as files of ``per_file`` outputs (what a rebin writes)."""
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for i, start in enumerate(range(0, len(outputs), per_file)):
        data = pickle.dumps(outputs[start : start + per_file], protocol=5)
        with open(folder / f"{i}.pkl", "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
    return time.perf_counter() - started


# ---------------------------------------------------------------------------- child calls

FUNCTIONS = {"combine": combine, "first": first, "blob": blob}


def build_split(described: dict) -> dict:
    """A split spec from its JSON description: a list, or ``["range", start, stop, step]``."""
    return {
        axis: list(range(*values[1:])) if values[:1] == ["range"] else values
        for axis, values in described.items()
    }


def call_child(job: dict) -> None:
    """In a fresh process: one call of a SwarmMemo method, its time and peak RSS growth."""
    from swarm_memo import SwarmMemo

    memo = SwarmMemo(
        job["root"],
        job["spec"],
        job.get("exec_chunk", 1000),
        exec_fn=FUNCTIONS[job["fn"]],
        max_workers=job.get("workers", 1),
        verbose=0,
    )
    split = build_split(job["split"])
    method = getattr(memo, job["method"])
    if job.get("trace"):  # Python allocations only: exact, but slows the call down
        tracemalloc.start()
    started = time.perf_counter()
    with PeakRSS() as rss:
        result = method(job["params"], split)
    seconds = time.perf_counter() - started
    traced = tracemalloc.get_traced_memory()[1] if job.get("trace") else 0
    diag = result[1] if isinstance(result, tuple) else result
    fields = ("total_points", "cached_points", "executed_points", "reused_points")
    out = {f: getattr(diag, f, 0) for f in fields}
    out.update(seconds=seconds, growth=max(rss.growth, rss.maxrss_growth or 0), traced=traced)
    print("CHILD " + json.dumps(out), flush=True)


def traced_child(sz: Sizes | None = None, **job: object) -> dict:
    """:func:`in_child` twice: timed (and RSS) as is, then the peak of Python allocations
    under ``tracemalloc`` (RSS alone is blurred by what the allocator keeps). Smoke sizes:
    once, traced (its time is then slowed by the tracing)."""
    if sz is not None and not sz.trace_apart:
        return in_child(trace=True, **job)
    figures = in_child(**job)
    figures["traced"] = in_child(trace=True, **job)["traced"]
    return figures


def in_child(**job: object) -> dict:
    """Run :func:`call_child` in a fresh interpreter (same sys.path) and return its figures."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", json.dumps(job)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("CHILD "):
            return dict(json.loads(line[len("CHILD ") :]))
    raise RuntimeError(f"child failed (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def populate(root: Path, spec: dict, split: dict, params: dict, fn: str, chunk: int) -> None:
    """Fill a cache with ``run_streaming`` (2 workers), skipping fsync: only reads of the
    cache are measured, and tens of thousands of fsyncs would dominate the benchmark."""
    from unittest import mock

    from swarm_memo import SwarmMemo

    memo = SwarmMemo(root, spec, chunk, exec_fn=FUNCTIONS[fn], max_workers=2, verbose=0)
    with mock.patch("os.fsync", return_value=None):
        diag = memo.run_streaming(params, split)
    assert diag.executed_points == diag.total_points, diag


def per_point(figures: dict) -> tuple[float, float]:
    """(microseconds, bytes) per point of a child call; bytes: the peak of Python
    allocations when traced, else the peak RSS growth."""
    n = max(1, figures["total_points"])
    return figures["seconds"] / n * 1e6, (figures.get("traced") or figures["growth"]) / n


def rss_note(figures: dict) -> str:
    return f"peak RSS growth {figures['growth'] / MB:.1f} MB"


def bench_reuse(sz: Sizes) -> None:
    n = sz.n_a * sz.n_b
    chunks = (sz.n_a // sz.spec["a"]) * (sz.n_b // sz.spec["b"])
    per_chunk = n // chunks
    header(
        "reuse",
        f"{n:,} points: a ({sz.n_a}) x b ({sz.n_b}), memo_chunk_spec {sz.spec} "
        f"({chunks} chunk files of {per_chunk} points), exec_chunk_size {sz.exec_chunk}, "
        "2 workers",
    )
    split = {"a": list(range(sz.n_a)), "b": list(range(sz.n_b))}
    params = {"bench": "reuse"}
    expected_sum = sum(a * 1_000_000 + b for a in split["a"] for b in split["b"])

    with fresh_dir() as tmp:
        root = tmp / "cache"
        memo = new_memo(root, sz.spec, sz)

        # 1. populate
        diag, t_populate = timed(lambda: memo.run_streaming(params, split))
        assert diag.executed_points == n, diag
        info(
            "reuse",
            f"populate with run_streaming: {t_populate:.2f} s ({diag.exec_chunks} "
            f"exec chunks, {diag.stream_flushes} chunk files written, write "
            f"{diag.write_time:.2f} s)",
        )
        files = chunk_files(root)
        assert len(files) == chunks, len(files)
        chunk_dir = files[0].parent

        # 2. status
        def status_once() -> float:
            status, seconds = timed(lambda: memo.status(params, split))
            assert status.missing_points == 0
            assert status.cached_points == n
            return seconds

        def listing_once() -> float:
            names, seconds = timed(lambda: os.listdir(chunk_dir))
            assert len(names) >= chunks
            return seconds

        t_status = median_seconds(3, status_once)
        t_listing = median_seconds(3, listing_once)
        report("reuse", "status (all stored)", t_status, "os.listdir(chunks/)", t_listing)
        check("reuse", "status time", t_status, "s", at_most=1.0)

        # 3. warm run
        def warm_once() -> float:
            (out, d), seconds = timed(lambda: memo.run(params, split))
            assert d.executed_points == 0
            assert len(out) == n
            return seconds

        def bare_once() -> float:
            out, seconds = bare_load(files)
            assert len(out) == n
            assert sum(out) == expected_sum
            return seconds

        t_warm = median_seconds(sz.repeats, warm_once)
        t_bare = median_seconds(sz.repeats, bare_once)
        report(
            "reuse",
            "warm run (all cached)",
            t_warm,
            "bare read+unpickle loop",
            t_bare,
            max_ratio=1.5,
        )
        _, d = memo.run(params, split)
        info(
            "reuse",
            f"warm run Diagnostics: wall {d.wall_time:.3f} s (planning excluded), "
            f"load {d.load_time:.3f} s",
        )

        # 4. rebinned request: every chunk missing, every point stored
        outputs, _ = bare_load(files)
        t_write = median_seconds(sz.repeats, lambda: bare_write_fresh(outputs, per_chunk))
        t_write_fsync = median_seconds(
            sz.repeats, lambda: bare_write_fresh(outputs, per_chunk, fsync=True)
        )
        outputs = []  # free the 1M outputs before the rebinned run
        rebinned = new_memo(root, sz.rebinned, sz)
        status, t_rebin_status = timed(lambda: rebinned.status(params, split))
        described = {"a": ["range", 0, sz.n_a, 1], "b": ["range", 0, sz.n_b, 1]}
        job = {"root": str(root), "split": described, "params": params, "fn": "combine"}
        child = traced_child(sz, spec=sz.rebinned, method="status", **job)
        exact = traced_child(sz, spec=sz.spec, method="status", **job)
        assert child["cached_points"] == exact["cached_points"] == n, (child, exact)
        us, per_b = per_point(child)
        exact_us, exact_b = per_point(exact)
        report(
            "reuse",
            f"rebinned status {sz.rebinned}",
            child["seconds"],
            "status, stored binning",
            exact["seconds"],
            note=f"per point {us:.3f} us and {per_b:.0f} B (traced; {rss_note(child)}) vs "
            f"{exact_us:.3f} us and {exact_b:.0f} B ({rss_note(exact)})",
        )
        check("reuse", "rebinned status time per point", us, "us", at_most=0.5)
        check("reuse", "rebinned status bytes per point (traced peak)", per_b, "B", at_most=60)
        (out, d), t_rebin = timed(lambda: rebinned.run(params, split))
        assert len(out) == n
        assert sum(out) == expected_sum
        report(
            "reuse",
            f"rebinned run {sz.rebinned}",
            t_rebin,
            "bare load + pickle/write",
            t_bare + t_write,
        )
        report(
            "reuse",
            "rebinned run vs fsync floor",
            t_rebin,
            "bare load + pickle/write+fsync",
            t_bare + t_write_fsync,
            note="swarm-memo fsyncs every chunk and index file",
        )
        info(
            "reuse",
            f"rebinned Diagnostics: reused_points {d.reused_points:,}, "
            f"executed_points {d.executed_points} (must be 0), cached_points "
            f"{d.cached_points:,}, chunk files written {d.stream_flushes}, load "
            f"{d.load_time:.2f} s, write {d.write_time:.2f} s",
        )
        info(
            "reuse",
            f"rebinned status before its run: {t_rebin_status:.3f} s, "
            f"{status.cached_points:,} of {status.total_points:,} points stored, "
            f"missing_chunks {status.missing_chunks} (of {status.total_chunks}, none has a file of "
            "its own)",
        )
        if d.executed_points != 0:
            print(f"ERROR reuse: the rebinned run executed {d.executed_points} points", flush=True)


def bare_write_fresh(outputs: list, per_file: int, fsync: bool = False) -> float:
    with fresh_dir() as folder:
        return bare_write(outputs, per_file, folder, fsync)


def bench_one_axis(sz: Sizes) -> None:
    n, size = sz.one_axis, sz.one_axis_bin
    header(
        "one_axis",
        f"one new point against {n:,} stored points (one axis, chunks of {size}), "
        "each call in a fresh subprocess, max_workers=1",
    )
    params = {"bench": "one_axis"}
    with fresh_dir() as tmp:
        root, empty = tmp / "cache", tmp / "empty"
        populate(root, {"a": size}, {"a": list(range(n))}, params, "first", 10_000)
        for method in ("status", "run"):  # status first: run stores the point
            job = {"spec": {"a": size}, "split": {"a": [n]}, "params": params, "fn": "first"}
            full = in_child(root=str(root), method=method, **job)
            bare = in_child(root=str(empty), method=method, **job)
            assert full["cached_points"] == 0, full
            report(
                "one_axis",
                f"{method} of 1 new point, {n:,} stored",
                full["seconds"],
                "same on an empty cache",
                bare["seconds"],
            )
            check("one_axis", f"{method} time", full["seconds"], "s", at_most=0.3)
            growth = full["growth"] / MB
            check("one_axis", f"{method} driver RSS growth", growth, "MB", at_most=50)
            info("one_axis", f"{method} on an empty cache: RSS growth {bare['growth'] / MB:.1f} MB")
        rebin = int(size * 0.7)
        job = {"root": str(root), "split": {"a": ["range", 0, n, 1]}, "params": params}
        child = traced_child(sz, spec={"a": rebin}, fn="first", method="status", **job)
        exact = traced_child(sz, spec={"a": size}, fn="first", method="status", **job)
        assert child["cached_points"] == exact["cached_points"] == n, (child, exact)
        us, per_b = per_point(child)
        exact_us, exact_b = per_point(exact)
        report(
            "one_axis",
            f"rebinned status {{'a': {rebin}}} of {n:,} pts",
            child["seconds"],
            "status, stored binning",
            exact["seconds"],
            note=f"per point {us:.3f} us and {per_b:.0f} B (traced; {rss_note(child)}) vs "
            f"{exact_us:.3f} us and {exact_b:.0f} B ({rss_note(exact)}): planning a "
            f"{n:,}-value axis",
        )
        check("one_axis", "rebinned status: extra time per point", us - exact_us, "us", at_most=0.5)
        check(
            "one_axis", "rebinned status: extra bytes per point", per_b - exact_b, "B", at_most=60
        )


STORED_4D = {"a": 2, "b": 2, "c": 4, "d": 4}
REBINNED_4D = {"a": 4, "b": 1, "c": 2, "d": 8}


def bench_scaling(sz: Sizes) -> None:
    header(
        "scaling",
        f"rebinned status on 4-D grids, {STORED_4D} stored, {REBINNED_4D} requested, each "
        "in a fresh subprocess",
    )
    rebinned = REBINNED_4D
    costs = []
    with fresh_dir() as tmp:
        for side in sz.sides:
            root = tmp / f"cache{side}"
            split = {axis: list(range(side)) for axis in "abcd"}
            populate(root, STORED_4D, split, {"side": side}, "first", 10_000)
            described = {axis: ["range", 0, side, 1] for axis in "abcd"}
            child = traced_child(
                sz, root=str(root), spec=rebinned, split=described, params={"side": side},
                fn="first", method="status",
            )  # fmt: skip
            assert child["cached_points"] == side**4, child
            us, per_b = per_point(child)
            costs.append(us)
            info(
                "scaling",
                f"{side**4:>9,} points: status {child['seconds']:.3f} s, {us:.3f} us and "
                f"{per_b:.1f} B per point (traced peak; {rss_note(child)})",
            )
    report(
        "scaling",
        f"status per point at {sz.sides[-1] ** 4:,} pts",
        costs[-1],
        f"at {sz.sides[-2] ** 4:,} pts",
        costs[-2],
        unit="us",
        max_ratio=1.3,
        note="flat is ~1",
    )


def bench_lru(sz: Sizes) -> None:
    count, size = sz.lru_outputs, sz.lru_size
    stored = count * size
    header(
        "lru",
        f"{count} outputs of {size // 1000} KB ({stored / MB:.0f} MB) in chunks of 64, "
        "rebinned run_streaming {'a': 41} in a fresh subprocess",
    )
    params = {"bench": "lru", "size": size}
    evens = list(range(0, 2 * count, 2))
    with fresh_dir() as tmp:
        root = tmp / "cache"
        populate(root, {"a": 64}, {"a": evens}, params, "blob", 64)
        # one new (odd) value after every 40 stored ones: every requested chunk executes one
        mixed = [v for i, e in enumerate(evens) for v in ((e, e + 1) if i % 40 == 39 else (e,))]
        job = {"root": str(root), "spec": {"a": 41}, "params": params, "fn": "blob"}
        new = in_child(split={"a": mixed}, method="run_streaming", exec_chunk=1, **job)
        assert new["reused_points"] == count, new
        report(
            "lru",
            "RSS growth, rebinned stream",
            new["growth"] / MB,
            "bytes stored",
            stored / MB,
            unit="MB",
            note="bounded by the reuse LRU (256 MB) + a few chunks",
        )
        check("lru", "rebinned stream RSS growth", new["growth"] / MB, "MB", at_most=320)
        root2 = tmp / "cache"  # the same cache, a request without new points
        reused = in_child(
            root=str(root2), spec={"a": 40}, params=params, fn="blob",
            split={"a": evens}, method="run_streaming", exec_chunk=1,
        )  # fmt: skip
        info(
            "lru",
            f"fully reused rebinned stream {{'a': 40}}: RSS growth {reused['growth'] / MB:.0f} MB "
            "(the reuse cache, bounded by LRU_BYTES, plus a few chunks in flight)",
        )


BENCHMARKS = {
    "reuse": bench_reuse,
    "one_axis": bench_one_axis,
    "scaling": bench_scaling,
    "lru": bench_lru,
}


def main(argv: list[str] | None = None) -> None:
    run_suite("reuse", __doc__.splitlines()[0], BENCHMARKS, (FULL, SMOKE), argv)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        call_child(json.loads(sys.argv[2]))
    else:
        main()
