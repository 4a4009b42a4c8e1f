"""Engine benchmarks: swarm-memo against the bare tools it is built from.

Run from the repository root::

    python benchmarks/bench_engine.py                 # full sizes (about 5 minutes)
    python benchmarks/bench_engine.py --smoke         # tiny sizes, checks it runs
    python benchmarks/bench_engine.py --only cold     # one benchmark (repeatable)

Benchmarks (each a function ``bench_<name>``; names for ``--only``):

cold        200,000 trivial points in 200 chunk files, 2 workers, exec chunks of 1000, in
            three shapes: one axis of 200,000 ints; two axes (400 x 500) with the seed's
            quick-start ``enumerate_points`` (a cartesian product built by hand); the same
            two axes with the default enumerator. ``run`` (cache written) vs a bare
            ProcessPoolExecutor.map(chunksize=1000) + pickle.dump into 200 files (the
            floor). Pool cold (a fresh memo each repetition, closed after it) and pool warm
            (one memo warmed by a small first run, new params each call). Also the share of
            driver time spent in cyclic GC, and joblib.Parallel over a joblib.Memory-cached
            function (one-axis shape only).
efficiency  200 points that sleep 20 ms (exec_chunk_size 1 and 5) and 2000 points that
            sleep 1 ms (exec_chunk_size 1), 2 workers: efficiency = ideal / measured, for
            swarm-memo and a bare ProcessPoolExecutor.
warm        the three cold shapes again, all cached, vs a bare read + unpickle of the same
            200 chunk files (body via ``swarm_memo.cache.codec.body_of``) and of 200 files that
            pickle.dump the same outputs; bytes on disk vs those files.
arrays      200 outputs of 1 MB float64 numpy arrays in 20 chunk files, warm (all cached):
            load throughput vs a bare pickle.load of the same arrays from 20 files.
streaming   driver peak RSS growth, run_streaming vs run, 200,000 points of ~1 KB outputs
            (and run_streaming on 400,000), each in a fresh subprocess.
small       100 calls of run on 100 new points (10 chunk files each) vs 100 maps of a reused
            bare ProcessPoolExecutor, alone and followed by 10 fsynced pickle.dumps.
dask        the cold benchmark on a 2-worker distributed.LocalCluster, SwarmMemo(...,
            executor=client) vs bare client.map over batches of 1000 points + gather.

Every comparison prints a ``RATIO`` line (swarm-memo figure, baseline figure, ratio =
swarm-memo / baseline, the target) and a summary table at the end. Times are medians of a
few repetitions. Exec functions are top-level functions of this module; every swarm-memo
cache lives in a fresh temp dir; verbose=0. Each memo is closed (its pool shut down) when
its measurement is over.
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    MB,
    GCTime,
    PeakRSS,
    check,
    chunk_body_reader,
    chunk_files,
    close_memo,
    ensure_cold_pools,
    fresh_dir,
    header,
    index_files,
    info,
    median_seconds,
    read_batches,
    report,
    run_suite,
    skip,
    timed,
    total_size,
    write_batches,
)

# ---------------------------------------------------------------------------- exec functions
# Top-level, so every executor (loky, ProcessPoolExecutor, joblib, dask) can ship them.


def double(params, point):
    return point[0] * 2


def bare_double(point):
    return point[0] * 2


def bare_double_batch(points):
    return [point[0] * 2 for point in points]


def add(params, point):
    return point[0] + point[1]


def bare_add(point):
    return point[0] + point[1]


def seed_enumerate(params, chunk):
    """The seed quick start's ``enumerate_points``: the product, built by hand."""
    return [(a, b) for a in chunk["a"] for b in chunk["b"]]


def sleepy(params, point):
    time.sleep(params.get("sleep", 0.02))
    return point[0]


def bare_sleepy(point, sleep=0.02):
    time.sleep(sleep)
    return point[0]


def bare_sleepy_1ms(point):
    return bare_sleepy(point, 0.001)


def kilobyte(params, point):
    # A distinct 1000-char str per point ("x" * 1000 alone is a folded constant: every
    # output would be the same object, and pickle would ship it once per exec chunk).
    return str(point[0]).rjust(1000, "x")


def array_mb(params, point):
    import numpy as np

    return np.full(params["floats"], float(point[0]))


