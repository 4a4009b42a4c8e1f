"""Sweep results as DataFrames and xarray Datasets: ``swarm_memo.frames.frames``."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import pytest

from helpers import CountingExec
from swarm_memo import SpecError, SpecTypeError, SwarmMemo
from swarm_memo.frames.frames import to_dataframe, to_xarray

pd = pytest.importorskip("pandas")

SPEC = {"a": [1, 2, 3], "b": [10, 20]}


def identity_exec(params, point):
    return point


def sum_prod_exec(params, point):
    a, b = point
    return {"sum": a + b + params.get("k", 0), "prod": a * b}


def scalar_exec(params, point):
    a, b = point
    return a * 100 + b


def echo_exec(params, point):
    a, b = point
    return {"a": a, "b": b * 2, "total": a + b}


def fail_on_two(params, point):
    if point[0] == 2:
        raise ValueError("two")
    return point[0] + point[1]


def upper_triangle(params, split_spec):
    """Custom enumerator: dict points, only x <= y."""
    return [{"x": x, "y": y} for x in split_spec["x"] for y in split_spec["y"] if x <= y]


def triangle_exec(params, point):
    return {"diff": point["y"] - point["x"]}


def seed_enumerate(params, split_spec):
    """The README's enumerator: (strat, s) tuples, not in sorted axis order."""
    return [(strat, s) for strat in split_spec["strat"] for s in split_spec["s"]]


def seed_exec(params, point):
    strat, s = point
    return {"score": len(strat) + s}


def replicate_enumerate(params, split_spec):
    return [(a, b, seed) for a in split_spec["a"] for b in split_spec["b"] for seed in (0, 1)]


def replicate_exec(params, point):
    a, b, seed = point
    return a + b + seed


def memo_at(tmp_path, bins=None, **kwargs):
    options = {"max_workers": 1, "verbose": 0, "exec_fn": sum_prod_exec}
    options.update(kwargs)
    return SwarmMemo(tmp_path / "cache", bins or {"a": 2, "b": 1}, 2, **options)


def point_to_xy(point):
    return {"x": point["x"], "y": point["y"]}


# ------------------------------------------------------------------ pairing


@pytest.mark.parametrize(
    ("bins", "axis_order"),
    [
        ({"a": 2, "b": 1}, None),
        ({"a": 1, "b": 1}, None),
        ({"a": 5, "b": 5}, None),
        ({"a": 2, "b": 3}, ("b", "a")),
        ({"a": 2, "b": 1, "c": 2}, ("c", "a", "b")),
    ],
)
def test_each_row_holds_its_own_points_output(tmp_path, bins, axis_order):
    spec = {"a": [5, 1, 3, 2, 4], "b": ["u", "v", "w"], "c": [0.5, -1.0, 2.0]}
    spec = {axis: spec[axis] for axis in bins}
    memo = memo_at(tmp_path, bins, exec_fn=identity_exec, axis_order=axis_order)
    df = memo.to_dataframe({}, spec)
    order = list(memo.axis_order)
    grid = list(itertools.product(*(spec[axis] for axis in order)))
    assert list(df.columns) == [*order, "value"]
    assert len(df) == math.prod(len(v) for v in spec.values())
    # rows follow the grid, and each output (the point itself) sits on its own row
    assert list(zip(*(df[axis] for axis in order), strict=True)) == grid
    assert list(df["value"]) == grid
    # the same when everything comes from the cache
    assert memo.to_dataframe({}, spec, load_only=True).equals(df)


def test_custom_enumerator_rows_follow_the_run_output(tmp_path):
    memo = memo_at(
        tmp_path, {"x": 2, "y": 2}, exec_fn=identity_exec, enumerate_points=upper_triangle
    )
    spec = {"x": [1, 2, 3], "y": [3, 1, 2]}
    output, _ = memo.run({}, spec)
    df = memo.to_dataframe({}, spec, point_to_dict=point_to_xy)
    # the outputs echo their points exactly: those fields are dropped
    assert list(df.columns) == ["x", "y"]
    assert list(zip(df["x"], df["y"], strict=True)) == [(p["x"], p["y"]) for p in output]


