"""Memory at scale (issue 23, lever 6): what a big request holds besides its outputs."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from swarm_memo import SpecError, SwarmMemo
from swarm_memo.identity.grid import Chunk, ChunkLayout, Grid
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


def test_an_axis_keeps_its_values_once_and_plans_without_a_set() -> None:
    """Planning a sorted axis of N ints keeps one reference per value (the bins' tuples,
    8 bytes each; ``values`` reads through them), and checks the values are distinct
    without a set (which takes 40 bytes per value, at the call's peak)."""
    values = list(range(N))
    layout = ChunkLayout.parse({"i": 1000}, None)
    tracemalloc.start()
    try:
        grid = Grid.build({"i": values}, layout)
        chunks = list(grid.chunks())
        retained, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(chunks) == N // 1000
    axis = grid.axes[0]
    assert list(axis.values) == values
    assert (len(axis.values), axis.values[-1], axis.values[1234]) == (N, N - 1, 1234)
    assert retained < 10 * N, f"{retained / N:.1f} bytes retained per value"
    assert peak < 40 * N, f"{peak / N:.1f} bytes per value at the peak"


@pytest.mark.parametrize(
    "values", [[3, 1, 2], [0.5, -0.0, 0.0], [1.0, float("nan")], list(range(10, 0, -1))]
)
def test_unsorted_axes_are_still_checked_for_duplicates(values: list[object]) -> None:
    layout = ChunkLayout.parse({"i": 2}, None)
    assert len(Grid.build({"i": values}, layout).axes[0].values) == len(values)
    with pytest.raises(SpecError, match="twice"):
        Grid.build({"i": [*values, values[0]]}, layout)


def test_a_rebinned_stream_loads_no_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run_streaming`` of stored points under other bins finds them through the index
    and checks their files (read whole, checksum) without unpickling outputs: it holds
    no chunk's outputs, let alone every file's in the reuse LRU."""
    from swarm_memo.cache.params_set import ParamsSet

    memo = SwarmMemo(tmp_path / "c", {"i": 10}, 10, exec_fn=ident, max_workers=1, verbose=0)
    split = {"i": list(range(100))}
    memo.run_streaming({}, split)
    loads: list[str] = []
    real_load = ParamsSet.load

    def counting_load(self: ParamsSet, name: str, expected: Chunk | None = None) -> object:
        loads.append(name)
        return real_load(self, name, expected)

    monkeypatch.setattr(ParamsSet, "load", counting_load)
    rebinned = SwarmMemo(tmp_path / "c", {"i": 7}, 10, exec_fn=ident, max_workers=1, verbose=0)
    diag = rebinned.run_streaming({}, split)
    assert (diag.reused_points, diag.executed_points) == (100, 0)
    assert loads == []
    assert rebinned.run({}, split)[0] == list(range(100))  # a run still loads them
    assert loads