# ---------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Sizes:
    cold_points: int  # one axis of this many ints; also a_values * b_values
    cold_chunk: int  # memo chunk = exec chunk = floor chunksize = file size in points
    grid2: tuple[int, int, int, int]  # a values, b values, a bin, b bin (bins: cold_chunk)
    joblib_budget: float  # seconds: above this, joblib runs on a 10x smaller grid
    sleep_points: int  # 20 ms each
    ms_points: int  # 1 ms each, exec_chunk_size=1
    arrays: tuple[int, int, int]  # outputs, files, float64 per output
    stream_points: int
    stream_big_points: int
    stream_chunk: int
    small_calls: int
    small_points: int
    small_chunk: int
    dask_points: int
    repeats: int


FULL = Sizes(
    cold_points=200_000,
    cold_chunk=1000,
    grid2=(400, 500, 20, 50),
    joblib_budget=60.0,
    sleep_points=200,
    ms_points=2000,
    arrays=(200, 20, 131_072),
    stream_points=200_000,
    stream_big_points=400_000,
    stream_chunk=1000,
    small_calls=100,
    small_points=100,
    small_chunk=10,
    dask_points=200_000,
    repeats=3,
)
SMOKE = Sizes(  # checks every path runs: the cost is pools and interpreters, not points
    cold_points=1_000,
    cold_chunk=100,
    grid2=(20, 50, 4, 25),
    joblib_budget=0.2,
    sleep_points=10,
    ms_points=40,
    arrays=(8, 2, 8192),
    stream_points=1_000,
    stream_big_points=2_000,
    stream_chunk=100,
    small_calls=5,
    small_points=100,
    small_chunk=10,
    dask_points=1_000,
    repeats=1,
)


def new_memo(root, chunk, exec_chunk, fn, executor="process", **options):
    """A memo on one axis ``x`` (``chunk`` may also be a full ``memo_chunk_spec``)."""
    from swarm_memo import SwarmMemo

    spec = chunk if isinstance(chunk, dict) else {"x": chunk}
    return SwarmMemo(
        root, spec, exec_chunk, exec_fn=fn, max_workers=2, verbose=0, executor=executor, **options
    )


# ---------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class Shape:
    """One way to lay out the cold grid: how swarm-memo sees it and what the floor maps."""

    name: str
    chunk_spec: dict[str, int]
    split: dict[str, list[int]]
    warmup_split: dict[str, list[int]]  # two memo chunks: starts (and imports in) the pool
    enumerate_points: Callable[..., Any] | None
    exec_fn: Callable[..., Any]
    bare_fn: Callable[..., Any]

    def new_memo(self, root: Path, exec_chunk: int, **options: Any) -> Any:
        return new_memo(
            root,
            self.chunk_spec,
            exec_chunk,
            self.exec_fn,
            enumerate_points=self.enumerate_points,
            **options,
        )

    def points(self) -> list[tuple[int, ...]]:
        """The grid's points, as the floor builds them (inside its timing)."""
        if len(self.split) == 1:
            return [(x,) for x in self.split["x"]]
        return [(a, b) for a in self.split["a"] for b in self.split["b"]]

    @property
    def total(self) -> int:
        size = 1
        for values in self.split.values():
            size *= len(values)
        return size


def shapes(sz: Sizes) -> list[Shape]:
    n, chunk = sz.cold_points, sz.cold_chunk
    na, nb, ca, cb = sz.grid2
    assert na * nb == n, sz
    assert ca * cb == chunk, sz
    xs = list(range(n))
    two = {"a": list(range(na)), "b": list(range(nb))}
    two_warm = {"a": two["a"][: 2 * ca], "b": two["b"][:cb]}
    spec2 = {"a": ca, "b": cb}
    return [
        Shape("1 axis", {"x": chunk}, {"x": xs}, {"x": xs[: 2 * chunk]}, None, double, bare_double),
        Shape("seed enumerator", spec2, two, two_warm, seed_enumerate, add, bare_add),
        Shape("2 axes default", spec2, two, two_warm, None, add, bare_add),
    ]


def warm_up(memo: Any, shape: Shape) -> None:
    """A first small run on other params: the memo's pool is started and imported."""
    memo.run({"warmup": time.time_ns()}, shape.warmup_split)


# ---------------------------------------------------------------------------- 1. cold


def bench_cold(sz: Sizes) -> None:
    n, chunk = sz.cold_points, sz.cold_chunk
    header(
        "cold",
        f"{n:,} trivial points, 2 workers, exec_chunk_size={chunk}, memo chunks of {chunk} "
        f"({n // chunk} files); shapes: 1 axis, 2 axes with the seed's enumerate_points, "
        "2 axes default",
    )
    t_cold = [cold_shape(sz, shape) for shape in shapes(sz)]
    xs = list(range(n))
    t_joblib, how = joblib_per_point(sz, xs)
    report(
        "cold",
        "1 axis pool cold vs joblib",
        t_cold[0],
        "joblib Parallel+Memory per point",
        t_joblib,
        note=how,
    )
    report(
        "cold",
        "1 axis pool cold vs joblib batches",
        t_cold[0],
        f"joblib Parallel+Memory per {chunk}-point batch",
        joblib_per_batch(xs, chunk),
    )