def test_stored_points_are_paired_when_chunks_cut_across(tmp_path):
    pytest.importorskip("xarray")
    spec = {"a": [1, 2, 3, 4], "b": [10, 20, 30]}
    writer = memo_at(tmp_path, {"a": 3, "b": 2}, exec_fn=scalar_exec)
    writer.run({}, {"a": [2, 3, 4], "b": [20, 30]})
    reader = memo_at(tmp_path, {"a": 1, "b": 3}, exec_fn=None)
    df = reader.to_dataframe({}, spec, load_only=True)
    assert sorted(zip(df["a"], df["b"], strict=True)) == [
        (a, b) for a in (2, 3, 4) for b in (20, 30)
    ]
    assert all(df["value"] == df["a"] * 100 + df["b"])
    ds = reader.to_xarray({}, spec, load_only=True)
    assert int(ds["value"].isnull().sum()) == 6
    assert ds["value"].sel(a=4, b=30).item() == 430


# ------------------------------------------------------------------ DataFrame


def test_dataframe_dict_outputs_spread_into_columns(tmp_path):
    memo = memo_at(tmp_path)
    df = memo.to_dataframe({"k": 1}, SPEC)
    assert list(df.columns) == ["a", "b", "sum", "prod"]
    assert list(df.index) == list(range(6))
    rows = sorted(df.itertuples(index=False, name=None))
    assert rows == [(a, b, a + b + 1, a * b) for a, b in itertools.product(SPEC["a"], SPEC["b"])]
    # rows follow the grid (product of split_spec in axis order), not the chunks
    assert list(zip(df["a"], df["b"], strict=True)) == [
        (1, 10), (1, 20), (2, 10), (2, 20), (3, 10), (3, 20)
    ]  # fmt: skip


@pytest.mark.parametrize("bins", [{"a": 1, "b": 1}, {"a": 2, "b": 1}, {"a": 3, "b": 2}])
def test_dataframe_rows_follow_the_grid_whatever_the_bins(tmp_path, bins):
    spec = {"a": [3, 1, 2], "b": [20, 10]}
    df = memo_at(tmp_path, bins).to_dataframe({}, spec)
    assert list(zip(df["a"], df["b"], strict=True)) == list(itertools.product(spec["a"], spec["b"]))
    assert list(df["prod"]) == [a * b for a, b in itertools.product(spec["a"], spec["b"])]


def test_dataframe_scalar_outputs_go_to_value_column(tmp_path):
    memo = memo_at(tmp_path, exec_fn=scalar_exec)
    df = memo.to_dataframe({}, SPEC)
    assert list(df.columns) == ["a", "b", "value"]
    assert sorted(df["value"]) == [110, 120, 210, 220, 310, 320]
    assert all(df["value"] == df["a"] * 100 + df["b"])


def test_dataframe_respects_axis_order(tmp_path):
    memo = memo_at(tmp_path, {"a": 3, "b": 1}, exec_fn=identity_exec, axis_order=("b", "a"))
    df = memo.to_dataframe({}, SPEC)
    assert list(df.columns) == ["b", "a", "value"]
    # points are (b, a) tuples: the columns read them in that order
    assert all(df["value"] == list(zip(df["b"], df["a"], strict=True)))
    assert list(df["b"]) == [10, 10, 10, 20, 20, 20]
    assert list(df["a"]) == [1, 2, 3, 1, 2, 3]


def test_dataframe_ignores_the_memo_collate_and_merge(tmp_path):
    memo = memo_at(tmp_path, exec_fn=scalar_exec, collate_fn=sum, merge_fn=sum)
    total, _ = memo.run({}, SPEC)
    assert total == 110 + 120 + 210 + 220 + 310 + 320
    df = memo.to_dataframe({}, SPEC)
    assert sorted(df["value"]) == [110, 120, 210, 220, 310, 320]
    assert memo.collate_fn is sum
    assert memo.merge_fn is sum


