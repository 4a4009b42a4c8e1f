"""Ready-made collate / merge helpers: ``swarm_memo.collate``."""

from __future__ import annotations

import math
import pickle
import sys

import pytest

from swarm_memo import SwarmMemo
from swarm_memo.collate import (
    concat_arrays,
    concat_frames,
    concat_lists,
    records_frame,
    stack_arrays,
)

SPEC = {"x": [1, 2, 3, 4, 5], "y": [0.5, 2.0]}


def vector_exec(params, point):
    x, y = point
    return [x, x * y, params["k"]]


def record_exec(params, point):
    x, y = point
    return {"x": x, "y": y, "xy": x * y + params["k"]}


def memo_at(tmp_path, exec_fn, collate_fn, merge_fn):
    return SwarmMemo(
        tmp_path / "cache",
        {"x": 2, "y": 1},
        3,
        exec_fn=exec_fn,
        collate_fn=collate_fn,
        merge_fn=merge_fn,
        max_workers=1,
        verbose=0,
    )


def grid_order():
    """Points in run() order for bins x:2, y:1 (axis order x, y; x bins slowest)."""
    order = []
    for x_bin in ([1, 2], [3, 4], [5]):
        for y in SPEC["y"]:
            order.extend((x, y) for x in x_bin)
    return order


@pytest.mark.parametrize(
    "fn", [concat_lists, stack_arrays, concat_arrays, concat_frames, records_frame]
)
def test_helpers_pickle_by_reference(fn):
    assert pickle.loads(pickle.dumps(fn)) is fn


def test_concat_lists():
    assert concat_lists([[1, 2], [], [3], (4, 5)]) == [1, 2, 3, 4, 5]
    assert concat_lists([]) == []


def test_concat_lists_is_the_default_merge(tmp_path):
    memo = memo_at(tmp_path, vector_exec, None, concat_lists)
    output, _ = memo.run({"k": 0}, SPEC)
    assert output == [vector_exec({"k": 0}, p) for p in grid_order()]


# ------------------------------------------------------------------ numpy


def test_stack_and_concat_arrays():
    np = pytest.importorskip("numpy")
    stacked = stack_arrays([[1, 2], [3, 4], [5, 6]])
    assert stacked.shape == (3, 2)
    assert stacked.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert stack_arrays([1.5, 2.5]).tolist() == [1.5, 2.5]
    merged = concat_arrays([stacked, np.array([[7, 8]]), stack_arrays([])])
    assert merged.tolist() == [[1, 2], [3, 4], [5, 6], [7, 8]]
    assert concat_arrays([]).shape == (0,)


def test_numpy_stacking_in_a_real_run(tmp_path):
    np = pytest.importorskip("numpy")
    memo = memo_at(tmp_path, vector_exec, stack_arrays, concat_arrays)
    cold, cold_diag = memo.run({"k": 7}, SPEC)
    warm, warm_diag = memo.run({"k": 7}, SPEC)
    assert cold_diag.executed_points == 10
    assert warm_diag.executed_points == 0
    assert warm_diag.cached_points == 10
    assert isinstance(cold, np.ndarray)
    assert cold.shape == (10, 3)
    expected = np.array([vector_exec({"k": 7}, p) for p in grid_order()])
    np.testing.assert_array_equal(cold, expected)
    np.testing.assert_array_equal(warm, cold)
    assert warm.dtype == cold.dtype


# ------------------------------------------------------------------ pandas


def test_records_frame_and_concat_frames():
    pd = pytest.importorskip("pandas")
    first = records_frame([{"a": 1, "b": "u"}, {"a": 2}])
    assert list(first.columns) == ["a", "b"]
    assert first["b"].tolist()[0] == "u"
    assert math.isnan(first["b"].tolist()[1])
    second = records_frame([{"c": 3.5, "a": 3}])
    merged = concat_frames([first, second])
    assert list(merged.index) == [0, 1, 2]
    assert merged["a"].tolist() == [1, 2, 3]
    assert list(merged.columns) == ["a", "b", "c"]
    assert len(concat_frames([])) == 0
    assert isinstance(records_frame([]), pd.DataFrame)


def test_records_frame_refuses_non_dicts():
    pytest.importorskip("pandas")
    with pytest.raises(TypeError, match="dict outputs"):
        records_frame([{"a": 1}, 2])


def test_pandas_concatenation_in_a_real_run(tmp_path):
    pd = pytest.importorskip("pandas")
    memo = memo_at(tmp_path, record_exec, records_frame, concat_frames)
    cold, cold_diag = memo.run({"k": 1}, SPEC)
    warm, warm_diag = memo.run({"k": 1}, SPEC)
    assert cold_diag.executed_points == 10
    assert warm_diag.executed_points == 0
    assert isinstance(cold, pd.DataFrame)
    assert list(cold.columns) == ["x", "y", "xy"]
    assert list(cold.index) == list(range(10))
    assert list(zip(cold["x"], cold["y"], strict=True)) == grid_order()
    assert cold["xy"].tolist() == [x * y + 1 for x, y in grid_order()]
    pd.testing.assert_frame_equal(warm, cold)


def test_load_of_a_partial_cache_collates_stored_points(tmp_path):
    pd = pytest.importorskip("pandas")
    memo = memo_at(tmp_path, record_exec, records_frame, concat_frames)
    memo.run({"k": 0}, {"x": [1, 2, 3], "y": [2.0]})
    loaded, diag = memo.load({"k": 0}, SPEC)
    assert diag.missing_points == 7
    assert isinstance(loaded, pd.DataFrame)
    assert sorted(zip(loaded["x"], loaded["y"], strict=True)) == [(1, 2.0), (2, 2.0), (3, 2.0)]


# ------------------------------------------------------------------ missing dependencies


@pytest.mark.parametrize(
    ("module", "fn", "arg"),
    [
        ("numpy", stack_arrays, [[1]]),
        ("numpy", concat_arrays, [[1]]),
        ("pandas", concat_frames, []),
        ("pandas", records_frame, []),
    ],
)
def test_missing_dependency_names_the_extra(monkeypatch, module, fn, arg):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=rf"pip install \"swarm-memo\[{module}\]\""):
        fn(arg)