def _timed_run(memo: Any, params: dict[str, Any], shape: Shape, gc_time: GCTime) -> float:
    gc.collect()
    with gc_time:
        (out, diag), seconds = timed(lambda: memo.run(params, shape.split))
    assert len(out) == shape.total
    assert diag.executed_points == shape.total
    return seconds


def cold_memo_times(sz: Sizes, shape: Shape) -> tuple[float, float, GCTime]:
    """Median seconds of ``run`` on a fresh memo (pool cold, construction included)."""
    gc_time = GCTime()
    wall = 0.0

    def once() -> float:
        nonlocal wall
        ensure_cold_pools()
        with fresh_dir() as root:
            gc.collect()
            started = time.perf_counter()
            with gc_time:
                memo = shape.new_memo(root, sz.cold_chunk)
                out, diag = memo.run({"bench": "cold"}, shape.split)
            seconds = time.perf_counter() - started
            close_memo(memo)
            assert len(out) == shape.total
            assert diag.executed_points == shape.total
        wall += seconds
        return seconds

    return median_seconds(sz.repeats, once), wall, gc_time


def warm_memo_times(
    sz: Sizes, shape: Shape, root: Path, **options: Any
) -> tuple[float, float, GCTime, Any]:
    """Median seconds of ``run`` (new params each call) on one memo whose pool is warm."""
    memo = shape.new_memo(root, sz.cold_chunk, **options)
    warm_up(memo, shape)
    gc_time = GCTime()
    calls = iter(range(1_000_000))
    walls: list[float] = []

    def once() -> float:
        walls.append(_timed_run(memo, {"bench": "cold", "call": next(calls)}, shape, gc_time))
        return walls[-1]

    seconds = median_seconds(sz.repeats, once)
    _, diag = memo.run({"bench": "cold", "profile": 1}, shape.split)
    close_memo(memo)
    return seconds, sum(walls), gc_time, diag


def floor_seconds(shape: Shape, chunk: int, executor: Any, fsync: bool = False) -> float:
    """The floor: ``ProcessPoolExecutor.map`` + ``pickle.dump`` of one file per chunk."""
    with fresh_dir() as out_dir:
        gc.collect()
        started = time.perf_counter()
        ex = executor or ProcessPoolExecutor(2)
        outputs = list(ex.map(shape.bare_fn, shape.points(), chunksize=chunk))
        write_batches(out_dir, outputs, chunk, fsync=fsync)
        seconds = time.perf_counter() - started
        if executor is None:
            ex.shutdown(wait=True)
        assert len(outputs) == shape.total
    return seconds


def cold_shape(sz: Sizes, shape: Shape) -> float:
    """Report one shape; return its pool-cold time."""
    chunk, name = sz.cold_chunk, shape.name
    t_cold, wall_cold, gc_cold = cold_memo_times(sz, shape)
    with fresh_dir() as root:
        t_warm, wall_warm, gc_warm, diag = warm_memo_times(sz, shape, root)
    info(
        "cold",
        f"{name}: Diagnostics (pool warm): wall {diag.wall_time:.3f} s, exec wait "
        f"{diag.exec_time:.3f} s, write {diag.write_time:.3f} s, {diag.exec_chunks} exec "
        f"chunks, max_in_flight {diag.max_in_flight}",
    )
    for label, gc_time, wall in (
        ("pool cold", gc_cold, wall_cold),
        ("pool warm", gc_warm, wall_warm),
    ):
        check(
            "cold",
            f"{name} {label}: GC share of driver time",
            100 * gc_time.seconds / wall,
            "%",
            note=f"{gc_time.seconds:.3f} s of {wall:.3f} s over {sz.repeats} runs; "
            f"collections by generation {gc_time.collections}",
        )
    t_floor_cold = median_seconds(sz.repeats, lambda: floor_seconds(shape, chunk, None))
    with ProcessPoolExecutor(2) as ex:
        list(ex.map(bare_double, [(i,) for i in range(100)], chunksize=10))  # start workers
        t_floor_warm = median_seconds(sz.repeats, lambda: floor_seconds(shape, chunk, ex))
        t_floor_fsync = median_seconds(
            sz.repeats, lambda: floor_seconds(shape, chunk, ex, fsync=True)
        )
    floor = "PPE.map+pickle.dump"
    report("cold", f"{name} pool cold", t_cold, f"{floor} (new pool)", t_floor_cold, max_ratio=1.3)
    report("cold", f"{name} pool warm", t_warm, f"{floor} (warm pool)", t_floor_warm, max_ratio=1.3)
    report(
        "cold",
        f"{name} pool warm vs fsync floor",
        t_warm,
        "PPE.map+dump+fsync (warm pool)",
        t_floor_fsync,
        note="swarm-memo fsyncs every chunk file",
    )
    try:
        with fresh_dir() as root:
            t_scratch = warm_memo_times(sz, shape, root, durable=False)[0]
    except TypeError as exc:  # a swarm-memo from before durable=
        skip("cold", f"{name} durable=False: {exc}")
        return t_cold
    report(
        "cold",
        f"{name} pool warm, durable=False",
        t_scratch,
        f"{floor} (warm pool)",
        t_floor_warm,
        max_ratio=1.3,
        note="no fsync, like the floor",
    )
    return t_cold