def test_dataframe_uses_the_cache(tmp_path):
    counting = CountingExec(tmp_path / "calls.log")
    memo = memo_at(tmp_path, exec_fn=counting)
    memo.run({"alpha": 1}, SPEC)
    assert counting.count() == 6
    df = memo.to_dataframe({"alpha": 1}, SPEC)
    assert counting.count() == 6
    assert list(df.columns) == ["a", "b", "point", "alpha", "pid_free"]
    assert list(df["point"]) == list(zip(df["a"], df["b"], strict=True))
    assert set(df["alpha"]) == {1}


def test_echoed_fields_are_dropped_and_differing_ones_renamed(tmp_path):
    memo = memo_at(tmp_path, exec_fn=echo_exec)
    df = memo.to_dataframe({}, SPEC)
    assert list(df.columns) == ["a", "b", "b_output", "total"]
    assert all(df["b_output"] == df["b"] * 2)
    assert all(df["total"] == df["a"] + df["b"])


def test_dataframe_custom_enumerator_with_point_to_dict(tmp_path):
    memo = memo_at(
        tmp_path,
        {"x": 2, "y": 1},
        exec_fn=triangle_exec,
        enumerate_points=upper_triangle,
    )
    spec = {"x": [1, 2, 3], "y": [1, 2, 3]}
    df = memo.to_dataframe({}, spec, point_to_dict=point_to_xy)
    assert list(df.columns) == ["x", "y", "diff"]
    assert sorted(df.itertuples(index=False, name=None)) == [
        (1, 1, 0), (1, 2, 1), (1, 3, 2), (2, 2, 0), (2, 3, 1), (3, 3, 0)
    ]  # fmt: skip


def test_point_to_dict_extra_keys_become_columns(tmp_path):
    memo = memo_at(tmp_path, exec_fn=replicate_exec, enumerate_points=replicate_enumerate)
    df = memo.to_dataframe({}, SPEC, lambda p: {"a": p[0], "b": p[1], "seed": p[2]})
    assert list(df.columns) == ["a", "b", "seed", "value"]
    assert len(df) == 12
    assert all(df["value"] == df["a"] + df["b"] + df["seed"])


def test_custom_tuples_in_another_order_need_point_to_dict(tmp_path):
    memo = memo_at(
        tmp_path,
        {"strat": 1, "s": 3},
        exec_fn=seed_exec,
        enumerate_points=seed_enumerate,
        axis_order=["s", "strat"],
    )
    spec = {"strat": ["aaa", "bb"], "s": [1, 2, 3, 4]}
    with pytest.raises(SpecError, match="point_to_dict"):
        memo.to_dataframe({}, spec)
    df = memo.to_dataframe({}, spec, point_to_dict=lambda p: {"strat": p[0], "s": p[1]})
    assert list(df.columns) == ["s", "strat", "score"]
    assert all(df["score"] == df["strat"].str.len() + df["s"])
    assert len(df) == 8


def test_failed_points_keep_their_row_with_nan_and_the_error(tmp_path):
    memo = memo_at(tmp_path, exec_fn=fail_on_two, on_error="skip")
    df = memo.to_dataframe({}, SPEC)
    assert list(df["a"]) == [1, 1, 2, 2, 3, 3]
    good = df["error"].isna()
    assert list(good) == [True, True, False, False, True, True]
    assert all(df["value"][good] == df["a"][good] + df["b"][good])
    assert df["value"][~good].isna().all()
    assert df["error"][~good].str.startswith("ValueError: ").all()


def test_empty_axis_gives_an_empty_frame(tmp_path):
    df = memo_at(tmp_path).to_dataframe({}, {"a": [], "b": [1]})
    assert list(df.columns) == ["a", "b"]
    assert len(df) == 0


