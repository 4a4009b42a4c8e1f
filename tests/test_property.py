"""Property: for any sequence of requests on one cache, every output equals a plain
recomputation, and each point is executed exactly once over the whole sequence."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import CountingExec, expected_output, grid_points
from swarm_memo import SwarmMemo

AXES = ("a", "b", "c")
VALUES = {"a": list(range(6)), "b": ["p", "q", "r", "s"], "c": [0.5, 1.5, 2.5]}


@st.composite
def request_sequences(draw):
    """Requests over one base grid: same, subset, superset, reordered, rebinned."""
    axes = draw(st.sampled_from([("a",), ("a", "b"), ("a", "b", "c")]))
    sequence = []
    for _ in range(draw(st.integers(1, 6))):
        spec = {
            axis: draw(st.permutations(VALUES[axis]))[: draw(st.integers(0, len(VALUES[axis])))]
            for axis in axes
        }
        bins = {axis: draw(st.integers(1, 4)) for axis in axes}
        order = list(draw(st.permutations(axes)))
        mode = draw(st.sampled_from(["run", "run", "stream", "load"]))
        sequence.append((axes, spec, bins, order, mode))
        if draw(st.booleans()):  # the same grid again, in another axis order
            sequence.append((axes, spec, bins, list(reversed(order)), "run"))
    return sequence


def recompute(spec, bins, order):
    return grid_points(spec, order)


def canonical(point, order):
    """The point's identity: axis values in sorted axis order (independent of axis_order)."""
    return tuple(v for _, v in sorted(zip(order, point)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request_sequences())
def test_any_request_sequence_matches_plain_recomputation(request_sequence):
    with tempfile.TemporaryDirectory() as tmp:
        counting = CountingExec(Path(tmp) / "calls.log")
        stored: dict[tuple, object] = {}  # model: canonical point -> output
        for _axes, spec, bins, order, mode in request_sequence:
            memo = SwarmMemo(
                Path(tmp) / "cache",
                bins,
                3,
                exec_fn=counting,
                axis_order=order,
                max_workers=1,
                verbose=0,
            )
            points = recompute(spec, bins, order)
            counting.reset()
            if mode == "stream":
                diag = memo.run_streaming({"k": 1}, spec)
            elif mode == "load":
                output, diag = memo.load({"k": 1}, spec)
                known = [
                    stored[canonical(p, order)] for p in points if canonical(p, order) in stored
                ]
                assert output == known
                assert diag.missing_points == len(points) - len(known)
                assert counting.count() == 0
                continue
            else:
                output, diag = memo.run({"k": 1}, spec)
            new = {canonical(p, order) for p in points} - set(stored)
            assert sorted(counting.calls()) == sorted(
                repr(p) for p in points if canonical(p, order) in new
            )
            for p in points:
                stored.setdefault(canonical(p, order), expected_output({"k": 1}, p))
            if mode == "run":
                assert output == [stored[canonical(p, order)] for p in points]
            assert diag.total_points == len(points)
            assert diag.executed_points == len(new)
