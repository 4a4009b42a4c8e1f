"""The listing benchmark runs: in --smoke mode (tiny sizes) it finishes, prints its two
ratio lines and, with --profile, the folders listed while adding chunks. No timing is
asserted."""

from __future__ import annotations

import re

import pytest

from helpers import bench_smoke

RATIO_LINE = re.compile(r"^RATIO listing/.+: swarm-memo .+ \| .+ \| ratio [\d.]+", re.M)


@pytest.mark.timeout(120)
def test_bench_listing_smoke_reports_both_ratios_and_the_listings() -> None:
    output = bench_smoke("bench_listing.py", "--profile", timeout=100)
    assert len(RATIO_LINE.findall(output)) == 2, output
    assert re.search(r"^INFO listing: build: 500 points in 500 chunk files", output, re.M)
    assert re.search(r"^INFO listing: folders listed during that add: \{.*'chunks/'", output, re.M)
    assert "== summary: bench_listing (smoke)" in output