def test_custom_tuples_must_hold_split_spec_values(tmp_path):
    def off_grid(params, split_spec):
        return [(a, b + 1) for a in split_spec["a"] for b in split_spec["b"]]

    memo = memo_at(tmp_path, exec_fn=scalar_exec, enumerate_points=off_grid)
    with pytest.raises(SpecError, match=r"not in split_spec\['b'\]"):
        memo.to_dataframe({}, SPEC)
    short = memo_at(tmp_path / "b", exec_fn=identity_exec, enumerate_points=replicate_enumerate)
    with pytest.raises(SpecError, match="has 3 values"):
        short.to_dataframe({}, SPEC)


def test_point_to_dict_must_return_a_mapping(tmp_path):
    memo = memo_at(tmp_path, exec_fn=scalar_exec)
    with pytest.raises(SpecTypeError, match="point_to_dict must return a dict"):
        memo.to_dataframe({}, SPEC, point_to_dict=list)


def test_the_memo_methods_show_the_pairs_of_the_pipeline(tmp_path):
    pytest.importorskip("xarray")
    memo = memo_at(tmp_path, exec_fn=scalar_exec, collate_fn=sum, merge_fn=sum)
    df = memo.to_dataframe({}, SPEC)
    pairs = memo._requests().pairs({}, SPEC, load_only=True)
    assert df.equals(to_dataframe(pairs, SPEC, ("a", "b"), default_points=True))
    assert list(df["value"]) == [110, 120, 210, 220, 310, 320]
    ds = memo.to_xarray({}, SPEC, load_only=True)
    assert ds.identical(to_xarray(pairs, SPEC, ("a", "b"), default_points=True))
    assert ds["value"].dims == ("a", "b")
    assert ds["value"].values.tolist() == [[110, 120], [210, 220], [310, 320]]
    custom = memo_at(
        tmp_path, {"x": 2, "y": 2}, exec_fn=triangle_exec, enumerate_points=upper_triangle
    )
    spec = {"x": [1, 2], "y": [1, 2]}
    assert len(custom.to_dataframe({}, spec, point_to_xy, load_only=True)) == 0
    assert list(custom.to_dataframe({}, spec, point_to_xy)["diff"]) == [0, 1, 0]
    ds = custom.to_xarray({}, spec, point_to_xy, load_only=True)
    assert ds["diff"].values.tolist()[0] == [0, 1]


def test_plain_pairs_make_a_frame_without_any_memo():
    pytest.importorskip("xarray")
    pairs = [((2, "v"), {"s": 1.5}), ((1, "u"), {"s": 0.5})]
    spec = {"a": [1, 2], "b": ["u", "v"]}
    df = to_dataframe(pairs, spec, ("a", "b"), default_points=True)
    assert df.to_dict("list") == {"a": [1, 2], "b": ["u", "v"], "s": [0.5, 1.5]}
    custom = to_dataframe(pairs, spec, ("a", "b"), default_points=False)
    assert list(custom["a"]) == [2, 1]  # a custom enumerator's order is kept
    ds = to_xarray(pairs, spec, ("a", "b"), default_points=True)
    assert ds["s"].sel(a=2, b="v").item() == 1.5
    assert math.isnan(ds["s"].sel(a=1, b="v").item())
    with pytest.raises(SpecError, match="no list for axis 'c'"):
        to_dataframe(pairs, spec, ("a", "b", "c"), default_points=True)


# ------------------------------------------------------------------ load_only


def test_load_only_lists_only_stored_points_and_executes_nothing(tmp_path):
    counting = CountingExec(tmp_path / "calls.log")
    memo = memo_at(tmp_path, {"a": 2, "b": 2}, exec_fn=counting)
    params = {"alpha": 0}
    assert len(memo.to_dataframe(params, SPEC, load_only=True)) == 0
    # store a sub-grid whose chunks cut across the requested ones
    memo.run(params, {"a": [2, 3], "b": [20]})
    assert counting.count() == 2
    df = memo.to_dataframe(params, SPEC, load_only=True)
    assert counting.count() == 2
    assert sorted(zip(df["a"], df["b"], strict=True)) == [(2, 20), (3, 20)]
    assert list(df["point"]) == list(zip(df["a"], df["b"], strict=True))
    full = memo.to_dataframe(params, SPEC)
    assert counting.count() == 6
    assert len(full) == 6
    assert memo.to_dataframe(params, SPEC, load_only=True).equals(full)


