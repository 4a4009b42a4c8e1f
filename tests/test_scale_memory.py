"""Memory at scale (issue 23, lever 6): what a big request holds besides its outputs."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from swarm_memo import SwarmMemo
from swarm_memo.identity.grid import ChunkLayout, Grid
from swarm_memo.run.plan import Access, plan_run

N = 200_000
MB = 2**20


def ident(params: dict, point: tuple) -> int:
    return int(point[0])


def traced_peak(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_claim_cells_do_not_encode_every_value(tmp_path: Path) -> None:
    """A computing run names its claim cells by a digest of each axis's value list: taken
    from the packed values, not from one canonical encoding per value (about 70 bytes each,
    kept for the whole run: 150 MB for 10^6 ints)."""
    from swarm_memo.run.cells import chunk_claim_names

    memo = SwarmMemo(tmp_path / "c", {"i": 1000}, 1000, exec_fn=ident, max_workers=1, verbose=0)
    plan = plan_run(memo.config, {}, {"i": list(range(N))}, access=Access.READ)
    name = plan.named_chunks[0][1]
    peak = traced_peak(lambda: chunk_claim_names(plan, name))
    assert peak < 2 * MB, f"claiming one chunk's cells traced {peak / MB:.1f} MB"


@pytest.mark.parametrize("bins", [1, 7, 1000])
def test_list_digest_depends_on_the_values_only(bins: int) -> None:
    np = pytest.importorskip("numpy")

    def digest(values: object, size: int = bins) -> bytes:
        return Grid.build({"i": values}, ChunkLayout.parse({"i": size}, None)).axes[0].list_digest

    same = [list(range(50)), tuple(range(50)), range(50), np.arange(50), np.arange(50, dtype="i4")]
    assert len({digest(v) for v in same} | {digest(range(50), 3)}) == 1
    assert digest(list(range(50))) != digest(list(range(1, 51)))
    assert digest([0.5, 1.5]) != digest([1, 2]) != digest(["a", "b"])
    assert digest(["a", "b"]) == digest(("a", "b"), 1) != digest(["b", "a"])
