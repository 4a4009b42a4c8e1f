"""numpy values key exactly like the equal Python values, through the public API."""

from __future__ import annotations

import math

import pytest

from helpers import CountingExec
from swarm_memo import SpecError, SwarmMemo
from swarm_memo.identity.grid import ChunkLayout, Grid

np = pytest.importorskip("numpy")


def make(tmp_path, counting: CountingExec, chunk_spec: dict[str, int]) -> SwarmMemo:
    return SwarmMemo(tmp_path / "cache", chunk_spec, 2, exec_fn=counting, max_workers=1, verbose=0)


def chunk_names(spec: dict[str, object], sizes: dict[str, int]) -> list[tuple[bytes, ...]]:
    grid = Grid.build(spec, ChunkLayout.parse(sizes, None))
    return [axis.bin_digests for axis in grid.axes]


def test_numpy_float_param_keys_like_python_float(tmp_path, counting):
    memo = make(tmp_path, counting, {"x": 2})
    memo.run({"k": 1.5, "n": 3, "flag": True}, {"x": [1, 2, 3]})
    assert counting.count() == 3
    memo.run({"k": np.float64(1.5), "n": np.int32(3), "flag": np.bool_(True)}, {"x": [1, 2, 3]})
    assert counting.count() == 3


def test_numpy_float32_param_keys_like_the_float_it_equals(tmp_path, counting):
    memo = make(tmp_path, counting, {"x": 2})
    memo.run({"k": np.float32(0.1)}, {"x": [1]})
    memo.run({"k": float(np.float32(0.1))}, {"x": [1]})
    assert counting.count() == 1
    memo.run({"k": 0.1}, {"x": [1]})  # not the same number as float32(0.1)
    assert counting.count() == 2


def test_linspace_axis_reuses_tolist_axis(tmp_path, counting):
    memo = make(tmp_path, counting, {"x": 2, "s": 1})
    grid = np.linspace(0, 1, 5)
    first, _ = memo.run({}, {"x": grid.tolist(), "s": ["a"]})
    assert counting.count() == 5
    second, _ = memo.run({}, {"x": grid, "s": ["a"]})
    assert counting.count() == 5
    assert [out["pid_free"] for out in second] == [out["pid_free"] for out in first]


def test_linspace_axis_has_the_chunk_names_of_its_tolist():
    grid = np.linspace(0, 1, 5)
    assert chunk_names({"x": grid}, {"x": 2}) == chunk_names({"x": grid.tolist()}, {"x": 2})


def test_int32_arange_axis_keys_like_range(tmp_path, counting):
    values = np.arange(4, dtype=np.int32)
    assert chunk_names({"x": values}, {"x": 3}) == chunk_names({"x": list(range(4))}, {"x": 3})
    memo = make(tmp_path, counting, {"x": 3})
    memo.run({}, {"x": list(range(4))})
    memo.run({}, {"x": values})
    assert counting.count() == 4


@pytest.mark.parametrize(
    "values",
    [
        [np.int8(0), np.uint16(1), np.int64(2)],
        np.arange(3, dtype=np.uint8),
        range(3),
        (0, 1, 2),
    ],
)
def test_int_axes_key_alike_whatever_their_integer_types(values):
    assert chunk_names({"x": values}, {"x": 2}) == chunk_names({"x": [0, 1, 2]}, {"x": 2})


def test_float32_axis_keys_like_the_floats_it_holds():
    values = np.array([0.1, 0.5], dtype=np.float32)
    as_floats = [float(v) for v in values]
    assert chunk_names({"x": values}, {"x": 2}) == chunk_names({"x": as_floats}, {"x": 2})


def test_int_and_float_axes_stay_apart():
    assert chunk_names({"x": [1, 2]}, {"x": 2}) != chunk_names({"x": [1.0, 2.0]}, {"x": 2})
    assert chunk_names({"x": [0.0]}, {"x": 1}) != chunk_names({"x": [-0.0]}, {"x": 1})


