"""Point-level reuse: exec_fn runs once per point ever stored, whatever the grid becomes."""

from __future__ import annotations

import itertools
import shutil

import pytest

from helpers import expected_output, grid_expected
from swarm_memo import CacheMissError, CacheWarning, SwarmMemo
from swarm_memo.cache import reuse as _reuse
from swarm_memo.cache.index import IndexLog
from swarm_memo.stores.local import LocalStore

PARAMS = {"alpha": 7}


def make(tmp_path, counting, spec, **kwargs):
    options = {"exec_fn": counting, "max_workers": 1, "verbose": 0, "exec_chunk_size": 3}
    options.update(kwargs)
    return SwarmMemo(tmp_path / "cache", spec, **options)


def points_of(split_spec, axes):
    return list(itertools.product(*(split_spec[a] for a in axes)))


def flat_expected(memo, split_spec):
    """What run() must return: grid order over the memo's axis order."""
    return grid_expected(PARAMS, split_spec, memo.axis_order)


def check(memo, counting, split_spec, new_points):
    """Run, compare with a plain recomputation, and check exactly new_points executed."""
    counting.reset()
    output, diag = memo.run(PARAMS, split_spec)
    assert output == flat_expected(memo, split_spec)
    assert sorted(counting.calls()) == sorted(repr(p) for p in new_points)
    assert diag.executed_points == len(new_points)
    assert diag.cached_points + diag.executed_points == diag.total_points
    assert diag.cached_chunks + diag.executed_chunks == diag.total_chunks
    return diag


def test_appending_to_an_axis_executes_only_the_new_points(tmp_path, counting):
    memo = make(tmp_path, counting, {"a": 2, "b": 3})
    spec = {"a": [1, 2, 3], "b": [10, 20, 30, 40]}
    memo.run(PARAMS, spec)
    grown = {"a": [1, 2, 3], "b": [10, 20, 30, 40, 50]}  # the last b-bin [40] becomes [40, 50]
    diag = check(memo, counting, grown, [(a, 50) for a in (1, 2, 3)])
    assert diag.reused_points == 3  # the (a, 40) points, from the old [40] chunk files


def test_mid_list_insertion_executes_only_the_new_point(tmp_path, counting):
    memo = make(tmp_path, counting, {"a": 2, "b": 2})
    memo.run(PARAMS, {"a": [1, 2], "b": [10, 20, 30, 40, 50, 60]})
    inserted = {"a": [1, 2], "b": [10, 15, 20, 30, 40, 50, 60]}  # every later bin shifts
    diag = check(memo, counting, inserted, [(1, 15), (2, 15)])
    assert diag.executed_chunks == 1
    assert diag.reused_points == 12


def test_changing_a_bin_size_executes_nothing_and_writes_nothing(tmp_path, counting):
    spec = {"a": list(range(6)), "b": list(range(5))}
    make(tmp_path, counting, {"a": 2, "b": 2}).run(PARAMS, spec)
    files = sorted((tmp_path / "cache").rglob("*.chunk"))
    rebinned = make(tmp_path, counting, {"a": 3, "b": 5})
    for _ in range(2):
        diag = check(rebinned, counting, spec, [])
        assert (diag.cached_chunks, diag.executed_chunks, diag.reused_points) == (2, 0, 30)
        assert diag.stream_flushes == 0  # served from the stored files, never copied
    assert sorted((tmp_path / "cache").rglob("*.chunk")) == files
    rebinned.compact(PARAMS, spec)  # the one call that rewrites into this layout
    diag = check(rebinned, counting, spec, [])
    assert (diag.reused_points, diag.stream_flushes) == (0, 0)


def test_subset_and_reordered_axis_execute_nothing(tmp_path, counting):
    memo = make(tmp_path, counting, {"a": 3, "b": 2})
    memo.run(PARAMS, {"a": [1, 2, 3, 4, 5, 6], "b": ["x", "y", "z"]})
    check(memo, counting, {"a": [2, 5], "b": ["z"]}, [])
    check(memo, counting, {"a": [6, 5, 4, 3, 2, 1], "b": ["z", "x", "y"]}, [])


def test_new_value_on_one_axis_of_a_three_axis_grid(tmp_path, counting):
    memo = make(tmp_path, counting, {"a": 2, "b": 2, "c": 3})
    spec = {"a": [1, 2, 3], "b": [1.5, 2.5], "c": ["p", "q", "r", "s"]}
    memo.run(PARAMS, spec)
    bigger = {"a": [1, 2, 3], "b": [1.5, 2.0, 2.5], "c": ["p", "q", "r", "s"]}
    new = [(a, 2.0, c) for a in (1, 2, 3) for c in "pqrs"]
    check(memo, counting, bigger, new)


