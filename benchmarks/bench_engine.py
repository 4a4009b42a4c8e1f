"""Engine benchmarks: swarm-memo against the bare tools it is built from.

Run from the repository root::

    python benchmarks/bench_engine.py                 # full sizes (about 3-5 minutes)
    python benchmarks/bench_engine.py --smoke         # tiny sizes, checks it runs
    python benchmarks/bench_engine.py --only cold     # one benchmark (repeatable)

Benchmarks (each a function ``bench_<name>``; names for ``--only``):

cold        200,000 trivial points, 2 workers, exec chunks of 1000, memo chunks of 1000:
            ``run`` (cache written) vs a bare ProcessPoolExecutor.map + pickle.dump into
            200 files (the floor), vs joblib.Parallel over a joblib.Memory-cached function.
            Cold pool and warm pool (second call, new params).
efficiency  200 points that sleep 20 ms, 2 workers, exec_chunk_size 1 and 5: ideal 2.0 s;
            efficiency = ideal / measured, swarm-memo and a bare ProcessPoolExecutor.
warm        the cold grid again, all cached, vs a bare loop reading + unpickling the same
            200 chunk files; bytes on disk per point vs pickle.dumps(outputs) per point.
streaming   driver peak RSS growth, run_streaming vs run, 200,000 points of ~1 KB outputs
            (and run_streaming on 400,000), each in a fresh subprocess.
small       100 calls of run on a 100-point grid (new params each) vs 100 maps of a reused
            bare ProcessPoolExecutor: per-call overhead in ms.
dask        the cold benchmark on a 2-worker distributed.LocalCluster, SwarmMemo(...,
            executor=client) vs bare client.map over batches of 1000 points + gather.

Every comparison prints a ``RATIO`` line (swarm-memo time, baseline time, ratio =
swarm-memo / baseline, the target) and a summary table at the end. Times are medians of a
few repetitions where a repetition is cheap. Exec functions are top-level functions of this
module; every swarm-memo cache lives in a fresh temp dir; verbose=0.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from swarm_memo._codec import body_of

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    MB,
    PeakRSS,
    check,
    chunk_files,
    fresh_dir,
    header,
    index_files,
    info,
    median_seconds,
    report,
    run_suite,
    skip,
    timed,
    total_size,
)

# ---------------------------------------------------------------------------- exec functions
# Top-level, so every executor (loky, ProcessPoolExecutor, joblib, dask) can ship them.


def double(params, point):
    return point[0] * 2


def bare_double(point):
    return point[0] * 2


def bare_double_batch(points):
    return [point[0] * 2 for point in points]


def sleepy(params, point):
    time.sleep(0.02)
    return point[0]


def bare_sleepy(point):
    time.sleep(0.02)
    return point[0]


def kilobyte(params, point):
    # A distinct 1000-char str per point ("x" * 1000 alone is a folded constant: every
    # output would be the same object, and pickle would ship it once per exec chunk).
    return str(point[0]).rjust(1000, "x")


# ---------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Sizes:
    cold_points: int
    cold_chunk: int  # memo chunk = exec chunk = floor chunksize = file size in points
    joblib_budget: float  # seconds: above this, joblib runs on a 10x smaller grid
    sleep_points: int
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
    joblib_budget=60.0,
    sleep_points=200,
    stream_points=200_000,
    stream_big_points=400_000,
    stream_chunk=1000,
    small_calls=100,
    small_points=100,
    small_chunk=10,
    dask_points=200_000,
    repeats=3,
)
SMOKE = Sizes(
    cold_points=4_000,
    cold_chunk=100,
    joblib_budget=5.0,
    sleep_points=20,
    stream_points=3_000,
    stream_big_points=6_000,
    stream_chunk=100,
    small_calls=5,
    small_points=100,
    small_chunk=10,
    dask_points=2_000,
    repeats=1,
)


def new_memo(root, chunk, exec_chunk, fn, executor="process"):
    from swarm_memo import SwarmMemo

    return SwarmMemo(
        root, {"x": chunk}, exec_chunk, exec_fn=fn, max_workers=2, verbose=0, executor=executor
    )


def shutdown_loky_pool() -> None:
    """Stop swarm-memo's reusable loky pool, so the next run starts it cold."""
    try:
        from loky import reusable_executor

        executor = getattr(reusable_executor._executor_storage, "executor", None)
    except (ImportError, AttributeError):
        executor = None
    if executor is not None:
        executor.shutdown(wait=True)