def test_load_only_with_a_custom_enumerator(tmp_path):
    memo = memo_at(
        tmp_path, {"x": 3, "y": 3}, exec_fn=triangle_exec, enumerate_points=upper_triangle
    )
    memo.run({}, {"x": [1, 2], "y": [2, 3]})
    spec = {"x": [1, 2, 3], "y": [1, 2, 3]}
    df = memo.to_dataframe({}, spec, point_to_xy, load_only=True)
    assert sorted(df.itertuples(index=False, name=None)) == [
        (1, 2, 1),
        (1, 3, 2),
        (2, 2, 0),
        (2, 3, 1),
    ]
    ds = memo.to_xarray({}, spec, point_to_xy, load_only=True)
    assert ds["diff"].sel(x=1, y=3).item() == 2
    assert math.isnan(ds["diff"].sel(x=1, y=1).item())
    assert math.isnan(ds["diff"].sel(x=3, y=3).item())


# ------------------------------------------------------------------ xarray


def test_xarray_dims_coords_and_values(tmp_path):
    pytest.importorskip("xarray")
    memo = memo_at(tmp_path, axis_order=("b", "a"))
    spec = {"a": [3, 1, 2], "b": [20, 10]}
    ds = memo.to_xarray({"k": 5}, spec)
    assert ds["sum"].dims == ("b", "a")
    assert dict(ds.sizes) == {"b": 2, "a": 3}
    assert list(ds["a"].values) == [3, 1, 2]
    assert list(ds["b"].values) == [20, 10]
    assert set(ds.data_vars) == {"sum", "prod"}
    for a, b in itertools.product(spec["a"], spec["b"]):
        assert ds["sum"].sel(a=a, b=b).item() == a + b + 5
        assert ds["prod"].sel(a=a, b=b).item() == a * b
    assert ds["sum"].dtype.kind == "i"
    assert ds["sum"].values.tolist() == [[28, 26, 27], [18, 16, 17]]


def test_xarray_scalar_outputs_and_string_coords(tmp_path):
    pytest.importorskip("xarray")
    memo = memo_at(tmp_path, {"strat": 1, "s": 3}, exec_fn=scalar_len_exec)
    ds = memo.to_xarray({}, {"strat": ["aaa", "bb"], "s": [1, 2, 3, 4]})
    assert list(ds.data_vars) == ["value"]
    assert ds["value"].dims == ("strat", "s")  # memo_chunk_spec's key order
    assert ds["value"].sel(strat="aaa", s=4).item() == 7
    assert ds["value"].sel(strat="bb", s=1).item() == 3


def scalar_len_exec(params, point):
    strat, s = point
    return len(strat) + s


def test_xarray_skipped_points_are_nan(tmp_path):
    pytest.importorskip("xarray")
    memo = memo_at(
        tmp_path, {"x": 2, "y": 2}, exec_fn=triangle_exec, enumerate_points=upper_triangle
    )
    ds = memo.to_xarray({}, {"x": [1, 2, 3], "y": [1, 2, 3]}, point_to_dict=point_to_xy)
    assert ds["diff"].dims == ("x", "y")
    assert ds["diff"].sel(x=1, y=3).item() == 2
    assert ds["diff"].sel(x=2, y=2).item() == 0
    assert math.isnan(ds["diff"].sel(x=3, y=1).item())
    assert int(ds["diff"].isnull().sum()) == 3