def test_an_all_int_bin_keys_alike_whatever_the_rest_of_its_axis():
    mixed = chunk_names({"x": [1, 2, "a"]}, {"x": 2})[0]
    plain = chunk_names({"x": [1, 2]}, {"x": 2})[0]
    assert mixed[0] == plain[0]


NANS = [float("nan"), math.nan, np.nan, np.float64("nan"), -math.nan, np.float32("nan")]


@pytest.mark.parametrize("nan", NANS)
def test_nan_axis_value_is_one_value(nan):
    expected = chunk_names({"x": [0.5, math.nan]}, {"x": 2})
    assert chunk_names({"x": [0.5, nan]}, {"x": 2}) == expected
    assert chunk_names({"x": np.array([0.5, nan])}, {"x": 2}) == expected


@pytest.mark.parametrize("nan", NANS[2:4])
def test_nan_axis_value_is_computed_once_across_runs(tmp_path, counting, nan):
    memo = make(tmp_path, counting, {"x": 2})
    memo.run({}, {"x": [0.5, math.nan]})
    memo.run({}, {"x": [0.5, nan]})
    assert counting.count() == 2


def test_an_axis_holding_nan_twice_is_refused():
    with pytest.raises(ValueError, match=r"holds the value .*nan.* twice \(positions 0 and 2\)"):
        chunk_names({"x": [math.nan, 1.0, np.float64("nan")]}, {"x": 2})


def test_numpy_array_axis_values_are_hashable_and_dtype_aware():
    values = [np.array([1.0, 2.0]), np.array([3.0, 4.0])]
    digests = chunk_names({"x": values}, {"x": 2})
    assert digests == chunk_names({"x": [v.copy() for v in values]}, {"x": 2})
    as_int = [v.astype(np.int64) for v in values]
    assert digests != chunk_names({"x": as_int}, {"x": 2})


def test_numpy_array_axis_values_work_on_later_runs(tmp_path, counting):
    memo = make(tmp_path, counting, {"x": 2})
    spec = {"x": [np.array([1.0, 2.0]), np.array([3.0, 4.0]), np.array([5.0])]}
    first, _ = memo.run({}, spec)
    second, _ = memo.run({}, spec)
    loaded, _ = memo.load({}, spec)
    assert counting.count() == 3
    assert [out["pid_free"] for out in second] == [out["pid_free"] for out in first]
    assert [out["pid_free"] for out in loaded] == [out["pid_free"] for out in first]


@pytest.mark.parametrize(
    "axis",
    [
        np.arange(-5, 3000, dtype=np.int64),
        np.arange(200, dtype=np.uint8),
        np.array([2**64 - 1, 0, 7], dtype=np.uint64),
        np.linspace(-1.0, 1.0, 2001),
        np.array([0.5, np.nan, -0.0, 0.0, np.inf], dtype=np.float64),
        np.array([0.1, 0.25, np.nan], dtype=np.float32),
    ],
    ids=["int64", "uint8", "uint64 beyond int64", "linspace", "nan and signed zero", "float32"],
)
def test_numpy_axes_plan_like_their_python_values(axis):
    """Planned by numpy (packing, duplicate check) or value by value: same chunk names."""
    sizes = {"x": 7}
    assert chunk_names({"x": axis}, sizes) == chunk_names({"x": axis.tolist()}, sizes)


@pytest.mark.parametrize(
    ("axis", "value"),
    [
        (np.array([3, 1, 3], dtype=np.int32), r"np\.int32\(3\) twice \(positions 0 and 2\)"),
        (np.array([0.5, np.nan, np.nan]), r"np\.float64\(nan\) twice \(positions 1 and 2\)"),
    ],
)
def test_a_numpy_axis_holding_a_value_twice_is_a_spec_error(axis, value):
    with pytest.raises(SpecError, match=rf"split_spec\['x'\] holds the value {value}"):
        Grid.build({"x": axis}, ChunkLayout.parse({"x": 2}, None))