def warm_loky_pool(root: Path) -> None:
    """Start swarm-memo's pool (2 workers) with a tiny run, so timings exclude its start."""
    memo = new_memo(root / "warmup", 10, 10, double)
    memo.run({"warmup": time.time_ns()}, {"x": list(range(40))})


def write_batches(folder: Path, outputs: list, chunk: int, fsync: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, start in enumerate(range(0, len(outputs), chunk)):
        with open(folder / f"{i}.pkl", "wb") as fh:
            pickle.dump(outputs[start : start + chunk], fh, protocol=5)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())


# ---------------------------------------------------------------------------- 1. cold


def bench_cold(sz: Sizes) -> None:
    n, chunk = sz.cold_points, sz.cold_chunk
    header(
        "cold",
        f"{n:,} points, 2 workers, exec_chunk_size={chunk}, memo chunks of {chunk} "
        f"({n // chunk} files)",
    )
    xs = list(range(n))
    expected_last = 2 * (n - 1)

    # swarm-memo, pool cold: loky pool shut down before each repetition.
    def memo_cold() -> float:
        shutdown_loky_pool()
        with fresh_dir() as root:
            memo = new_memo(root, chunk, chunk, double)
            (out, diag), seconds = timed(lambda: memo.run({"bench": "cold"}, {"x": xs}))
            assert len(out) == n
            assert out[-1] == expected_last
            assert diag.executed_points == n
        return seconds

    # swarm-memo, pool warm: same memo, second call on new params.
    with fresh_dir() as root:
        warm_loky_pool(root)
        memo = new_memo(root, chunk, chunk, double)
        calls = iter(range(1_000_000))

        def memo_warm() -> float:
            params = {"bench": "cold", "call": next(calls)}
            (out, diag), seconds = timed(lambda: memo.run(params, {"x": xs}))
            assert len(out) == n
            assert diag.executed_points == n
            return seconds

        t_memo_warm = median_seconds(sz.repeats, memo_warm)
        _, diag = memo.run({"bench": "cold", "profile": 1}, {"x": xs})
        info(
            "cold",
            f"swarm-memo Diagnostics (warm pool): wall {diag.wall_time:.3f} s, "
            f"exec wait {diag.exec_time:.3f} s, write {diag.write_time:.3f} s, "
            f"{diag.exec_chunks} exec chunks, max_in_flight {diag.max_in_flight}",
        )
    t_memo_cold = median_seconds(sz.repeats, memo_cold)

    # The floor: bare ProcessPoolExecutor.map + pickle.dump of n/chunk files.
    def floor(executor: ProcessPoolExecutor | None, fsync: bool = False) -> float:
        with fresh_dir() as out_dir:
            started = time.perf_counter()
            ex = executor or ProcessPoolExecutor(2)
            points = [(x,) for x in xs]
            outputs = list(ex.map(bare_double, points, chunksize=chunk))
            write_batches(out_dir, outputs, chunk, fsync=fsync)
            seconds = time.perf_counter() - started
            if executor is None:
                ex.shutdown(wait=True)
            assert outputs[-1] == expected_last
        return seconds

    t_floor_cold = median_seconds(sz.repeats, lambda: floor(None))
    with ProcessPoolExecutor(2) as ex:
        list(ex.map(bare_double, [(i,) for i in range(100)], chunksize=10))  # start workers
        t_floor_warm = median_seconds(sz.repeats, lambda: floor(ex))
        t_floor_fsync = median_seconds(sz.repeats, lambda: floor(ex, fsync=True))

    report(
        "cold",
        "pool cold",
        t_memo_cold,
        "PPE.map+pickle.dump (new pool)",
        t_floor_cold,
        max_ratio=1.3,
    )
    report(
        "cold",
        "pool warm",
        t_memo_warm,
        "PPE.map+pickle.dump (warm pool)",
        t_floor_warm,
        max_ratio=1.3,
    )
    report(
        "cold",
        "pool warm vs fsync floor",
        t_memo_warm,
        "PPE.map+dump+fsync (warm pool)",
        t_floor_fsync,
        note="swarm-memo fsyncs every chunk and index file",
    )

    t_joblib, how = joblib_per_point(sz, xs)
    report(
        "cold",
        "pool cold vs joblib",
        t_memo_cold,
        "joblib Parallel+Memory per point",
        t_joblib,
        note=how,
    )
    t_joblib_batch = joblib_per_batch(xs, chunk)
    report(
        "cold",
        "pool cold vs joblib batches",
        t_memo_cold,
        f"joblib Parallel+Memory per {chunk}-point batch",
        t_joblib_batch,
    )


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
    n = sz.sleep_points
    ideal = n * 0.02 / 2
    header(
        "efficiency", f"{n} points x time.sleep(0.02), 2 workers: ideal {ideal:.2f} s (pools warm)"
    )
    xs = list(range(n))
    with fresh_dir() as root, ProcessPoolExecutor(2) as ex:
        warm_loky_pool(root)
        list(ex.map(bare_sleepy, [(0,), (1,)], chunksize=1))
        for exec_chunk in (1, 5):
            memo = new_memo(root / f"e{exec_chunk}", 10, exec_chunk, sleepy)
            calls = iter(range(1_000_000))

            def memo_once(memo=memo, calls=calls) -> float:
                (out, _), seconds = timed(lambda: memo.run({"call": next(calls)}, {"x": xs}))
                assert out == xs
                return seconds

            def bare_once(exec_chunk=exec_chunk) -> float:
                points = [(x,) for x in xs]
                out, seconds = timed(
                    lambda: list(ex.map(bare_sleepy, points, chunksize=exec_chunk))
                )
                assert out == xs
                return seconds

            t_memo = median_seconds(sz.repeats, memo_once)
            t_bare = median_seconds(sz.repeats, bare_once)
            report(
                "efficiency",
                f"exec_chunk_size={exec_chunk} time",
                t_memo,
                f"PPE.map chunksize={exec_chunk}",
                t_bare,
            )
            check(
                "efficiency",
                f"exec_chunk_size={exec_chunk} swarm-memo efficiency",
                ideal / t_memo,
                "",
                at_least=0.95,
            )
            check(
                "efficiency",
                f"exec_chunk_size={exec_chunk} bare PPE efficiency",
                ideal / t_bare,
                "",
            )


