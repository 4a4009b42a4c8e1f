"""Reuse benchmarks: a big populated cache, read back as is and through other bin sizes.

Run from the repository root::

    python benchmarks/bench_reuse.py             # full: 1,000,000 points (about 1 minute)
    python benchmarks/bench_reuse.py --smoke     # ~10,000 points, checks it runs

One benchmark, ``reuse`` (``--only reuse``), in steps on one cache:

1. populate: a grid of axes "a" (1000 ints) x "b" (1000 ints), memo_chunk_spec
   {"a": 100, "b": 10} (1000 chunk files of 1000 points), trivial exec function,
   max_workers=2, exec_chunk_size=10000, filled once with ``run_streaming``;
2. ``memo.status`` on the full grid (target: well under 1 s), next to a bare listing of
   the chunk folder;
3. a warm ``memo.run`` (everything cached) vs a bare loop that reads and unpickles the same
   1000 chunk files (header and meta skipped) into one list;
4. a REBINNED request: a new SwarmMemo on the same cache_root with memo_chunk_spec
   {"a": 10, "b": 100}: no requested chunk has a file, every point is stored. Its ``run``
   vs (the bare warm load + pickling and writing the same 1000 x 1000 outputs to 1000
   files); Diagnostics.reused_points and executed_points (must be 0) are printed.

Smoke sizes: 100 x 100 points, chunks {"a": 10, "b": 5} then {"a": 5, "b": 10}.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from swarm_memo._codec import body_of

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
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


@dataclass(frozen=True)
class Sizes:
    n_a: int
    n_b: int
    spec: dict
    rebinned: dict
    exec_chunk: int
    repeats: int


FULL = Sizes(1000, 1000, {"a": 100, "b": 10}, {"a": 10, "b": 100}, 10_000, 3)
SMOKE = Sizes(100, 100, {"a": 10, "b": 5}, {"a": 5, "b": 10}, 500, 1)


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


BENCHMARKS = {"reuse": bench_reuse}


def main(argv: list[str] | None = None) -> None:
    run_suite("reuse", __doc__.splitlines()[0], BENCHMARKS, (FULL, SMOKE), argv)


if __name__ == "__main__":
    main()
