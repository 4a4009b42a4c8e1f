"""Hashing benchmarks: canonical keys and grid planning against pickle + blake2b.

Run from the repository root::

    python benchmarks/bench_hashing.py               # full sizes (about 30 s)
    python benchmarks/bench_hashing.py --smoke       # tiny sizes, checks it runs
    python benchmarks/bench_hashing.py --only grid   # one benchmark (repeatable)

Benchmarks (names for ``--only``):

encode      ``swarm_memo.identity.hashing.encode`` (the canonical, type-tagged encoding behind
            every cache key) of a list of 100,000 ints and of 100,000 floats, alone and
            followed by its digest (``digest``), vs ``pickle.dumps`` + ``blake2b`` of the
            same list: the cheapest stable-enough way to fingerprint it by hand.
grid        ``Grid.build`` (validation, duplicate check and one digest per axis bin: the
            planning of every run) of 10^6-point grids: one axis of 10^6 ints, one axis
            of 10^6 floats, and 1000 x 1000 ints, with bins of 1000 values; per-point
            cost, and the ratio to ``pickle.dumps`` + ``blake2b`` of the axis lists.
fingerprint ``code_fingerprint`` of an ``exec_fn`` reaching 200 helpers (a user module
            written to a temp folder and imported: each helper reads a module constant,
            calls two others, with cycles, and uses ``math`` and ``numpy``), taken once
            per call; vs ``inspect.getsource`` + ``blake2b`` of the same 201 functions
            (hashing their source by hand, as joblib does for the function alone).
            Target: under 50 ms. The first call of a process (library folders and
            versions looked up once) is reported too.

Times are medians of 5 repetitions; ratios are swarm-memo / baseline.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import check, fresh_dir, header, median_seconds, report, run_suite, timed

REPEATS = 5


@dataclass(frozen=True)
class Sizes:
    values: int  # list length for ``encode``
    grid_points: int  # points of each grid (one axis, or a square of two)
    bin_size: int
    helpers: int  # helpers the fingerprinted function reaches


FULL = Sizes(values=100_000, grid_points=1_000_000, bin_size=1000, helpers=200)
SMOKE = Sizes(values=1000, grid_points=10_000, bin_size=100, helpers=20)


def pickle_blake2b(value: Any) -> bytes:
    """The baseline: pickle it, hash the bytes (what a hand-rolled cache key would do)."""
    return hashlib.blake2b(pickle.dumps(value, protocol=5), digest_size=16).digest()


def seconds_of(fn: Callable[[], object]) -> float:
    return median_seconds(REPEATS, lambda: timed(fn)[1])


# ---------------------------------------------------------------------------- encode


def bench_encode(sz: Sizes) -> None:
    from swarm_memo.identity.hashing import digest, encode

    n = sz.values
    header("encode", f"canonical encoding of a list of {n:,} values vs pickle.dumps + blake2b")
    lists = {
        "ints": list(range(-n // 2, n - n // 2)),
        "floats": [i * 0.37 + 0.1 for i in range(n)],
    }
    for kind, values in lists.items():
        t_base = seconds_of(lambda values=values: pickle_blake2b(values))
        t_encode = seconds_of(lambda values=values: encode(values))
        t_digest = seconds_of(lambda values=values: digest(values))
        baseline = "pickle.dumps+blake2b"
        report("encode", f"{n:,} {kind}: encode", t_encode, baseline, t_base)
        report("encode", f"{n:,} {kind}: encode+digest", t_digest, baseline, t_base)
        check("encode", f"{kind}: encode per value", t_encode / n * 1e9, "ns")


# ---------------------------------------------------------------------------- grid


def grids(sz: Sizes) -> dict[str, dict[str, list[Any]]]:
    n = sz.grid_points
    side = round(n**0.5)
    return {
        f"1 axis of {n:,} ints": {"x": list(range(n))},
        f"1 axis of {n:,} floats": {"x": [i * 0.37 + 0.1 for i in range(n)]},
        f"{side} x {side} ints": {"a": list(range(side)), "b": list(range(side))},
    }


def bench_grid(sz: Sizes) -> None:
    from swarm_memo.identity.grid import ChunkLayout, Grid

    header(
        "grid",
        f"Grid.build of {sz.grid_points:,}-point grids, bins of {sz.bin_size} values: "
        "per-point cost",
    )
    for name, split in grids(sz).items():
        points = 1
        for values in split.values():
            points *= len(values)
        layout = ChunkLayout.parse({axis: sz.bin_size for axis in split}, None)
        t_grid = seconds_of(lambda split=split, layout=layout: Grid.build(split, layout))
        t_base = seconds_of(lambda split=split: [pickle_blake2b(v) for v in split.values()])
        report("grid", f"{name}: Grid.build", t_grid, "pickle.dumps+blake2b of the axes", t_base)
        check("grid", f"{name}: Grid.build per point", t_grid / points * 1e9, "ns")


# ---------------------------------------------------------------------- fingerprint


def helper_module(helpers: int) -> str:
    """Source of a module whose ``exec_fn`` reaches ``helpers`` helpers."""
    lines = ["import math", "", "import numpy as np", ""]
    for i in range(helpers):
        calls = f"h{i + 1}(x - 1) + h{(7 * i) % helpers}(0)" if i + 1 < helpers else "x"
        lines += [
            f"GAIN_{i} = {i % 5 + 1}",
            "",
            f"def h{i}(x):",
            "    if x <= 0:",
            f"        return GAIN_{i}",
            "    ys = [v * 2 for v in range(3)]",
            f"    return math.sqrt(abs(x)) + float(np.sum(ys)) * GAIN_{i} + {calls}",
            "",
        ]
    lines += ["def exec_fn(params, point):", "    return h0(point[0])", ""]
    return "\n".join(lines)


def bench_fingerprint(sz: Sizes) -> None:
    from swarm_memo.identity.fingerprint import code_fingerprint

    helpers = sz.helpers
    header("fingerprint", f"code_fingerprint of an exec_fn reaching {helpers} helpers")
    with fresh_dir() as folder:
        name = f"bench_fingerprint_helpers_{helpers}"
        (folder / f"{name}.py").write_text(helper_module(helpers))
        sys.path.insert(0, str(folder))
        try:
            module = importlib.import_module(name)
        finally:
            sys.path.remove(str(folder))
        fn = module.exec_fn
        _, first = timed(lambda: code_fingerprint(fn))
        functions = [fn, *(getattr(module, f"h{i}") for i in range(helpers))]
        t_fp = seconds_of(lambda: code_fingerprint(fn))
        t_base = seconds_of(
            lambda: [hashlib.blake2b(inspect.getsource(f).encode()).digest() for f in functions]
        )
        sys.modules.pop(name, None)
    report(
        "fingerprint",
        f"{helpers} helpers: code_fingerprint",
        t_fp,
        "getsource+blake2b of each",
        t_base,
    )
    check("fingerprint", f"{helpers} helpers, per call", t_fp * 1e3, "ms", at_most=50)
    check("fingerprint", f"{helpers} helpers, first call of the process", first * 1e3, "ms")


BENCHMARKS = {"encode": bench_encode, "grid": bench_grid, "fingerprint": bench_fingerprint}


def main(argv: list[str] | None = None) -> None:
    run_suite("hashing", __doc__.splitlines()[0], BENCHMARKS, (FULL, SMOKE), argv)


if __name__ == "__main__":
    main()
