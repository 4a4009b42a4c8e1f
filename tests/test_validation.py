"""Bad input is refused before any work, with a message naming the offending value."""

from __future__ import annotations

import re

import pytest

import swarm_memo
from swarm_memo import SpecError, SpecTypeError, SwarmMemo, UnhashableValueError


def never_called(params, point):
    raise AssertionError("exec_fn must not run for invalid input")


def memo_kwargs(tmp_path, **overrides):
    options = {
        "cache_root": tmp_path,
        "memo_chunk_spec": {"a": 2, "b": 1},
        "exec_chunk_size": 2,
        "exec_fn": never_called,
        "max_workers": 1,
        "verbose": 0,
    }
    options.update(overrides)
    return options


CONSTRUCTOR_CASES = [
    (
        {"memo_chunk_spec": {"a": 0, "b": 1}},
        SpecError,
        r"memo_chunk_spec\['a'\] must be an int >= 1 .*got 0",
    ),
    ({"memo_chunk_spec": {"a": 2.0, "b": 1}}, SpecTypeError, r"memo_chunk_spec\['a'\].*got 2.0"),
    ({"memo_chunk_spec": {"a": True, "b": 1}}, SpecTypeError, r"memo_chunk_spec\['a'\].*got True"),
    (
        {"memo_chunk_spec": {"a": {"size": -3}, "b": 1}},
        SpecError,
        r"memo_chunk_spec\['a'\].*got -3",
    ),
    ({"memo_chunk_spec": {"a": {"bins": 3}, "b": 1}}, SpecError, r"memo_chunk_spec\['a'\].*'bins'"),
    ({"memo_chunk_spec": [("a", 1)]}, SpecTypeError, r"memo_chunk_spec must be a dict"),
    ({"exec_chunk_size": 0}, SpecError, r"exec_chunk_size must be an int >= 1; got 0"),
    ({"exec_chunk_size": "10"}, SpecTypeError, r"exec_chunk_size must be an int >= 1; got '10'"),
    ({"max_workers": 0}, SpecError, r"max_workers must be None or an int >= 1; got 0"),
    (
        {"axis_order": ["a"]},
        SpecError,
        r"axis_order must be a permutation of .*\['a', 'b'\].*\['a'\]",
    ),
    ({"axis_order": ["a", "a"]}, SpecError, r"axis_order must be a permutation"),
    ({"axis_order": ["a", "c"]}, SpecError, r"axis_order must be a permutation.*'c'"),
    ({"axis_order": "ab"}, SpecTypeError, r"axis_order must be a sequence"),
    ({"exec_fn": 42}, SpecTypeError, r"exec_fn must be callable or None; got int"),
    ({"merge_fn": "concat"}, SpecTypeError, r"merge_fn must be callable"),
    ({"cache_version": 2}, SpecTypeError, r"cache_version must be a str; got 2"),
    ({"verbose": 5}, SpecError, r"verbose must be 0, 1 or 2; got 5"),
    ({"on_error": "ignore"}, SpecError, r"on_error must be one of 'raise', 'skip'; got 'ignore'"),
    ({"executor": "gpu"}, SpecError, r"executor must be one of .*got 'gpu'"),
    ({"executor": object()}, SpecTypeError, r"executor must be .*got object"),
    ({"cache_root": 3}, SpecTypeError, r"cache_root must be a str or path; got 3"),
    (
        {"storage_options": {"anon": True}},
        SpecError,
        r"storage_options only apply to a URL cache_root",
    ),
]


@pytest.mark.parametrize(("overrides", "error", "message"), CONSTRUCTOR_CASES)
def test_constructor_rejects_bad_arguments(tmp_path, overrides, error, message):
    with pytest.raises(error, match=message):
        SwarmMemo(**memo_kwargs(tmp_path, **overrides))


class Opaque:
    pass


RUN_CASES = [
    ([], {"a": [1], "b": [1]}, SpecTypeError, r"params must be a dict; got list"),
    ({}, [("a", [1])], SpecTypeError, r"split_spec must be a dict"),
    ({}, {"a": [1]}, SpecError, r"missing from split_spec \['b'\]"),
    ({}, {"a": [1], "b": [1], "c": [1]}, SpecError, r"unknown to memo_chunk_spec \['c'\]"),
    (
        {},
        {"a": "xyz", "b": [1]},
        SpecTypeError,
        r"split_spec\['a'\] must be a list of values; got str",
    ),
    ({}, {"a": 5, "b": [1]}, SpecTypeError, r"split_spec\['a'\] must be a list of values; got int"),
    ({}, {"a": [1, 2, 1], "b": [1]}, SpecError, r"split_spec\['a'\] holds the value 1 twice"),
    (
        {},
        {"a": [1, Opaque()], "b": [1]},
        UnhashableValueError,
        r"split_spec\['a'\]\[1\] has type .*Opaque",
    ),
    (
        {"model": Opaque()},
        {"a": [1], "b": [1]},
        UnhashableValueError,
        r"params\['model'\] has type .*Opaque",
    ),
    (
        {"m": {"deep": [1, Opaque()]}},
        {"a": [1], "b": [1]},
        UnhashableValueError,
        r"params\['m'\]\['deep'\]\[1\]",
    ),
]


@pytest.mark.parametrize(("params", "spec", "error", "message"), RUN_CASES)
@pytest.mark.parametrize("method", ["run", "run_streaming", "status", "load"])
def test_run_rejects_bad_input_before_any_work(tmp_path, params, spec, error, message, method):
    memo = SwarmMemo(**memo_kwargs(tmp_path / "cache"))
    with pytest.raises(error, match=message):
        getattr(memo, method)(params, spec)
    assert not (tmp_path / "cache").exists()


def test_errors_inherit_the_builtin_a_caller_expects():
    assert issubclass(SpecError, ValueError)
    assert issubclass(SpecTypeError, TypeError)
    assert issubclass(UnhashableValueError, TypeError)
    assert issubclass(swarm_memo.ExecError, RuntimeError)
    assert issubclass(swarm_memo.CacheMissError, LookupError)
    for cls in (SpecError, SpecTypeError, UnhashableValueError, swarm_memo.ExecError):
        assert issubclass(cls, swarm_memo.SwarmMemoError)


def test_unhashable_points_from_enumerate_points_are_refused_before_work(tmp_path):
    memo = SwarmMemo(**memo_kwargs(tmp_path / "cache", enumerate_points=lambda p, s: [Opaque()]))
    with pytest.raises(UnhashableValueError, match=r"enumerate_points returned a point"):
        memo.run({}, {"a": [1], "b": [1]})
    assert not (tmp_path / "cache").exists()


def test_enumerate_points_must_return_a_list(tmp_path):
    memo = SwarmMemo(**memo_kwargs(tmp_path, enumerate_points=lambda p, s: 7))
    with pytest.raises(SpecTypeError, match=re.escape("enumerate_points must return a list")):
        memo.run({}, {"a": [1], "b": [1]})


def test_chunk_hash_fn_must_return_a_safe_file_name(tmp_path):
    memo = SwarmMemo(**memo_kwargs(tmp_path, chunk_hash_fn=lambda p, k, v: "../escape"))
    with pytest.raises(SpecError, match=r"chunk_hash_fn must return .*'\.\./escape'"):
        memo.run({}, {"a": [1], "b": [1]})