# ---------------------------------------------------------------------------- 3. warm


def bench_warm(sz: Sizes) -> None:
    n, chunk = sz.cold_points, sz.cold_chunk
    header(
        "warm", f"second run of the cold grid ({n:,} points, {n // chunk} chunk files), all cached"
    )
    xs = list(range(n))
    with fresh_dir() as root:
        memo = new_memo(root / "cache", chunk, chunk, double)
        params = {"bench": "warm"}
        first, _ = memo.run(params, {"x": xs})

        def memo_once() -> float:
            (out, diag), seconds = timed(lambda: memo.run(params, {"x": xs}))
            assert diag.executed_points == 0
            assert len(out) == n
            return seconds

        files = chunk_files(root / "cache")
        assert len(files) == n // chunk, len(files)

        def bare_once() -> float:
            started = time.perf_counter()
            outputs: list = []
            for path in files:
                with open(path, "rb") as fh:
                    data = fh.read()
                outputs.extend(pickle.loads(body_of(data))["outputs"])
            seconds = time.perf_counter() - started
            assert len(outputs) == n
            return seconds

        t_memo = median_seconds(max(3, sz.repeats), memo_once)
        t_bare = median_seconds(max(3, sz.repeats), bare_once)
        report("warm", "all cached", t_memo, "bare read+unpickle loop", t_bare, max_ratio=1.5)
        _, diag = memo.run(params, {"x": xs})
        info(
            "warm",
            f"swarm-memo Diagnostics: wall {diag.wall_time:.3f} s (planning excluded), "
            f"load {diag.load_time:.3f} s",
        )
        t_plan = median_seconds(3, lambda: timed(lambda: memo.status(params, {"x": xs}))[1])
        info("warm", f"memo.status (planning + listing only) {t_plan:.3f} s")

        chunk_bytes = total_size(files)
        idx_bytes = total_size(index_files(root / "cache"))
        pickled = len(pickle.dumps(first, protocol=5))
        report(
            "warm",
            "bytes/point on disk (chunks)",
            chunk_bytes / n,
            "pickle.dumps(outputs)/point",
            pickled / n,
            unit="B",
            max_ratio=1.5,
        )
        info(
            "warm",
            f"index/ files: {idx_bytes / n:.2f} B/point ({idx_bytes:,} B in "
            f"{len(index_files(root / 'cache'))} files); chunk files {chunk_bytes:,} B",
        )


