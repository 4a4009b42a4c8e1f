"""The launch benchmark runs: in --smoke mode (tiny sizes) it finishes, checks that every
point was computed once over its tasks and prints its ratio line. No timing is asserted."""

from __future__ import annotations

import re

import pytest

from helpers import bench_smoke

RATIO_LINE = re.compile(r"^RATIO launch/.+: swarm-memo .+ \| .+ \| ratio [\d.]+", re.M)

pytest.importorskip("submitit")


@pytest.mark.timeout(120)
def test_bench_launch_smoke() -> None:
    output = bench_smoke("bench_launch.py", timeout=100)
    assert RATIO_LINE.search(output), output
    assert re.search(r"points executed per task: \[\d+, \d+\] \(sum must be 100\)", output)
    assert "== summary: bench_launch (smoke)" in output
