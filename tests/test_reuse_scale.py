"""Point reuse at scale: a request costs what it asks for, never what the cache holds.

Behaviour, not time: stored values are keyed only for bins that may overlap a request
(counted by patching), the LRU of loaded files is bounded in bytes (a tiny bound still
serves correct outputs), and reuse stays exact on rebinned, subset and inserted grids of
ints, floats (NaN, -0.0), strings and mixed types.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import pytest

from helpers import expected_output, grid_points
from swarm_memo import SwarmMemo
from swarm_memo.cache import index as _index
from swarm_memo.cache import reuse as _reuse
from swarm_memo.cache.binindex import value_key
from swarm_memo.cache.index import IndexRecord, PointIndex
from swarm_memo.cache.params_set import ParamsSet
from swarm_memo.identity.hashing import encode

PARAMS = {"alpha": 3}
NAN = float("nan")


def make(tmp_path, counting, spec, **kwargs):
    options = {"exec_fn": counting, "max_workers": 1, "verbose": 0, "exec_chunk_size": 4}
    options.update(kwargs)
    return SwarmMemo(tmp_path / "cache", spec, **options)


def run_and_check(memo, counting, split, new_points):
    """Run; outputs equal a recomputation (NaN-safe) and exactly ``new_points`` ran."""
    counting.reset()
    output, diag = memo.run(PARAMS, split)
    expected = [expected_output(PARAMS, p) for p in grid_points(split, memo.axis_order)]
    assert encode(output) == encode(expected)  # canonical: every NaN is the same NaN
    assert sorted(counting.calls()) == sorted(repr(p) for p in new_points)
    return diag


@pytest.fixture
def keyed(monkeypatch):
    """Every stored bin whose values the point index keys (a list of those values)."""
    seen: list[list[Any]] = []
    original = _index.value_keys

    def counting_value_keys(values):
        seen.append(list(values))
        return original(values)

    monkeypatch.setattr(_index, "value_keys", counting_value_keys)
    return seen


# ---------------------------------------------------------------- only overlapping bins


def test_request_that_overlaps_no_stored_bin_keys_no_stored_value(tmp_path, counting, keyed):
    memo = make(tmp_path, counting, {"x": 3, "s": 2})
    memo.run(PARAMS, {"x": [0.5, 1.5, 2.5, 3.5, 4.5, 5.5], "s": ["a", "b", "c", "d"]})
    run_and_check(memo, counting, {"x": [9.5], "s": ["a", "b"]}, [(9.5, "a"), (9.5, "b")])
    run_and_check(memo, counting, {"x": [0.5], "s": ["q"]}, [(0.5, "q")])
    assert keyed == []


def test_only_the_stored_bins_that_may_overlap_are_keyed(tmp_path, counting, keyed):
    memo = make(tmp_path, counting, {"x": 3})
    memo.run(PARAMS, {"x": [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5]})
    rebinned = make(tmp_path, counting, {"x": 2})
    run_and_check(rebinned, counting, {"x": [3.5, 4.0]}, [(4.0,)])
    assert keyed == [[3.5, 4.5, 5.5]]


def test_int_bins_are_matched_by_arithmetic_without_keying(tmp_path, counting, keyed):
    memo = make(tmp_path, counting, {"a": 5, "b": 2})
    memo.run(PARAMS, {"a": list(range(20)), "b": [0, 1, 2, 3]})
    rebinned = make(tmp_path, counting, {"a": 7, "b": 4})
    grown = {"a": [*range(20), 20], "b": [0, 1, 2, 3]}
    diag = run_and_check(rebinned, counting, grown, [(20, b) for b in range(4)])
    assert diag.reused_points == 80
    assert keyed == []


def test_one_new_point_against_many_files_touches_no_stored_value(tmp_path, counting, keyed):
    memo = make(tmp_path, counting, {"a": 4}, exec_chunk_size=100)
    memo.run(PARAMS, {"a": [i * 0.25 for i in range(200)]})  # 50 files of float bins
    diag = run_and_check(memo, counting, {"a": [1000.0]}, [(1000.0,)])
    assert diag.reused_points == 0
    assert keyed == []


# ---------------------------------------------------------------- the LRU, in bytes


def count_loads(monkeypatch) -> list[str]:
    loads: list[str] = []
    original = ParamsSet.load

    def load(self, name, expected_key=None):
        loads.append(name)
        return original(self, name, expected_key)

    monkeypatch.setattr(ParamsSet, "load", load)
    return loads


@pytest.mark.parametrize(("lru_bytes", "loads_expected"), [(_reuse.LRU_BYTES, 2), (1, 4)])
def test_reuse_lru_evicts_by_bytes_and_outputs_stay_right(
    tmp_path, counting, monkeypatch, lru_bytes, loads_expected
):
    # files F1 = (a 1-2, b 1-2) and F2 = (a 1-2, b 3-4); each requested chunk (one a, all b)
    # needs both, so a bound too small for two files loads each of them twice
    make(tmp_path, counting, {"a": 2, "b": 2}).run(PARAMS, {"a": [1, 2], "b": [1, 2, 3, 4]})
    monkeypatch.setattr(_reuse, "LRU_BYTES", lru_bytes)
    loads = count_loads(monkeypatch)
    rebinned = make(tmp_path, counting, {"a": 1, "b": 4})
    diag = run_and_check(rebinned, counting, {"a": [1, 2], "b": [1, 2, 3, 4]}, [])
    assert diag.reused_points == 8
    assert len(loads) == loads_expected
    assert len(set(loads)) == 2


def test_a_file_bigger_than_the_lru_is_still_served(tmp_path, counting, monkeypatch):
    make(tmp_path, counting, {"a": 6}).run(PARAMS, {"a": list(range(6))})
    monkeypatch.setattr(_reuse, "LRU_BYTES", 0)
    run_and_check(make(tmp_path, counting, {"a": 2}), counting, {"a": list(range(7))}, [(6,)])


# ---------------------------------------------------------------- exact reuse, any type

STORED = {
    "f": [0.0, -0.0, 0.5, NAN, 1e300, -2.5],
    "s": ["", "a", "é", "zz"],
    "m": [1, 1.0, True, "1", None, (1, 2)],
}


@pytest.mark.parametrize(
    ("split", "new"),
    [
        pytest.param(STORED, [], id="rebinned"),
        pytest.param({"f": [NAN, 0.5], "s": ["zz"], "m": [True, None]}, [], id="subset"),
        pytest.param(
            {"f": [-0.0, 0.25, 0.0], "s": ["a"], "m": [(1, 2), 1]},
            [(0.25, "a", (1, 2)), (0.25, "a", 1)],
            id="inserted",
        ),
        pytest.param(
            {"f": [0.0], "s": ["a"], "m": [False, 1.5, 2]},
            [(0.0, "a", False), (0.0, "a", 1.5), (0.0, "a", 2)],
            id="equal-but-other-types",
        ),
    ],
)
def test_reuse_of_float_string_and_mixed_axes(tmp_path, counting, split, new):
    make(tmp_path, counting, {"f": 2, "s": 3, "m": 4}).run(PARAMS, STORED)
    rebinned = make(tmp_path, counting, {"f": 3, "s": 1, "m": 2})
    as_points = [dict(zip("fsm", values, strict=True)) for values in new]
    new_points = [tuple(p[axis] for axis in rebinned.axis_order) for p in as_points]
    diag = run_and_check(rebinned, counting, split, new_points)
    assert diag.executed_points == len(new)


def test_numpy_values_reuse_points_stored_as_python_values(tmp_path, counting):
    np = pytest.importorskip("numpy")
    make(tmp_path, counting, {"i": 3, "x": 2}).run(
        PARAMS, {"i": [1, 2, 3, 4], "x": [0.5, 1.5, NAN]}
    )
    counting.reset()
    request = {"i": list(np.arange(1, 5, dtype=np.int32)), "x": list(np.array([NAN, 0.5]))}
    output, diag = make(tmp_path, counting, {"i": 4, "x": 1}).run(PARAMS, request)
    assert counting.count() == 0
    assert diag.reused_points == 8
    assert len(output) == 8


# ---------------------------------------------------------------- the index, directly


def brute_force(records: dict[str, IndexRecord], axes, bins) -> dict[int, tuple[str, int]]:
    """Request position -> (first file in name order, position there), by encodings."""
    where: dict[tuple[bytes, ...], tuple[str, int]] = {}
    for name, record in sorted(records.items()):
        order = sorted(range(len(record.axes)), key=lambda k: record.axes[k])
        for pos, point in enumerate(itertools.product(*record.bins)):
            key = tuple(encode(point[k]) for k in order)
            where.setdefault(key, (name, pos))
    order = sorted(range(len(axes)), key=lambda k: axes[k])
    found = {}
    for pos, point in enumerate(itertools.product(*bins)):
        hit = where.get(tuple(encode(point[k]) for k in order))
        if hit is not None:
            found[pos] = hit
    return found


POOL = [0, 1, 2, 3, 5, 8, -1, 1.0, 0.0, -0.0, NAN, 2.5, True, False, "1", "a", "b", None, (1,)]


def random_bin(rng: random.Random, size: int) -> Any:
    if rng.random() < 0.3:  # a run of ints, as ``compact_key`` stores it
        start, step = rng.randint(-3, 3), rng.choice([1, 2, -1])
        return range(start, start + step * size, step)
    values: list[Any] = []
    for value in rng.sample(POOL, len(POOL)):
        if all(encode(value) != encode(v) for v in values):
            values.append(value)
    return tuple(values[:size])


@pytest.mark.parametrize("seed", range(40))
def test_point_index_agrees_with_brute_force_on_random_bins(seed):
    rng = random.Random(seed)
    records = {}
    for k in range(rng.randint(1, 6)):
        axes = ("a", "b") if rng.random() < 0.5 else ("b", "a")
        bins = tuple(random_bin(rng, rng.randint(1, 4)) for _ in axes)
        records[f"f{k}"] = IndexRecord(axes, bins, None, b"")
    index = PointIndex(records)
    for _ in range(3):  # later requests hit the index's caches
        axes = ("a", "b") if rng.random() < 0.5 else ("b", "a")
        bins = [tuple(random_bin(rng, rng.randint(1, 5))) for _ in axes]
        for _ in range(2):  # the same bin objects again: from the request cache
            found = {
                req: (name, file_pos)
                for name, reqs, files in index.locate_product(axes, bins)
                for req, file_pos in zip(reqs, files, strict=True)
            }
            assert found == brute_force(records, axes, bins)


def test_value_keys_are_equal_exactly_when_encodings_are():
    values = [0, 1, -1, 2**70, 1.0, 0.0, -0.0, NAN, -NAN, True, False, "1", "", b"1", None]
    values += [(1,), [1], math.inf]
    for left, right in itertools.product(values, repeat=2):
        same_key = value_key(left) == value_key(right)
        assert same_key == (encode(left) == encode(right)), (left, right)


def test_mark_run_takes_a_range_as_the_run_and_checks_a_list() -> None:
    """Positions found as a range (a run of shared int values) are marked in one slice;
    a list of the same length and ends that is not the run marks nothing."""
    missing = _reuse.MISSING
    outputs: list[object] = [missing] * 6
    assert _reuse._mark_run(outputs, range(1, 4), "x")
    assert outputs == [missing, "x", "x", "x", missing, missing]
    assert not _reuse._mark_run(outputs, range(1, 3), "y")  # already marked: nothing
    assert not _reuse._mark_run(outputs, range(0, 6, 2), "z")  # step 2: not a run
    assert outputs == [missing, "x", "x", "x", missing, missing]
    fresh: list[object] = [missing] * 3
    assert not _reuse._mark_run(fresh, [0, 0, 2], "z")  # length and ends of a run: not one
    assert fresh == [missing] * 3
    assert _reuse._mark_run(outputs, [4, 5], "w")
    assert outputs[4:] == ["w", "w"]


def test_found_runs_of_a_rebinned_int_request_are_ranges() -> None:
    """The usual overlap of two int bins is found as ranges, never built as lists; the
    positions are those of the shared values."""
    records = {
        "a": IndexRecord(("i",), (tuple(range(0, 10)),), None, b"", "code"),
        "b": IndexRecord(("i",), (tuple(range(10, 20)),), None, b"", "code"),
    }
    found = PointIndex(records).locate_product(["i"], [tuple(range(5, 15))])
    assert [(name, list(req), list(files)) for name, req, files in found] == [
        ("a", list(range(0, 5)), list(range(5, 10))),
        ("b", list(range(5, 10)), list(range(0, 5))),
    ]
    assert all(isinstance(req, range) for _, req, _ in found)
