"""Minimal failing examples found by the model test in test_property.py.

Each was a gap in src, now fixed; the tests keep it fixed.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

from helpers import CountingExec, chunk_files
from swarm_memo import CacheWarning, SwarmMemo


def memo(root: Path, counting: CountingExec, bins: dict[str, int], enumerate_points=None):
    return SwarmMemo(
        root,
        bins,
        3,
        enumerate_points=enumerate_points,
        exec_fn=counting,
        max_workers=1,
        verbose=0,
        executor="serial",
    )


def same_points(params, chunk):
    return [(a,) for a in chunk["a"]]


def even_points(params, chunk):
    return [(a,) for a in chunk["a"] if a % 2 == 0]


def points_and_extras(params, chunk):
    return [(a,) for a in chunk["a"]] + [(a, "x") for a in chunk["a"]]


def test_custom_enumerator_reuses_points_stored_by_the_default_one(tmp_path, counting):
    # Property example: run {a: [0], c: [0.5]} bins 1, then the same with a superset
    # enumerator: (0, 0.5) executed again. The same happens with other bins:
    memo(tmp_path, counting, {"a": 2}).run({}, {"a": [0, 1, 2, 3]})
    counting.reset()
    memo(tmp_path, counting, {"a": 4}, same_points).run({}, {"a": [0, 1, 2, 3]})
    assert counting.calls() == []


def test_changed_enumerator_keeps_the_points_of_the_chunk_file_it_rewrites(tmp_path, counting):
    spec = {"a": [0, 1, 2, 3]}
    memo(tmp_path, counting, {"a": 2}, same_points).run({}, spec)
    memo(tmp_path, counting, {"a": 2}, even_points).run({}, spec)  # executes nothing
    assert counting.count() == 4
    counting.reset()
    memo(tmp_path, counting, {"a": 2}, same_points).run({}, spec)
    assert counting.calls() == []  # today: (1,) and (3,) run again


def test_points_of_a_damaged_file_are_served_from_an_intact_copy(tmp_path, counting):
    spec = {"a": [0, 1, 2, 3]}
    memo(tmp_path, counting, {"a": 2}).run({}, spec)  # files [0, 1] and [2, 3]
    # A second copy of every point: the file [0, 1, 2, 3] of another cache, copied in (a
    # rebinned run no longer writes copies of stored points).
    memo(tmp_path / "other", counting, {"a": 4}).run({}, spec)
    (copy,) = chunk_files(tmp_path / "other")
    shutil.copy(copy, next(tmp_path.glob("*/chunks")) / copy.name)
    counting.reset()
    files = sorted(chunk_files(tmp_path), key=lambda f: f.stat().st_size)
    for damaged in files[:-1]:  # the two small files; the whole-grid file stays intact
        damaged.write_bytes(damaged.read_bytes()[:-3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)
        output, _ = memo(tmp_path, counting, {"a": 1}).run({}, spec)  # no file of its own
    assert [o["point"] for o in output] == [(0,), (1,), (2,), (3,)]
    assert counting.calls() == []  # today: all four run again


def test_a_point_refused_in_a_mixed_code_file_is_served_from_another_file(tmp_path, monkeypatch):
    """Found by the model: under on_code_change='recompute', the index named a file whose
    copy of (0,) was another version's, and the current version's copy in another file
    was never looked at: (0,) ran again."""
    import test_property
    from test_property import Model, Step

    monkeypatch.setattr(test_property, "event", lambda *args: None)
    model = Model(tmp_path / "cache", CountingExec(tmp_path / "calls.log"))
    one = {"spec": {"a": [0]}, "bins": {"a": 1}, "order": ("a",)}
    two = {"spec": {"a": [0, 1]}, "bins": {"a": 2}, "order": ("a",)}
    for step in [
        Step("run", **two, version=1, on_code_change="warn"),
        Step("run", **one, version=2, on_code_change="recompute"),
        Step("run", **two, enumerator="superset", version=2, on_code_change="warn"),
        Step("run", **one, enumerator="superset", version=1, on_code_change="recompute"),
        Step("run", **one, version=1, on_code_change="recompute"),
    ]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CacheWarning)
            model.step(step)
    model.check_executions()