def test_points_assembled_from_two_different_old_files(tmp_path, counting):
    memo = make(tmp_path, counting, {"a": 2, "b": 2})
    memo.run(PARAMS, {"a": [1, 2], "b": [10, 20]})
    memo.run(PARAMS, {"a": [3, 4], "b": [10, 20]})
    counting.reset()
    merged = make(tmp_path, counting, {"a": 4, "b": 2})
    diag = check(merged, counting, {"a": [1, 2, 3, 4], "b": [10, 20]}, [])
    assert diag.reused_points == 8


def test_types_are_not_confused_when_reusing(tmp_path, counting):
    memo = make(tmp_path, counting, {"a": 2})
    memo.run(PARAMS, {"a": [1, 2]})
    check(make(tmp_path, counting, {"a": 3}), counting, {"a": [1.0, True, 2]}, [(1.0,), (True,)])


def test_custom_enumerated_points_are_reused_by_digest(tmp_path, counting):
    def even_sums(params, chunk):
        return [(a, b) for a in chunk["a"] for b in chunk["b"] if (a + b) % 2 == 0]

    memo = make(tmp_path, counting, {"a": 2, "b": 2}, enumerate_points=even_sums)
    memo.run(PARAMS, {"a": [1, 2, 3], "b": [1, 2, 3]})
    counting.reset()
    rebinned = make(tmp_path, counting, {"a": 3, "b": 1}, enumerate_points=even_sums)
    output, _diag = rebinned.run(PARAMS, {"a": [1, 2, 3, 4], "b": [1, 2, 3]})
    assert sorted(counting.calls()) == ["(4, 2)"]
    assert [o["point"] for o in output] == [(1, 1), (3, 1), (2, 2), (1, 3), (3, 3), (4, 2)]


def test_changed_enumerator_executes_only_its_new_points(tmp_path, counting):
    memo = make(tmp_path, counting, {"a": 4}, enumerate_points=lambda p, c: [(a,) for a in c["a"]])
    memo.run(PARAMS, {"a": [1, 2, 3]})
    counting.reset()
    doubled = make(
        tmp_path,
        counting,
        {"a": 4},
        enumerate_points=lambda p, c: [(a,) for a in c["a"]] + [(a, "x") for a in c["a"]],
    )
    output, _diag = doubled.run(PARAMS, {"a": [1, 2, 3]})
    assert sorted(counting.calls()) == sorted(repr((a, "x")) for a in (1, 2, 3))
    assert len(output) == 6


def test_status_counts_without_executing_or_loading(tmp_path, counting, monkeypatch):
    memo = make(tmp_path, counting, {"a": 2, "b": 2})
    spec = {"a": [1, 2, 3, 4], "b": [1, 2]}
    memo.run(PARAMS, spec)
    counting.reset()

    def no_index(*args, **kwargs):
        raise AssertionError("an all-hit request must not read the point index")

    monkeypatch.setattr(_reuse, "read_point_index", no_index)
    status = memo.status(PARAMS, spec)
    assert (status.total_points, status.cached_points, status.missing_points) == (8, 8, 0)
    assert status.complete
    monkeypatch.undo()

    status = memo.status(PARAMS, {"a": [1, 2, 3, 4, 5], "b": [1, 2, 3]})
    assert (status.total_chunks, status.cached_chunks, status.missing_chunks) == (6, 2, 4)
    assert (status.total_points, status.cached_points, status.missing_points) == (15, 8, 7)
    assert {"a": [5], "b": [1, 2]} in status.missing
    assert counting.count() == 0


def test_load_returns_only_stored_points_and_strict_raises(tmp_path, counting):
    memo = make(tmp_path, counting, {"a": 2, "b": 2})
    memo.run(PARAMS, {"a": [1, 2], "b": [1, 2]})
    counting.reset()
    wider = {"a": [1, 2, 3], "b": [1, 2]}
    output, diag = memo.load(PARAMS, wider)
    assert output == [
        expected_output(PARAMS, p) for p in points_of({"a": [1, 2], "b": [1, 2]}, "ab")
    ]
    assert (diag.missing_points, diag.missing_chunks, diag.cached_points) == (2, 1, 4)
    with pytest.raises(CacheMissError, match="2 of 6 points") as info:
        memo.load(PARAMS, wider, strict=True)
    assert info.value.missing_points == 2
    assert counting.count() == 0
    assert memo.load(PARAMS, {"a": [2], "b": [2, 1]}, strict=True)[0] == [
        expected_output(PARAMS, (2, 2)),
        expected_output(PARAMS, (2, 1)),
    ]