def _joblib_run(points: list, location: Path) -> float:
    import joblib

    memory = joblib.Memory(location, verbose=0)
    cached = memory.cache(bare_double)
    started = time.perf_counter()
    out = joblib.Parallel(n_jobs=2)(joblib.delayed(cached)(p) for p in points)
    seconds = time.perf_counter() - started
    assert out[-1] == points[-1][0] * 2
    return seconds


def joblib_per_point(sz: Sizes, xs: list) -> tuple[float, str]:
    """joblib.Parallel(n_jobs=2) over a Memory-cached per-point function.

    It writes one cache entry per point, which is slow: a probe on 1% of the grid (after
    starting joblib's worker pool, so the probe measures the per-point cost) decides
    whether the full grid fits in ``sz.joblib_budget``; if not, it runs on a 10x smaller
    grid and the time is extrapolated linearly (said in the output).
    """
    import joblib

    points = [(x,) for x in xs]
    n = len(points)
    joblib.Parallel(n_jobs=2)(joblib.delayed(bare_double)(p) for p in points[:10])
    with fresh_dir() as root:
        probe_n = max(100, n // 100)
        probe = _joblib_run(points[:probe_n], root / "probe")
        projected = probe * n / probe_n
        if projected <= sz.joblib_budget:
            return _joblib_run(points, root / "full"), f"full grid of {n:,} points"
        small_n = n // 10
        measured = _joblib_run(points[:small_n], root / "tenth")
    how = (
        f"EXTRAPOLATED: ran {small_n:,} points in {measured:.2f} s, x10 "
        f"(a 1% probe projected {projected:.0f} s for the full grid)"
    )
    info("cold", f"joblib per point: {how}")
    return measured * n / small_n, how


def joblib_per_batch(xs: list, chunk: int) -> float:
    import joblib

    points = [(x,) for x in xs]
    with fresh_dir() as root:
        memory = joblib.Memory(root, verbose=0)
        cached = memory.cache(bare_double_batch)
        started = time.perf_counter()
        batches = [points[i : i + chunk] for i in range(0, len(points), chunk)]
        out = joblib.Parallel(n_jobs=2)(joblib.delayed(cached)(b) for b in batches)
        seconds = time.perf_counter() - started
        assert out[-1][-1] == points[-1][0] * 2
    return seconds


# ---------------------------------------------------------------------------- 2. efficiency


def bench_efficiency(sz: Sizes) -> None:
    header(
        "efficiency",
        f"2 workers, pools warm: {sz.sleep_points} points x 20 ms (exec_chunk_size 1 and 5), "
        f"{sz.ms_points} points x 1 ms (exec_chunk_size 1); efficiency = ideal / measured",
    )
    cases = [
        (sz.sleep_points, 0.02, 1, 0.95, bare_sleepy),
        (sz.sleep_points, 0.02, 5, 0.95, bare_sleepy),
        (sz.ms_points, 0.001, 1, 0.87, bare_sleepy_1ms),
    ]
    with ProcessPoolExecutor(2) as ex:
        list(ex.map(bare_sleepy, [(0,), (1,)], chunksize=1))
        for n, sleep, exec_chunk, target, bare_fn in cases:
            efficiency_case(sz, ex, n, sleep, exec_chunk, target, bare_fn)


def efficiency_case(sz, ex, n, sleep, exec_chunk, target, bare_fn) -> None:
    xs = list(range(n))
    ideal = n * sleep / 2
    label = f"{sleep * 1000:g} ms exec_chunk_size={exec_chunk}"
    with fresh_dir() as root:
        memo = new_memo(root, 10, exec_chunk, sleepy)
        memo.run({"sleep": sleep, "warmup": 1}, {"x": xs[:20]})
        calls = iter(range(1_000_000))

        def memo_once() -> float:
            params = {"sleep": sleep, "call": next(calls)}
            (out, _), seconds = timed(lambda: memo.run(params, {"x": xs}))
            assert out == xs
            return seconds

        t_memo = median_seconds(sz.repeats, memo_once)
        close_memo(memo)

    def bare_once() -> float:
        points = [(x,) for x in xs]
        out, seconds = timed(lambda: list(ex.map(bare_fn, points, chunksize=exec_chunk)))
        assert out == xs
        return seconds

    t_bare = median_seconds(sz.repeats, bare_once)
    report("efficiency", f"{label} time", t_memo, f"PPE.map chunksize={exec_chunk}", t_bare)
    check(
        "efficiency",
        f"{label} swarm-memo efficiency",
        ideal / t_memo,
        "",
        at_least=target,
        note=f"ideal {ideal:.2f} s; relative to the bare pool {t_bare / t_memo:.3f}",
    )
    check("efficiency", f"{label} bare PPE efficiency", ideal / t_bare, "")


# ---------------------------------------------------------------------------- 3. warm


def bench_warm(sz: Sizes) -> None:
    n, chunk = sz.cold_points, sz.cold_chunk
    header(
        "warm",
        f"the cold shapes again ({n:,} points, {n // chunk} chunk files), all cached; a "
        "fresh memo object each call",
    )
    for shape in shapes(sz):
        warm_shape(sz, shape)


def read_chunk_bodies(files: list[Path]) -> list[Any]:
    """The bare way to read swarm-memo's own files: read + unpickle each chunk's body."""
    body = chunk_body_reader()
    outputs: list[Any] = []
    for path in files:
        with open(path, "rb") as fh:
            data = fh.read()
        outputs.extend(pickle.loads(body(data))["outputs"])
    return outputs


def read_as_requested(shape: Shape, files: list[Path]) -> list[Any]:
    """The bare read plus what any tool must also do to answer this request as asked.

    On top of reading and unpickling each chunk file: check the request's axes (value
    types and uniqueness, a set per axis) and put the outputs in the order ``run``
    returns them: grid order, or with ``enumerate_points`` chunk by chunk (in grid order
    of the chunks), calling it once per chunk (a changed enumerator must be noticed).
    Every axis here is ``range(n)``, so a value is its own grid index.
    """
    body = chunk_body_reader()
    for values in shape.split.values():
        assert set(map(type, values)) == {int}
        assert len(set(values)) == len(values)
    names = list(shape.split)
    row_length = len(shape.split[names[-1]])
    grid: list[Any] = [None] * shape.total
    by_chunk: list[tuple[tuple[int, ...], list[Any]]] = []
    for path in files:
        with open(path, "rb") as fh:
            stored = pickle.loads(body(fh.read()))
        bins = {axis: list(values) for axis, values in stored["chunk_key"]}
        outputs = stored["outputs"]
        if shape.enumerate_points is not None:
            shape.enumerate_points({"bench": "warm"}, {axis: bins[axis] for axis in names})
            by_chunk.append((tuple(bins[axis][0] for axis in names), outputs))
            continue
        rows, cols = (bins[names[0]], bins[names[1]]) if len(names) == 2 else ([0], bins["x"])
        for k, row in enumerate(rows):
            start = row * row_length + cols[0]
            grid[start : start + len(cols)] = outputs[k * len(cols) : (k + 1) * len(cols)]
    if by_chunk:
        by_chunk.sort(key=lambda item: item[0])
        return [output for _, outputs in by_chunk for output in outputs]
    return grid


def warm_shape(sz: Sizes, shape: Shape) -> None:
    n, chunk, name = shape.total, sz.cold_chunk, shape.name
    with fresh_dir() as root:
        memo = shape.new_memo(root / "cache", chunk)
        params = {"bench": "warm"}
        first, _ = memo.run(params, shape.split)
        close_memo(memo)
        files = chunk_files(root / "cache")
        assert len(files) == n // chunk, len(files)
        write_batches(root / "bare", first, chunk)

        def memo_once() -> float:
            fresh = shape.new_memo(root / "cache", chunk)
            gc.collect()
            (out, diag), seconds = timed(lambda: fresh.run(params, shape.split))
            close_memo(fresh)
            assert diag.executed_points == 0
            assert len(out) == n
            return seconds

        def bare_once(read: Callable[[], list[Any]]) -> float:
            gc.collect()
            outputs, seconds = timed(read)
            assert len(outputs) == n
            return seconds

        repeats = max(3, sz.repeats)
        t_memo = median_seconds(repeats, memo_once)
        t_chunks = median_seconds(repeats, lambda: bare_once(lambda: read_chunk_bodies(files)))
        t_files = median_seconds(repeats, lambda: bare_once(lambda: read_batches(root / "bare")))
        assert read_as_requested(shape, files) == first
        t_asked = median_seconds(
            repeats, lambda: bare_once(lambda: read_as_requested(shape, files))
        )
        report(
            "warm",
            f"{name} vs its chunk files",
            t_memo,
            "bare read+unpickle of the chunk files",
            t_chunks,
            max_ratio=1.5,
        )
        report(
            "warm",
            f"{name} vs the chunk files read as requested",
            t_memo,
            "bare read+unpickle, axes checked, enumerate_points called, grid order",
            t_asked,
            note="no target: the floor any tool has for this request",
        )
        report(
            "warm",
            f"{name} vs dump files",
            t_memo,
            f"bare read+unpickle of {n // chunk} pickle.dump files",
            t_files,
            max_ratio=1.5,
        )
        fresh = shape.new_memo(root / "cache", chunk)
        _, diag = fresh.run(params, shape.split)
        t_plan = median_seconds(3, lambda: timed(lambda: fresh.status(params, shape.split))[1])
        close_memo(fresh)
        info(
            "warm",
            f"{name}: Diagnostics wall {diag.wall_time:.3f} s, load {diag.load_time:.3f} s; "
            f"memo.status (planning + listing only) {t_plan:.3f} s",
        )
        chunk_bytes = total_size(files)
        bare_bytes = total_size(sorted((root / "bare").iterdir()))
        report(
            "warm",
            f"{name} bytes on disk",
            chunk_bytes / n,
            "pickle.dump files",
            bare_bytes / n,
            unit="B",
            max_ratio=1.5,
            note="per point",
        )
        idx = index_files(root / "cache")
        idx_bytes = total_size(idx)
        info(
            "warm",
            f"{name}: chunk files {chunk_bytes:,} B, dump files {bare_bytes:,} B, "
            f"index/ {idx_bytes:,} B in {len(idx)} files ({idx_bytes / n:.2f} B/point)",
        )


# ---------------------------------------------------------------------------- 4. arrays


def bench_arrays(sz: Sizes) -> None:
    outputs, files, floats = sz.arrays
    per_file = outputs // files
    size_mb = outputs * floats * 8 / MB
    header(
        "arrays",
        f"{outputs} outputs of {floats * 8 / MB:.2f} MB float64 arrays in {files} chunk files "
        f"({size_mb:.0f} MB), warm (all cached): load throughput",
    )
    try:
        import numpy  # noqa: F401
    except ImportError as exc:
        skip("arrays", f"numpy not importable: {exc!r}")
        return
    xs = list(range(outputs))
    params = {"floats": floats}
    with fresh_dir() as root:
        memo = new_memo(root / "cache", per_file, per_file, array_mb)
        first, _ = memo.run(params, {"x": xs})
        close_memo(memo)
        write_batches(root / "bare", first, per_file)
        del first

        def memo_once() -> float:
            fresh = new_memo(root / "cache", per_file, per_file, array_mb)
            gc.collect()
            (out, diag), seconds = timed(lambda: fresh.run(params, {"x": xs}))
            close_memo(fresh)
            assert diag.executed_points == 0
            assert float(out[-1][0]) == outputs - 1
            return seconds

        def bare_once() -> float:
            gc.collect()
            started = time.perf_counter()
            out: list[Any] = []
            for path in sorted((root / "bare").iterdir()):
                with open(path, "rb") as fh:
                    out.extend(pickle.load(fh))
            seconds = time.perf_counter() - started
            assert float(out[-1][0]) == outputs - 1
            return seconds

        repeats = max(3, sz.repeats)
        t_memo = median_seconds(repeats, memo_once)
        t_bare = median_seconds(repeats, bare_once)
    report(
        "arrays",
        "warm load throughput",
        size_mb / t_memo,
        f"bare pickle.load of {files} files",
        size_mb / t_bare,
        unit="MB/s",
        min_ratio=0.5,
        note=f"swarm-memo {t_memo:.3f} s, bare {t_bare:.3f} s",
    )


# ---------------------------------------------------------------------------- 5. streaming


def rss_child(mode: str, n: int, chunk: int) -> None:
    """In a fresh process: peak RSS growth of the driver during one run / run_streaming."""
    xs = list(range(n))
    with fresh_dir() as root:
        memo = new_memo(root, chunk, chunk, kilobyte)
        split = {"x": xs}
        started = time.perf_counter()
        with PeakRSS() as rss:
            if mode == "run":
                out, diag = memo.run({"bench": "rss"}, split)
                assert len(out) == n
            elif mode == "stream":
                diag = memo.run_streaming({"bench": "rss"}, split)
            else:  # "status": planning only (hashing the axis values), no execution
                status = memo.status({"bench": "rss"}, split)
                assert status.total_points == n
        seconds = time.perf_counter() - started
        close_memo(memo)
        if mode != "status":
            assert diag.executed_points == n
        print(
            "RSSCHILD "
            + json.dumps(
                {
                    "mode": mode,
                    "n": n,
                    "seconds": seconds,
                    "sampled_growth": rss.growth,
                    "maxrss_growth": rss.maxrss_growth,
                    "baseline": rss.baseline,
                    # the sampler can miss a short peak; getrusage cannot (when it moved at all)
                    "growth": max(rss.growth, rss.maxrss_growth or 0),
                    "max_stream_buffer": diag.max_stream_buffer if mode != "status" else 0,
                }
            ),
            flush=True,
        )


def _run_rss_child(mode: str, n: int, chunk: int) -> dict:
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--rss-child", mode, str(n), str(chunk)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RSSCHILD "):
            return json.loads(line[len("RSSCHILD ") :])
    raise RuntimeError(
        f"rss child {mode} {n} failed (rc {proc.returncode}):\n"
        f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )


