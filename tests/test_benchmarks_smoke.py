"""The benchmarks run: every benchmark in --smoke mode (tiny sizes) finishes and prints its
ratio lines. No timing is asserted: speed is what the benchmarks report, not what the test
suite checks."""

from __future__ import annotations

import importlib.util
import re

import pytest

from helpers import bench_smoke

RATIO_LINE = re.compile(r"^RATIO (?P<bench>[\w-]+)/.+: swarm-memo .+ \| .+ \| ratio [\d.]+", re.M)
SKIP_LINE = re.compile(r"^SKIP (?P<bench>[\w-]+): skipped \(.+\)", re.M)


def run_smoke(script: str) -> str:
    return bench_smoke(script, timeout=120)


def benches_with_ratio(output: str) -> set[str]:
    return {m["bench"] for m in RATIO_LINE.finditer(output)}


@pytest.mark.timeout(180)
def test_bench_engine_smoke() -> None:
    output = run_smoke("bench_engine.py")
    reported = benches_with_ratio(output)
    for bench in ["cold", "efficiency", "warm", "arrays", "streaming", "small"]:
        assert bench in reported, f"no RATIO line for {bench}:\n{output}"
    for shape in ["1 axis", "seed enumerator", "2 axes default"]:
        assert f"RATIO cold/{shape} pool cold:" in output, output
        assert f"RATIO warm/{shape} vs dump files:" in output, output
    assert re.search(
        r"^INFO cold/1 axis pool cold: GC share of driver time: [\d.]+ %", output, re.M
    )
    assert "RATIO efficiency/1 ms exec_chunk_size=1 time:" in output, output
    # Without distributed the benchmark says so instead of crashing; with it (the test
    # extra), Dask must have run: a SKIP would hide a broken executor=client.
    if importlib.util.find_spec("distributed") is not None:
        assert "RATIO dask/" in output, output
    else:
        assert "dask" in {m["bench"] for m in SKIP_LINE.finditer(output)}, output
    assert "== summary: bench_engine (smoke)" in output


@pytest.mark.timeout(120)
def test_bench_reuse_smoke() -> None:
    output = run_smoke("bench_reuse.py")
    assert "reuse" in benches_with_ratio(output), output
    assert re.search(r"executed_points 0 \(must be 0\)", output), output
    assert "ERROR" not in output
    assert "== summary: bench_reuse (smoke)" in output


@pytest.mark.timeout(60)
def test_bench_hashing_smoke() -> None:
    output = run_smoke("bench_hashing.py")
    assert benches_with_ratio(output) == {"encode", "grid", "fingerprint"}, output
    assert re.search(r"^INFO grid/.+: Grid\.build per point: [\d.]+ ns", output, re.M), output
    assert "== summary: bench_hashing (smoke)" in output


def test_only_selects_one_benchmark() -> None:
    # --only is the suites' common command line (_common.run_suite): checked on the
    # cheapest suite.
    output = bench_smoke("bench_hashing.py", "--only", "grid", timeout=60)
    assert benches_with_ratio(output) == {"grid"}, output


@pytest.mark.timeout(180)
def test_bench_seed_smoke() -> None:
    output = run_smoke("bench_seed.py")
    reported = benches_with_ratio(output)
    for bench in ["cold", "warm", "efficiency", "scale"]:
        assert bench in reported, f"no RATIO line for {bench}:\n{output}"
    skipped = {m["bench"] for m in SKIP_LINE.finditer(output)}
    assert "arrays" in reported or "arrays" in skipped, output
    for figure in ["P1 durable", "P1 not durable"]:
        assert f"RATIO cold/{figure}:" in output, output
    assert re.search(r"^INFO efficiency/P3 efficiency: [\d.]+", output, re.M), output
    for figure in ["S1 driver RSS growth", "S3 rebinned run_streaming: RSS growth"]:
        assert re.search(rf"^INFO scale/{figure}: [\d.]+ MB", output, re.M), output
    assert "== summary: bench_seed (smoke)" in output


@pytest.mark.timeout(60)
def test_bench_rebinned_reads_smoke() -> None:
    output = run_smoke("bench_rebinned_reads.py")
    assert re.search(r"rebinned \(bins of 700\), from files .+ [\d.]+x", output), output
    assert "after compact()" in output
