"""run_wrap / streaming_wrap: call signature, cache keys, isolation between functions."""

from __future__ import annotations

import pytest

from helpers import CountingExec
from swarm_memo import Diagnostics, SpecError, SpecTypeError, SwarmMemo

SPEC = {"x": [1, 2, 3]}


@pytest.fixture
def memo(tmp_path):
    return SwarmMemo(tmp_path / "cache", {"x": 2}, 2, max_workers=1, verbose=0)


def test_run_wrap_returns_output_and_diagnostics_and_caches(memo, tmp_path):
    log = CountingExec(tmp_path / "calls.log")

    @memo.run_wrap()
    def scaled(params, point, factor=1):
        log(params, point)
        return point[0] * params["k"] * factor

    output, diag = scaled({"k": 2}, split_spec=SPEC)
    assert output == [2, 4, 6]
    assert isinstance(diag, Diagnostics)
    assert diag.executed_points == 3
    output, diag = scaled(params={"k": 2}, split_spec=SPEC)
    assert output == [2, 4, 6]
    assert diag.executed_points == 0
    assert log.count() == 3


def test_extra_keywords_and_defaults_key_the_cache_and_reach_the_function(memo, tmp_path):
    log = CountingExec(tmp_path / "calls.log")

    @memo.run_wrap()
    def scaled(params, point, factor=1):
        log(params, point)
        return point[0] * factor

    assert scaled({}, split_spec=SPEC)[0] == [1, 2, 3]
    assert scaled({}, split_spec=SPEC, factor=10)[0] == [10, 20, 30]
    assert log.count() == 6
    # factor=1 given explicitly is the default: same key, served from the cache
    output, diag = scaled({}, split_spec=SPEC, factor=1)
    assert output == [1, 2, 3]
    assert diag.cached_points == 3
    assert log.count() == 6


def test_two_wrapped_functions_never_read_each_others_results(memo):
    @memo.run_wrap()
    def double(params, point):
        return point[0] * 2

    @memo.run_wrap()
    def square(params, point):
        return point[0] ** 2

    assert double({}, split_spec=SPEC)[0] == [2, 4, 6]
    output, diag = square({}, split_spec=SPEC)
    assert output == [1, 4, 9]
    assert diag.cached_points == 0


def test_streaming_wrap_returns_diagnostics_and_fills_the_cache(memo):
    def cube(params, point):
        return point[0] ** 3

    diag = memo.streaming_wrap()(cube)({}, split_spec=SPEC)
    assert isinstance(diag, Diagnostics)
    assert diag.stream_flushes == 2
    output, diag = memo.run_wrap()(cube)({}, split_spec=SPEC)
    assert output == [1, 8, 27]
    assert diag.cached_points == 3


def test_wrapped_function_runs_in_a_process_pool(tmp_path):
    memo = SwarmMemo(tmp_path, {"x": 1}, 1, max_workers=2, verbose=0)

    @memo.run_wrap()
    def plus(params, point, offset=0):
        return point[0] + params["base"] + offset

    assert plus({"base": 10}, split_spec=SPEC, offset=5)[0] == [16, 17, 18]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda f: f({}, SPEC), SpecError, "split_spec must be passed as a keyword"),
        (lambda f: f({}), SpecError, "split_spec must be passed as a keyword"),
        (lambda f: f({}, params={}, split_spec=SPEC), SpecError, "both positional and keyword"),
        (lambda f: f(split_spec=SPEC), SpecError, "params is missing"),
        (lambda f: f([1], split_spec=SPEC), SpecTypeError, "params must be a dict"),
        (lambda f: f({}, split_spec=SPEC, nope=1), SpecTypeError, "nope"),
        (lambda f: f({"factor": 2}, split_spec=SPEC, factor=3), SpecError, r"\['factor'\]"),
    ],
)
def test_wrapped_call_mistakes_are_clear_errors(memo, call, error, message):
    @memo.run_wrap()
    def fn(params, point, factor=1):
        raise AssertionError("must not run")

    with pytest.raises(error, match=message):
        call(fn)


def test_function_without_params_and_point_cannot_be_wrapped(memo):
    with pytest.raises(SpecTypeError, match="must take \\(params, point"):
        memo.run_wrap()(lambda point: point)