def bench_streaming(sz: Sizes) -> None:
    n, big, chunk = sz.stream_points, sz.stream_big_points, sz.stream_chunk
    header(
        "streaming",
        f"driver peak RSS growth, ~1 KB outputs, 2 workers, chunks of {chunk}, "
        "each call in a fresh subprocess",
    )
    stream = _run_rss_child("stream", n, chunk)
    run = _run_rss_child("run", n, chunk)
    stream_big = _run_rss_child("stream", big, chunk)
    status_big = _run_rss_child("status", big, chunk)
    for r in (stream, run, stream_big, status_big):
        maxrss = r["maxrss_growth"]
        maxrss_text = "below the pre-call peak" if maxrss is None else f"{maxrss / MB:.1f} MB"
        info(
            "streaming",
            f"{r['mode']:6s} {r['n']:>9,} points: {r['seconds']:.2f} s, peak RSS "
            f"growth {r['growth'] / MB:.1f} MB (psutil sampling every 2 ms: "
            f"{r['sampled_growth'] / MB:.1f} MB, ru_maxrss: {maxrss_text}); "
            f"max_stream_buffer {r['max_stream_buffer']} outputs",
        )
    report(
        "streaming",
        f"RSS growth {n:,} pts",
        stream["growth"] / MB,
        "run (holds all)",
        run["growth"] / MB,
        unit="MB",
    )
    check("streaming", f"run_streaming {n:,} pts growth", stream["growth"] / MB, "MB", at_most=40)
    check(
        "streaming",
        f"run {n:,} pts growth",
        run["growth"] / MB,
        "MB",
        note="expected ~200 MB at full size: it holds every output",
    )
    report(
        "streaming",
        f"RSS growth {big:,} vs {n:,} pts",
        stream_big["growth"] / MB,
        f"run_streaming {n:,} pts",
        stream["growth"] / MB,
        unit="MB",
        note="flat would be ~1",
    )
    check(
        "streaming",
        f"run_streaming {big:,} pts growth",
        stream_big["growth"] / MB,
        "MB",
        at_most=40,
    )
    check(
        "streaming",
        f"memo.status {big:,} pts growth (planning alone)",
        status_big["growth"] / MB,
        "MB",
        note="the part of run_streaming's growth that is planning",
    )
    report("streaming", f"time {n:,} pts", stream["seconds"], "run", run["seconds"])


