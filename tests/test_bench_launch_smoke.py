"""The launch benchmark runs: in --smoke mode (tiny sizes) it finishes, checks that every
point was computed once over its tasks and prints its ratio line. No timing is asserted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
RATIO_LINE = re.compile(r"^RATIO launch/.+: swarm-memo .+ \| .+ \| ratio [\d.]+", re.M)

pytest.importorskip("submitit")


@pytest.mark.timeout(120)
def test_bench_launch_smoke() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_launch.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=BENCHMARKS.parent,
    )
    assert proc.returncode == 0, f"bench_launch.py --smoke failed:\n{proc.stdout}\n{proc.stderr}"
    output = proc.stdout
    assert RATIO_LINE.search(output), output
    assert re.search(r"points executed per task: \[\d+, \d+\] \(sum must be 100\)", output)
    assert "== summary: bench_launch (smoke)" in output
