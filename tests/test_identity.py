"""A stored output is served only for exactly what produced it: the code that computed
it (through every path that copies it) and the point layout (axis order) it was computed
with; and reading never grows the cache."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pytest

from swarm_memo import (
    AxisOrderWarning,
    CacheMissError,
    CodeChangedWarning,
    SwarmMemo,
)
from swarm_memo.cache.chunk_meta import MIXED_CODE
from swarm_memo.cache.codec import decode_chunk

SPEC = {"x": [0, 1, 2, 3, 4, 5]}


def versioned_exec(version: int, log: Path) -> Any:
    """An exec_fn whose code fingerprint differs per ``version`` (a closure value); it
    records every call in ``log`` and returns which version computed which point."""
    path = str(log)

    def exec_fn(params: dict[str, Any], point: tuple[Any, ...]) -> tuple[int, Any]:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (repr(point) + "\n").encode())
        finally:
            os.close(fd)
        return (version, point)

    return exec_fn


def calls(log: Path) -> list[str]:
    lines = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return lines


def memo(tmp_path: Path, version: int, bins: int | dict[str, int], **options: Any) -> SwarmMemo:
    spec = {"x": bins} if isinstance(bins, int) else bins
    return SwarmMemo(
        tmp_path / "cache",
        spec,
        2,
        exec_fn=versioned_exec(version, tmp_path / "calls.log"),
        max_workers=1,
        verbose=0,
        **options,
    )


def cache_files(tmp_path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(tmp_path)): p.read_bytes()
        for p in sorted((tmp_path / "cache").rglob("*.chunk"))
    }


# ---------------------------------------------------------------------- code provenance


@pytest.mark.parametrize(
    "request_spec",
    [{"x": [0, 1, 2, 3, 4, 5]}, {"x": [1, 2, 4]}],
    ids=["rebinned", "subset"],
)
def test_recompute_never_serves_old_outputs_a_warned_run_reused(tmp_path, request_spec):
    memo(tmp_path, 1, 2).run({}, SPEC)
    calls(tmp_path / "calls.log")
    with pytest.warns(CodeChangedWarning, match=rf"{len(request_spec['x'])} of the"):
        out, diag = memo(tmp_path, 2, 3, on_code_change="warn").run({}, request_spec)
    assert diag.executed_points == 0
    assert {o[0] for o in out} == {1}  # served, with a warning, as the old code's
    out, diag = memo(tmp_path, 2, 3, on_code_change="recompute").run({}, request_spec)
    assert sorted(calls(tmp_path / "calls.log")) == sorted(f"({x},)" for x in request_spec["x"])
    assert out == [(2, (x,)) for x in request_spec["x"]]


def test_a_partial_chunk_keeps_each_points_code(tmp_path):
    memo(tmp_path, 1, 2).run({}, SPEC)
    calls(tmp_path / "calls.log")
    grown = {"x": [*SPEC["x"], 6]}
    with pytest.warns(CodeChangedWarning, match="6 of the 7 points"):
        memo(tmp_path, 2, 3, on_code_change="warn").run({}, grown)
    assert calls(tmp_path / "calls.log") == ["(6,)"]
    out, _ = memo(tmp_path, 2, 3, on_code_change="recompute").run({}, grown)
    # The six points of the old code run again; the new point, of the current code, not.
    assert sorted(calls(tmp_path / "calls.log")) == sorted(f"({x},)" for x in SPEC["x"])
    assert out == [(2, (x,)) for x in grown["x"]]


def test_compact_rewrites_into_new_files_keeping_each_outputs_code(tmp_path):
    memo(tmp_path, 1, 2).run({}, SPEC)
    grown = {"x": [*SPEC["x"], 6]}
    with pytest.warns(CodeChangedWarning):
        memo(tmp_path, 2, 3, on_code_change="warn").run({}, grown)
    before = set(cache_files(tmp_path))
    report = memo(tmp_path, 2, 7).compact({}, grown)  # no file of this layout exists yet
    after = cache_files(tmp_path)
    assert report.written == 1
    assert report.removed == len(before)
    (data,) = after.values()
    record = decode_chunk(data)
    assert record.code == MIXED_CODE
    assert len(set(record.codes())) == 2  # the old code's six points, the new code's one
    calls(tmp_path / "calls.log")
    out, _ = memo(tmp_path, 2, 7, on_code_change="recompute").run({}, grown)
    assert sorted(calls(tmp_path / "calls.log")) == sorted(f"({x},)" for x in SPEC["x"])
    assert out == [(2, (x,)) for x in grown["x"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # everything is the current code's now: no warning
        out, diag = memo(tmp_path, 2, 7).run({}, grown)
    assert diag.executed_points == 0


def test_code_changed_warning_points_at_the_users_line_and_counts_points(tmp_path):
    memo(tmp_path, 1, 2).run({}, SPEC)
    changed = memo(tmp_path, 2, 2)
    for call in (
        lambda: changed.run({}, {"x": [0, 1, 2, 9]}),
        lambda: changed.load({}, {"x": [0, 1, 2, 9]}),
        lambda: changed.status({}, {"x": [0, 1, 2, 9]}),
    ):
        with pytest.warns(CodeChangedWarning, match="3 of the 4 points") as caught:
            call()
        assert len(caught) == 1
        assert caught[0].filename == __file__


# ---------------------------------------------------------------------- axis order


def pair_exec(log: Path) -> Any:
    """exec_fn reading its point by position, as users do: ``x, y = point``."""
    path = str(log)

    def exec_fn(params: dict[str, Any], point: tuple[Any, ...]) -> dict[str, Any]:
        x, y = point
        with open(path, "a") as f:
            f.write(f"{point!r}\n")
        return {"x": x, "y": y}

    return exec_fn


def pair_memo(tmp_path: Path, bins: dict[str, int], **options: Any) -> SwarmMemo:
    return SwarmMemo(
        tmp_path / "cache",
        bins,
        2,
        exec_fn=pair_exec(tmp_path / "calls.log"),
        max_workers=1,
        verbose=0,
        **options,
    )


def test_another_axis_order_is_recomputed_with_one_warning_and_never_mixed(tmp_path):
    spec = {"x": [1, 2], "y": [10, 20]}
    pair_memo(tmp_path, {"x": 2, "y": 2}).run({}, spec)
    calls(tmp_path / "calls.log")
    reordered = pair_memo(tmp_path, {"y": 2, "x": 2})
    grown = {"x": [1, 2], "y": [10, 20, 30]}
    with pytest.warns(AxisOrderWarning, match=r"\('x', 'y'\).*\('y', 'x'\).*axis_order") as w:
        out, diag = reordered.run({}, grown)
    assert len(w) == 1
    assert w[0].filename == __file__
    assert diag.executed_points == 6
    # Every output was computed from a (y, x) tuple: none of the (x, y) ones is mixed in.
    assert all(o == {"x": p[0], "y": p[1]} for o, p in zip(out, _points(grown, "yx"), strict=True))
    assert sorted(calls(tmp_path / "calls.log")) == sorted(repr(p) for p in _points(grown, "yx"))


def test_strict_load_in_another_axis_order_misses_and_stored_order_serves(tmp_path):
    spec = {"x": [1, 2], "y": [10, 20]}
    pair_memo(tmp_path, {"x": 2, "y": 2}).run({}, spec)
    with pytest.warns(AxisOrderWarning), pytest.raises(CacheMissError):
        pair_memo(tmp_path, {"y": 2, "x": 2}).load({}, spec, strict=True)
    # The way to keep the stored outputs: the axis order they were computed in.
    out, diag = pair_memo(tmp_path, {"y": 2, "x": 2}, axis_order=["x", "y"]).load(
        {}, spec, strict=True
    )
    assert diag.missing_points == 0
    assert out == [{"x": x, "y": y} for x, y in _points(spec, "xy")]


def test_a_reordered_run_keeps_the_files_of_the_stored_order(tmp_path):
    spec = {"x": [1, 2], "y": [10, 20]}
    pair_memo(tmp_path, {"x": 2, "y": 2}).run({}, spec)
    with pytest.warns(AxisOrderWarning):
        pair_memo(tmp_path, {"y": 2, "x": 2}).run({}, spec)  # same chunk name, other order
    calls(tmp_path / "calls.log")
    for bins in ({"x": 2, "y": 2}, {"y": 2, "x": 2}):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            pair_memo(tmp_path, bins).run({}, spec)
    assert calls(tmp_path / "calls.log") == []


def _points(spec: dict[str, list[Any]], order: str) -> list[tuple[Any, ...]]:
    import itertools

    return list(itertools.product(*(spec[a] for a in order)))


# ---------------------------------------------------------------------- reads never grow


def test_slices_and_rebinned_reads_write_nothing(tmp_path):
    spec = {"x": list(range(40))}
    memo(tmp_path, 1, 4).run({}, spec)
    before = cache_files(tmp_path)
    for bins in (3, 5, 7, 40):
        rebinned = memo(tmp_path, 1, bins)
        for start in range(0, 40, 9):
            request = {"x": spec["x"][start : start + 11]}
            _, diag = rebinned.run({}, request)
            assert diag.executed_points == 0
            rebinned.to_dataframe({}, request) if _has_pandas() else None
    assert cache_files(tmp_path) == before


def test_a_run_computing_some_points_writes_only_those(tmp_path):
    memo(tmp_path, 1, 4).run({}, {"x": [0, 1, 2, 3, 4, 5, 6, 7]})
    before = cache_files(tmp_path)
    memo(tmp_path, 1, 5).run({}, {"x": [0, 1, 2, 3, 100]})  # one chunk: 4 stored, 1 new
    new = {k: v for k, v in cache_files(tmp_path).items() if k not in before}
    (data,) = new.values()
    record = decode_chunk(data)
    assert record.partial
    assert record.points == [(100,)]


def _has_pandas() -> bool:
    try:
        import pandas  # noqa: F401
    except ImportError:  # pragma: no cover
        return False
    return True


# ---------------------------------------------------------------------- big params


def test_a_fully_cached_call_never_copies_params_and_a_computing_one_copies_once(
    tmp_path, monkeypatch
):
    import copy

    from swarm_memo.run import plan as plan_module

    copies = []
    real = copy.deepcopy

    def counting(value, *args, **kwargs):
        copies.append(type(value).__name__)
        return real(value, *args, **kwargs)

    monkeypatch.setattr(plan_module.copy, "deepcopy", counting)
    params = {"table": list(range(1000))}
    memo(tmp_path, 1, 2).run(params, SPEC)
    assert len(copies) == 1  # the params exec_fn receives: one copy per computing call
    copies.clear()
    for call in (memo(tmp_path, 1, 2).run, memo(tmp_path, 1, 2).load):
        call(params, SPEC)
    assert memo(tmp_path, 1, 2).status(params, SPEC).missing_points == 0
    assert copies == []


def test_a_damaged_file_warning_points_at_the_users_line(tmp_path):
    from swarm_memo import CacheWarning

    memo(tmp_path, 1, 2).run({}, SPEC)
    victim = sorted((tmp_path / "cache").glob("*/chunks/*.chunk"))[0]
    victim.write_bytes(victim.read_bytes()[:-3])
    with pytest.warns(CacheWarning) as caught:
        memo(tmp_path, 1, 2).load({}, SPEC)
    assert [w.filename for w in caught] == [__file__]