# ---------------------------------------------------------------------------- 6. small runs


def bench_small(sz: Sizes) -> None:
    calls, n, chunk = sz.small_calls, sz.small_points, sz.small_chunk
    files = n // chunk
    header(
        "small",
        f"{calls} calls of run on {n} new points (memo chunks {chunk}, exec chunks "
        f"{chunk}: {files} files per call), new params each; pools warm",
    )
    xs = list(range(n))
    expected = [2 * x for x in xs]
    with fresh_dir() as root, ProcessPoolExecutor(2) as ex:
        memo = new_memo(root / "cache", chunk, chunk, double)
        memo.run({"warmup": 1}, {"x": xs})
        list(ex.map(bare_double, [(x,) for x in xs], chunksize=chunk))
        series = iter(range(1_000_000))

        def memo_series() -> float:
            s = next(series)
            gc.collect()
            started = time.perf_counter()
            for i in range(calls):
                out, _ = memo.run({"series": s, "call": i}, {"x": xs})
            seconds = time.perf_counter() - started
            assert out == expected
            return seconds

        def bare_series(write: bool = False) -> float:
            with fresh_dir() as out_dir:
                gc.collect()
                started = time.perf_counter()
                for i in range(calls):
                    out = list(ex.map(bare_double, [(x,) for x in xs], chunksize=chunk))
                    if write:
                        write_batches(out_dir / str(i), out, chunk, fsync=True)
                seconds = time.perf_counter() - started
            assert out == expected
            return seconds

        t_memo = median_seconds(sz.repeats, memo_series) / calls * 1000
        close_memo(memo)
        t_bare = median_seconds(sz.repeats, bare_series) / calls * 1000
        t_bare_write = median_seconds(sz.repeats, lambda: bare_series(True)) / calls * 1000
    report("small", "per call", t_memo, "reused PPE.map", t_bare, unit="ms")
    report(
        "small",
        "per call vs map+fsynced dumps",
        t_memo,
        f"reused PPE.map + {files} fsynced pickle.dumps",
        t_bare_write,
        unit="ms",
        max_ratio=1.5,
    )
    check("small", "per-call overhead (swarm-memo - bare map)", t_memo - t_bare, "ms")