def test_xarray_load_only_missing_points_are_nan(tmp_path):
    pytest.importorskip("xarray")
    memo_at(tmp_path, exec_fn=scalar_exec).run({}, {"a": [1, 3], "b": [10, 20]})
    reader = memo_at(tmp_path, exec_fn=None)  # cannot execute: load_only must not try
    ds = reader.to_xarray({}, SPEC, load_only=True)
    assert ds["value"].sel(a=3, b=20).item() == 320
    assert ds["value"].sel(a=1, b=10).item() == 110
    assert math.isnan(ds["value"].sel(a=2, b=10).item())
    assert ds["value"].dtype.kind == "f"


def test_xarray_failed_points_are_nan_and_good_points_stored(tmp_path):
    pytest.importorskip("xarray")
    memo = memo_at(tmp_path, exec_fn=fail_on_two, on_error="skip")
    ds = memo.to_xarray({}, SPEC)
    assert ds["value"].sel(a=3, b=20).item() == 23
    assert ds["value"].isnull().values.tolist() == [[False, False], [True, True], [False] * 2]
    # the good points of a chunk with a failed point are stored (a partial chunk)
    stored = memo.to_xarray({}, SPEC, load_only=True)
    assert stored["value"].isnull().values.tolist() == [[False, False], [True, True], [False] * 2]
    assert stored["value"].sel(a=3, b=10).item() == 13


def test_xarray_point_values_must_be_in_split_spec(tmp_path):
    pytest.importorskip("xarray")
    memo = memo_at(
        tmp_path, {"x": 2, "y": 2}, exec_fn=triangle_exec, enumerate_points=upper_triangle
    )
    with pytest.raises(SpecError, match=r"not in split_spec\['x'\]"):
        memo.to_xarray({}, {"x": [1], "y": [1]}, lambda p: {"x": 5, "y": p["y"]})


def test_xarray_refuses_two_points_on_one_cell(tmp_path):
    pytest.importorskip("xarray")
    memo = memo_at(tmp_path, exec_fn=replicate_exec, enumerate_points=replicate_enumerate)
    with pytest.raises(SpecError, match="same axis values"):
        memo.to_xarray({}, SPEC, lambda p: {"a": p[0], "b": p[1]})


def test_xarray_point_to_dict_must_give_every_axis(tmp_path):
    pytest.importorskip("xarray")
    memo = memo_at(
        tmp_path, {"x": 2, "y": 2}, exec_fn=triangle_exec, enumerate_points=upper_triangle
    )
    with pytest.raises(SpecError, match="axis 'y'"):
        memo.to_xarray({}, {"x": [1], "y": [1]}, point_to_dict=lambda p: {"x": p["x"]})


# ------------------------------------------------------------------ array outputs


def spectrum_exec(params, point):
    import numpy as np

    a, b = point
    return np.arange(4, dtype=float) * a + b


def energy_exec(params, point):
    import numpy as np

    a, b = point
    return {"energy": np.full((2, 3), a * b, dtype=np.int64), "count": a, "t": np.arange(3.0)}


def ragged_exec(params, point):
    import numpy as np

    a, _ = point
    return np.arange(a)


def spectra(spec):
    np = pytest.importorskip("numpy")
    return np.stack([spectrum_exec({}, p) for p in itertools.product(spec["a"], spec["b"])])


def test_xarray_array_outputs_are_numeric_with_a_dim_per_array_axis(tmp_path):
    pytest.importorskip("xarray")
    np = pytest.importorskip("numpy")
    ds = memo_at(tmp_path, exec_fn=spectrum_exec).to_xarray({}, SPEC)
    value = ds["value"]
    assert value.dims == ("a", "b", "value_dim_0")
    assert value.shape == (3, 2, 4)
    assert value.dtype == np.float64
    assert value.mean().item() == pytest.approx(np.mean(spectra(SPEC)))
    assert value.mean("value_dim_0").sel(a=3, b=20).item() == pytest.approx(3 * 1.5 + 20)
    assert value.sel(a=2, b=10).values.tolist() == [10.0, 12.0, 14.0, 16.0]