def test_deleted_index_is_rebuilt_and_loses_nothing(tmp_path, counting):
    memo = make(tmp_path, counting, {"a": 2, "b": 2})
    spec = {"a": [1, 2, 3], "b": [1, 2, 3]}
    memo.run(PARAMS, spec)
    for index_dir in (tmp_path / "cache").glob("*/index"):
        shutil.rmtree(index_dir)
    diag = check(make(tmp_path, counting, {"a": 3, "b": 1}), counting, spec, [])
    assert diag.reused_points == 9
    (set_dir,) = (p.parent for p in (tmp_path / "cache").glob("*/chunks"))
    records = IndexLog(LocalStore(set_dir), "index").read(fold=False)
    assert set(records) == {p.stem for p in set_dir.glob("chunks/*.chunk")}
    assert len(records) == 4  # a rebinned read that computes nothing writes no chunk


def test_damaged_index_record_is_rebuilt(tmp_path, counting):
    memo = make(tmp_path, counting, {"a": 2})
    memo.run(PARAMS, {"a": [1, 2, 3]})
    for idx in (tmp_path / "cache").glob("*/index/*.idx"):
        idx.write_bytes(b"garbage")
    with pytest.warns(CacheWarning, match="ignoring index segment"):  # one per damaged segment
        check(make(tmp_path, counting, {"a": 3}), counting, {"a": [1, 2, 3]}, [])


def test_stale_index_record_never_serves_wrong_outputs(tmp_path, counting):
    memo = make(tmp_path, counting, {"a": 2}, enumerate_points=lambda p, c: [(a,) for a in c["a"]])
    memo.run(PARAMS, {"a": [1, 2]})
    idx = next((tmp_path / "cache").glob("*/index/*.idx"))
    stale = idx.read_bytes()
    # Another enumerator rewrites the same chunk file with other points...
    other = make(
        tmp_path, counting, {"a": 2}, enumerate_points=lambda p, c: [(a, 0) for a in c["a"]]
    )
    other.run(PARAMS, {"a": [1, 2]})
    idx.write_bytes(stale)  # ...and its index record is stale, as if a writer died between
    counting.reset()
    fresh = make(tmp_path, counting, {"a": 1}, enumerate_points=lambda p, c: [(a,) for a in c["a"]])
    output, _ = fresh.run(PARAMS, {"a": [1, 2]})
    assert output == [expected_output(PARAMS, (1,)), expected_output(PARAMS, (2,))]
    # the rewritten file kept the first enumerator's points; the stale record is rebuilt
    # from the file, never trusted: the outputs are right and nothing runs again
    assert counting.calls() == []


def test_many_index_segments_are_folded_into_one(tmp_path, counting):
    from swarm_memo.cache import index as _index

    memo = make(tmp_path, counting, {"a": 1})
    for k in range(_index.FOLD_ABOVE + 3):  # one segment per run
        memo.run({"k": 0}, {"a": [k]})
    (set_dir,) = (p.parent for p in (tmp_path / "cache").glob("*/chunks"))
    # one segment per run, folded once there were too many
    assert 1 <= len(list(set_dir.glob("index/*.idx"))) <= 4
    counting.reset()
    rebinned = make(tmp_path, counting, {"a": 5})
    rebinned.run({"k": 0}, {"a": list(range(_index.FOLD_ABOVE + 3))})
    assert counting.count() == 0
    records = IndexLog(LocalStore(set_dir), "index").read(fold=False)
    assert set(records) == {p.stem for p in set_dir.glob("chunks/*.chunk")}


def test_an_enumerator_yielding_the_product_is_stored_as_a_product(tmp_path, counting):
    """The seed's quick start enumerates the cartesian product: such chunks cost no point
    list on disk and no per-point digests, and other binnings still find their points."""
    from swarm_memo.cache.codec import read_meta

    def seed_like(params, chunk):
        return [(a, b) for a in chunk["a"] for b in chunk["b"]]

    memo = make(tmp_path, counting, {"a": 2, "b": 2}, enumerate_points=seed_like)
    memo.run(PARAMS, {"a": [1, 2, 3], "b": [1, 2]})
    metas = [read_meta(p.read_bytes())[1] for p in (tmp_path / "cache").glob("*/chunks/*")]
    assert all(meta.product and meta.point_ids is None for meta in metas)
    counting.reset()
    rebinned = make(tmp_path, counting, {"a": 3, "b": 1})  # default points, other bins
    output, diag = rebinned.run(PARAMS, {"a": [1, 2, 3], "b": [1, 2]})
    assert counting.count() == 0
    assert diag.reused_points == 6
    assert output == grid_expected(PARAMS, {"a": [1, 2, 3], "b": [1, 2]}, ("a", "b"))


def test_equal_but_not_identical_values_are_not_taken_for_the_product(tmp_path, counting):
    def floats(params, chunk):
        return [(float(a),) for a in chunk["a"]]

    memo = make(tmp_path, counting, {"a": 2}, enumerate_points=floats)
    memo.run(PARAMS, {"a": [1, 2]})
    counting.reset()
    _, diag = make(tmp_path, counting, {"a": 2}).run(PARAMS, {"a": [1, 2]})
    assert diag.executed_points == 2  # (1.0,) was stored, (1,) is another point