# ---------------------------------------------------------------------------- 7. dask


def bench_dask(sz: Sizes) -> None:
    n, chunk = sz.dask_points, sz.cold_chunk
    header("dask", f"{n:,} trivial points on a 2-worker LocalCluster, batches of {chunk}")
    try:
        from distributed import Client, LocalCluster
    except Exception as exc:
        skip("dask", f"distributed not importable: {exc!r}")
        return
    try:
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
        )
        client = Client(cluster)
    except Exception as exc:
        skip("dask", f"LocalCluster failed to start: {exc!r}")
        return
    try:
        dask_on(sz, client, n, chunk)
    finally:
        client.close()
        cluster.close()


def dask_on(sz: Sizes, client: Any, n: int, chunk: int) -> None:
    xs = list(range(n))
    expected_last = 2 * (n - 1)
    client.gather(client.map(bare_double_batch, [[(1,)], [(2,)]], pure=False))

    def bare_once() -> float:
        started = time.perf_counter()
        points = [(x,) for x in xs]
        batches = [points[i : i + chunk] for i in range(0, n, chunk)]
        futures = client.map(bare_double_batch, batches, pure=False)
        out = [y for batch in client.gather(futures) for y in batch]
        seconds = time.perf_counter() - started
        assert out[-1] == expected_last
        assert len(out) == n
        return seconds

    with fresh_dir() as root:
        try:
            memo = new_memo(root, chunk, chunk, double, executor=client)
            memo.run({"warmup": 1}, {"x": list(range(4 * chunk))})
        except Exception as exc:
            skip("dask", f"SwarmMemo(executor=client) failed: {type(exc).__name__}: {exc}")
            return
        calls = iter(range(1_000_000))

        def memo_once() -> float:
            params = {"bench": "dask", "call": next(calls)}
            (out, diag), seconds = timed(lambda: memo.run(params, {"x": xs}))
            assert len(out) == n
            assert out[-1] == expected_last
            assert diag.executed_points == n
            return seconds

        t_memo = median_seconds(sz.repeats, memo_once)
        memo.close()
    t_bare = median_seconds(sz.repeats, bare_once)
    report("dask", "cluster warm", t_memo, "client.map batches+gather", t_bare, max_ratio=1.2)


# ---------------------------------------------------------------------------- main


BENCHMARKS = {
    "cold": bench_cold,
    "efficiency": bench_efficiency,
    "warm": bench_warm,
    "arrays": bench_arrays,
    "streaming": bench_streaming,
    "small": bench_small,
    "dask": bench_dask,
}


def main(argv: list[str] | None = None) -> None:
    run_suite("engine", __doc__.splitlines()[0], BENCHMARKS, (FULL, SMOKE), argv)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--rss-child":
        rss_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