def test_xarray_dict_array_fields_get_dims_named_after_the_field(tmp_path):
    pytest.importorskip("xarray")
    ds = memo_at(tmp_path, exec_fn=energy_exec).to_xarray({}, SPEC)
    assert ds["energy"].dims == ("a", "b", "energy_dim_0", "energy_dim_1")
    assert ds["energy"].dtype.kind == "i"
    assert ds["t"].dims == ("a", "b", "t_dim_0")
    assert ds["count"].dims == ("a", "b")
    assert ds["energy"].sel(a=3, b=20).sum().item() == 6 * 60


def test_array_dims_names_the_extra_dims_and_may_share_them(tmp_path):
    pytest.importorskip("xarray")
    memo = memo_at(tmp_path, exec_fn=energy_exec)
    dims = {"energy": ("row", "k"), "t": ("k",)}
    ds = memo.to_xarray({}, SPEC, array_dims=dims)
    assert ds["energy"].dims == ("a", "b", "row", "k")
    assert ds["t"].dims == ("a", "b", "k")
    assert dict(ds.sizes) == {"a": 3, "b": 2, "row": 2, "k": 3}
    spectrum = memo_at(tmp_path / "spectrum", exec_fn=spectrum_exec)
    freq = spectrum.to_xarray({}, SPEC, array_dims={"value": ["freq"]})
    assert freq["value"].dims == ("a", "b", "freq")


@pytest.mark.parametrize(
    ("array_dims", "error", "message"),
    [
        ({"value": ("x", "y")}, SpecError, r"array_dims\['value'\] gives 2 dimension names"),
        ({"value": ()}, SpecError, r"gives 0 dimension names \[\], but 'value' holds arrays "),
        ({"values": ("x",)}, SpecError, r"array_dims names 'values'.*\['value'\]"),
        ({"value": "freq"}, SpecTypeError, r"tuple of dimension names.*got str 'freq'"),
        ({"value": ("a",)}, SpecError, r"dimension name 'a' .* is already an axis"),
        ({"value": ("k", "k")}, SpecError, r"repeats a name"),
        ([("value", ("k",))], SpecTypeError, r"array_dims must be a dict"),
    ],
)
def test_bad_array_dims_are_clear_errors(tmp_path, array_dims, error, message):
    pytest.importorskip("xarray")
    memo = memo_at(tmp_path, exec_fn=spectrum_exec)
    with pytest.raises(error, match=message):
        memo.to_xarray({}, SPEC, array_dims=array_dims)
    with pytest.raises(error, match=message):
        memo.to_dataframe({}, SPEC, array_dims=array_dims)


def test_xarray_arrays_of_different_shapes_name_the_field_and_both_shapes(tmp_path):
    pytest.importorskip("xarray")
    memo = memo_at(tmp_path, exec_fn=ragged_exec)
    message = r"'value' holds arrays of different shapes: \(1,\) at point \(1, 10\) and \(2,\)"
    with pytest.raises(SpecError, match=message):
        memo.to_xarray({}, SPEC)


def test_xarray_refuses_arrays_mixed_with_other_values():
    pytest.importorskip("xarray")
    np = pytest.importorskip("numpy")
    pairs = [((1,), np.zeros(2)), ((2,), 5.0)]
    with pytest.raises(SpecError, match=r"'value' is an array at point \(1,\) but a float"):
        to_xarray(pairs, {"a": [1, 2]}, ("a",), default_points=True)


def test_xarray_missing_points_of_array_fields_are_nan(tmp_path):
    pytest.importorskip("xarray")
    np = pytest.importorskip("numpy")
    memo_at(tmp_path, exec_fn=energy_exec).run({}, {"a": [1, 3], "b": [10, 20]})
    ds = memo_at(tmp_path, exec_fn=None).to_xarray({}, SPEC, load_only=True)
    energy = ds["energy"]
    assert energy.dtype == np.float64  # int arrays with holes
    assert energy.isnull().sel(a=2).all().item()
    assert not energy.isnull().sel(a=3).any().item()
    assert energy.sel(a=3, b=20).values.tolist() == [[60.0] * 3] * 2
    assert energy.mean().item() == pytest.approx(np.mean([10, 20, 30, 60]))