# ---------------------------------------------------------------------------- 4. streaming


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
        note="the part of run_streaming's growth that is planning: per-value encodings",
    )
    report("streaming", f"time {n:,} pts", stream["seconds"], "run", run["seconds"])


# ---------------------------------------------------------------------------- 5. small runs


def bench_small(sz: Sizes) -> None:
    calls, n, chunk = sz.small_calls, sz.small_points, sz.small_chunk
    header(
        "small",
        f"{calls} calls of run on {n} points (memo chunks {chunk}, exec chunks "
        f"{chunk}), new params each; pools warm",
    )
    xs = list(range(n))
    expected = [2 * x for x in xs]
    with fresh_dir() as root, ProcessPoolExecutor(2) as ex:
        warm_loky_pool(root)
        memo = new_memo(root / "cache", chunk, chunk, double)
        list(ex.map(bare_double, [(x,) for x in xs], chunksize=chunk))

        def memo_series() -> float:
            started = time.perf_counter()
            for i in range(calls):
                out, _ = memo.run({"call": i, "t": started}, {"x": xs})
            seconds = time.perf_counter() - started
            assert out == expected
            return seconds

        def bare_series(write: bool = False) -> float:
            with fresh_dir() as out_dir:
                started = time.perf_counter()
                for i in range(calls):
                    out = list(ex.map(bare_double, [(x,) for x in xs], chunksize=chunk))
                    if write:
                        write_batches(out_dir / str(i), out, chunk)
                seconds = time.perf_counter() - started
            assert out == expected
            return seconds

        t_memo = median_seconds(sz.repeats, memo_series) / calls * 1000
        t_bare = median_seconds(sz.repeats, bare_series) / calls * 1000
        t_bare_write = median_seconds(sz.repeats, lambda: bare_series(True)) / calls * 1000
    report("small", "per call", t_memo, "reused PPE.map", t_bare, unit="ms")
    report(
        "small",
        "per call vs map+dump",
        t_memo,
        f"reused PPE.map + dump {n // chunk} files",
        t_bare_write,
        unit="ms",
    )
    check("small", "per-call overhead (swarm-memo - bare map)", t_memo - t_bare, "ms")


# ---------------------------------------------------------------------------- 6. dask


def bench_dask(sz: Sizes) -> None:
    n, chunk = sz.dask_points, sz.cold_chunk
    header("dask", f"{n:,} trivial points on a 2-worker LocalCluster, batches of {chunk}")
    try:
        from distributed import Client, LocalCluster
    except Exception as exc:
        skip("dask", f"distributed not importable: {exc!r}")
        return
    xs = list(range(n))
    expected_last = 2 * (n - 1)
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
        t_bare = median_seconds(sz.repeats, bare_once)
        report("dask", "cluster warm", t_memo, "client.map batches+gather", t_bare, max_ratio=1.2)
    finally:
        client.close()
        cluster.close()


# ---------------------------------------------------------------------------- main


BENCHMARKS = {
    "cold": bench_cold,
    "efficiency": bench_efficiency,
    "warm": bench_warm,
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
