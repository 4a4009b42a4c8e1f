"""open_cache: browse a cache's params sets and points without the memo that wrote them."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Any

import pytest

from swarm_memo import CacheWarning, SpecTypeError, SwarmMemo, SwarmMemoError, open_cache

pd = pytest.importorskip("pandas")

SPEC = {"x": [1, 2, 3], "y": [10, 20]}


def simulate(params: dict[str, Any], point: tuple[int, int]) -> dict[str, Any]:
    x, y = point
    return {"v": params["alpha"] * x, "w": y}


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def cache(tmp_path):
    memo = SwarmMemo(
        tmp_path / "c", {"x": 2, "y": 2}, 2, exec_fn=simulate, max_workers=1, verbose=0
    )
    for alpha in (0.1, 0.5, 0.9):
        memo.run({"alpha": alpha, "model": {"depth": 2}}, SPEC)
    memo.run({"alpha": 0.1, "model": {"depth": 3}}, {"x": [5], "y": [1]})
    return memo, tmp_path / "c"


def set_of(sets: Any, alpha: float, model: str = '{"depth": 2}') -> str:
    row = sets[(sets.alpha == alpha) & (sets.model == model)]
    assert len(row) == 1
    return str(row.set_id.iloc[0])


def test_sets_has_one_row_per_params_set(cache):
    _, root = cache
    sets = open_cache(root).sets()
    assert list(sets.columns) == [
        "set_id",
        "cache_version",
        "alpha",
        "model",
        "points",
        "chunks",
        "bytes",
        "compute_seconds",
        "hosts",
        "last_write",
    ]
    assert len(sets) == 4
    assert sorted(sets.alpha) == [0.1, 0.1, 0.5, 0.9]
    assert sorted(set(sets.model)) == ['{"depth": 2}', '{"depth": 3}']  # nested: JSON text
    assert sorted(sets.points) == [1, 6, 6, 6]
    assert sorted(sets.chunks) == [1, 2, 2, 2]
    assert (sets.bytes > 0).all()
    assert (sets.compute_seconds >= 0).all()
    assert set(sets.hosts) == {socket.gethostname()}
    assert str(sets.last_write.dt.tz) == "UTC"
    assert set(sets.cache_version) == {"v1"}


def test_load_gives_what_to_dataframe_gives_without_knowing_the_sweep(cache):
    memo, root = cache
    browse = open_cache(root)
    set_id = set_of(browse.sets(), 0.5)
    frame = browse.load(set_id[:8])  # a unique prefix is enough
    expected = memo.to_dataframe({"alpha": 0.5, "model": {"depth": 2}}, SPEC, load_only=True)
    pd.testing.assert_frame_equal(frame, expected)


def test_load_lists_each_point_once_across_overlapping_files(cache):
    _, root = cache
    params = {"alpha": 0.5, "model": {"depth": 2}}
    rebinned = SwarmMemo(root, {"x": 3, "y": 1}, 2, exec_fn=simulate, max_workers=1, verbose=0)
    rebinned.run(params, {"x": [0, 1, 2, 3, 4], "y": [20, 10]})
    browse = open_cache(root)
    frame = browse.load(set_of(browse.sets(), 0.5))
    assert len(frame) == 10
    assert sorted(zip(frame.x, frame.y, strict=True)) == [
        (x, y) for x in range(5) for y in (10, 20)
    ]
    assert frame.v.tolist() == [0.5 * x for x in frame.x]


def test_to_dataframe_adds_the_params_that_vary(cache):
    _, root = cache
    browse = open_cache(root)
    sets = browse.sets()
    chosen = sets[(sets.alpha < 0.6) & (sets.model == '{"depth": 2}')]
    frame = browse.to_dataframe(chosen.set_id)
    assert list(frame.columns) == ["set_id", "alpha", "x", "y", "v", "w"]  # model is constant
    assert len(frame) == 12
    assert sorted(set(frame.alpha)) == [0.1, 0.5]
    assert (frame.v == frame.alpha * frame.x).all()
    both = browse.to_dataframe(sets[sets.alpha == 0.1].set_id)
    assert list(both.columns) == ["set_id", "model", "x", "y", "v", "w"]


def test_browsing_never_writes_and_skips_damaged_files(cache):
    _, root = cache
    chunk = sorted(root.rglob("*.chunk"))[0]
    chunk.write_bytes(chunk.read_bytes()[:-5])  # truncated
    before = files_of(root)
    browse = open_cache(root)
    sets = browse.sets()
    damaged = chunk.parent.parent.name
    with pytest.warns(CacheWarning, match="skipped"):
        frame = browse.load(damaged)
    assert 0 < len(frame) < 6
    with pytest.warns(CacheWarning, match="skipped"):
        assert len(browse.to_dataframe(list(sets.set_id))) == 1 + 6 + 6 + len(frame)
    assert files_of(root) == before


def test_points_of_a_custom_enumerator_go_to_a_point_column(tmp_path):
    memo = SwarmMemo(
        tmp_path / "c",
        {"x": 2},
        2,
        exec_fn=lambda params, point: point["x"] * 2,
        enumerate_points=lambda params, spec: [{"x": x} for x in spec["x"]],
        max_workers=1,
        verbose=0,
    )
    memo.run({}, {"x": [1, 2, 3]})
    browse = open_cache(tmp_path / "c")
    frame = browse.load(str(browse.sets().set_id[0]))
    assert list(frame.columns) == ["point", "value"]
    assert sorted(frame.value) == [2, 4, 6]


def test_an_fsspec_cache_is_browsed_alike():
    pytest.importorskip("fsspec")
    url = f"memory://browse-{uuid.uuid4().hex}"
    memo = SwarmMemo(url, {"x": 2}, 2, exec_fn=lambda p, pt: pt[0], max_workers=1, verbose=0)
    memo.run({"k": 1}, {"x": [1, 2, 3]})
    browse = open_cache(url)
    sets = browse.sets()
    assert sets.k.tolist() == [1]
    assert browse.load(str(sets.set_id[0])).to_dict("list") == {"x": [1, 2, 3], "value": [1, 2, 3]}


def test_bad_arguments_are_refused(tmp_path, cache):
    _, root = cache
    with pytest.raises(SwarmMemoError, match="does not exist"):
        open_cache(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()
    with pytest.raises(SpecTypeError, match="cache_root"):
        open_cache(42)
    with pytest.raises(SpecTypeError, match="storage_options"):
        open_cache(root, storage_options="anon")
    browse = open_cache(root)
    with pytest.raises(SpecTypeError, match="set_id"):
        browse.load(5)
    with pytest.raises(SwarmMemoError, match="no params set"):
        browse.load("ffffffffffff")
