"""The concurrent-sweeps benchmark runs: in --smoke mode (tiny sizes) it finishes, counts the
points computed twice in every case and prints its ratio lines. No timing is asserted, and
neither is the number of duplicates where it depends on how the processes interleave; a
launch's three tasks without claims compute each point once whatever the interleaving."""

from __future__ import annotations

import re

import pytest

from helpers import bench_smoke

RATIO_LINE = re.compile(r"^RATIO concurrent/.+: swarm-memo .+ \| .+ \| ratio [\d.]+", re.M)
TWICE_LINE = re.compile(
    r"^INFO concurrent: (same|different) bins .+: points computed twice \d+ of 24", re.M
)
TASKS_LINE = re.compile(
    r"^INFO tasks: (local|S3) (launch 3 tasks|3 runs), (locks|leases|no claims): "
    r"duplicate executions (\d+) of 24",
    re.M,
)


def smoke(only: str) -> str:
    output = bench_smoke("bench_concurrent.py", "--only", only, timeout=100)
    assert "== summary: bench_concurrent (smoke)" in output
    return output


@pytest.mark.timeout(120)
def test_bench_concurrent_smoke_reports_every_case() -> None:
    output = smoke("concurrent")
    assert len(RATIO_LINE.findall(output)) == 4, output
    cases = [m.group(1) for m in TWICE_LINE.finditer(output)]
    assert sorted(cases) == ["different", "different", "same", "same"], output


@pytest.mark.timeout(120)
def test_bench_tasks_smoke_reports_the_launch_cases() -> None:
    output = smoke("tasks")
    tasks = {(m[1], m[2], m[3]): int(m[4]) for m in TASKS_LINE.finditer(output)}
    assert set(tasks) == {("local", "launch 3 tasks", h) for h in ("locks", "no claims")}, output
    for (_, what, how), duplicates in tasks.items():
        if (what, how) == ("launch 3 tasks", "no claims"):
            assert duplicates == 0, output  # each task computes its own share only