def test_dataframe_array_outputs_give_a_row_per_element(tmp_path):
    np = pytest.importorskip("numpy")
    df = memo_at(tmp_path, exec_fn=spectrum_exec).to_dataframe({}, SPEC)
    assert list(df.columns) == ["a", "b", "value_dim_0", "value"]
    assert len(df) == 6 * 4
    assert list(df["value_dim_0"][:5]) == [0, 1, 2, 3, 0]
    assert df["value"].dtype == np.float64
    assert df["value"].mean() == pytest.approx(np.mean(spectra(SPEC)))
    row = df[(df["a"] == 2) & (df["b"] == 10)]
    assert list(row["value"]) == [10.0, 12.0, 14.0, 16.0]


def test_dataframe_names_dims_by_keyword_and_takes_ragged_arrays(tmp_path):
    memo = memo_at(tmp_path, exec_fn=ragged_exec)
    df = memo.to_dataframe({}, SPEC, array_dims={"value": ("i",)})
    assert list(df.columns) == ["a", "b", "i", "value"]
    assert len(df) == (1 + 2 + 3) * 2  # point (a, b) has a elements
    assert list(df["i"]) == list(df["value"])


def test_dataframe_agrees_with_the_xarray_long_format(tmp_path):
    pytest.importorskip("xarray")
    memo = memo_at(tmp_path, exec_fn=energy_exec)
    dims = {"energy": ("row", "k"), "t": ("k",)}
    df = memo.to_dataframe({}, SPEC, array_dims=dims)
    assert list(df.columns) == ["a", "b", "row", "k", "energy", "count", "t"]
    assert len(df) == 6 * 2 * 3  # arrays sharing "k" are read side by side
    expected = memo.to_xarray({}, SPEC, array_dims=dims).to_dataframe().reset_index()
    assert df.equals(expected[list(df.columns)])


def test_dataframe_crosses_arrays_along_different_dims(tmp_path):
    df = memo_at(tmp_path, exec_fn=energy_exec).to_dataframe({}, SPEC)
    dims = ["energy_dim_0", "energy_dim_1", "t_dim_0"]
    assert list(df.columns) == ["a", "b", *dims, "energy", "count", "t"]
    assert len(df) == 6 * 2 * 3 * 3


# ------------------------------------------------------------------ optional dependencies


def test_missing_pandas_names_the_extra_before_computing_anything(tmp_path, monkeypatch):
    counting = CountingExec(tmp_path / "calls.log")
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"swarm-memo\[pandas\]"):
        memo_at(tmp_path, exec_fn=counting).to_dataframe({}, SPEC)
    with pytest.raises(ImportError, match=r"swarm-memo\[pandas\]"):
        to_dataframe([], SPEC, ("a", "b"), default_points=True)
    assert counting.count() == 0


def test_missing_xarray_names_the_extra_before_computing_anything(tmp_path, monkeypatch):
    counting = CountingExec(tmp_path / "calls.log")
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(ImportError, match=r"swarm-memo\[xarray\]"):
        memo_at(tmp_path, exec_fn=counting).to_xarray({}, SPEC)
    assert counting.count() == 0


def test_import_swarm_memo_stays_light():
    code = (
        "import sys, swarm_memo, swarm_memo.collate, swarm_memo.frames.frames\n"
        "print(sorted(m for m in ('numpy', 'pandas', 'xarray') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_dataframe_example_runs_computes_each_point_once_and_cleans_up(tmp_path) -> None:
    import os
    from pathlib import Path

    script = Path(__file__).parents[1] / "examples" / "dataframe.py"
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # where its temporary cache goes
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=env,
    )
    assert "cached: 15 of 15 points" in result.stdout
    assert "15 rows from run(), 0 points executed" in result.stdout
    assert "amplitude at resonance:" in result.stdout
    assert "ring-down dims: {'damping': 3, 'frequency': 5, 'time': 5}" in result.stdout
    assert list(tmp_path.iterdir()) == []
