"""Property: whatever sequence of calls is made on one cache, every output equals a plain
recomputation, every point executes once unless the file holding it was damaged, and
reads (``load``, ``status``, ``load(strict=True)``) change no file.

Sequences mix growing, shrinking, rebinned and reordered grids; numpy scalars and arrays
next to equal Python values; ints next to equal floats (1 and 1.0 are two points); NaN
(one value); enumerators switched between steps; files damaged between steps.

Steps also switch between three versions of ``exec_fn`` (three code fingerprints: 2 has
other state, 3 another module constant reached through a helper) under each
``on_code_change`` policy: a served output is the current code's, or a
``CodeChangedWarning`` said otherwise ("warn"), or the call said nothing ("ignore");
"recompute" never serves another version's output. Axis orders change between steps:
a point is the tuple ``exec_fn`` receives, so another order is another point.

The model is a plain dict: canonical point -> the outputs it may have (one per code
version that computed it). After every step it is compared with what the
chunk files really hold, decoded, so a point executed twice or dropped from the cache is
caught at the step where it happens.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import tempfile
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cache_model import (
    CacheState,
    Canon,
    Norm,
    canon_point,
    canon_value,
    damage,
    norm,
    read_cache,
    snapshot,
)
from helpers import CountingExec, expected_output, grid_points
from swarm_memo import CacheMissError, CodeChangedWarning, SpecError, SwarmMemo

try:
    import numpy as np
except ImportError:  # pragma: no cover - the numpy representations are not drawn
    np = None

PARAMS = {"k": 1}
NAN = math.nan
# Per axis: values in their base order (a prefix of them is a linspace/arange-like axis),
# then more values. 1 and 1.0, 0.0 and -0.0 are distinct values; NaN is one value.
ATOMS: dict[str, list[Any]] = {
    "a": [0, 1, 2, 3, 1.0, 2.0],
    "b": ["p", "q", "r"],
    "c": [0.5, 1.5, 2.5, NAN, 0.0, -0.0],
}


# ---------------------------------------------------------------------- exec versions


HELPER_SHIFT = 0
"""A module constant ``exec_fn`` reaches through a helper: version 3 is version 1 with
this constant edited between calls (a helper or constant edit is a code change)."""


def version_tag(version: int) -> int:
    return version + HELPER_SHIFT


class VersionedExec(CountingExec):
    """Versions of ``exec_fn``: 2 has another state, 3 another module constant than 1; an
    output that says which version computed it."""

    def __init__(self, log: Path, version: int) -> None:
        super().__init__(log)
        self.version = version

    def __call__(self, params: dict[str, Any], point: Any) -> Any:
        return {**super().__call__(params, point), "version": version_tag(self.version)}


# ---------------------------------------------------------------------- enumerators


def enum_product(params: dict[str, Any], chunk: dict[str, list[Any]]) -> list[tuple[Any, ...]]:
    return list(itertools.product(*chunk.values()))


def kept(point: tuple[Any, ...]) -> bool:
    return zlib.crc32(repr([canon_value(v) for v in point]).encode()) % 3 != 0


def enum_subset(params: dict[str, Any], chunk: dict[str, list[Any]]) -> list[tuple[Any, ...]]:
    return [p for p in enum_product(params, chunk) if kept(p)]


def enum_superset(params: dict[str, Any], chunk: dict[str, list[Any]]) -> list[tuple[Any, ...]]:
    points: list[tuple[Any, ...]] = []
    for p in enum_product(params, chunk):
        points.append(p)
        if kept(p):
            points.append((*p, "x"))
    return points


ENUMERATORS = {
    None: None,
    "product": enum_product,
    "subset": enum_subset,
    "superset": enum_superset,
}


def requested_points(step: Step) -> list[tuple[Any, ...]]:
    """The points a call serves, in output order: grid order for the default enumerator,
    else chunk order (first axis slowest), each chunk as its enumerator lists it."""
    if step.enumerator is None:
        return grid_points(step.spec, step.order)
    per_axis = []
    for axis in step.order:
        values, size = list(step.spec[axis]), step.bins[axis]
        per_axis.append([values[i : i + size] for i in range(0, len(values), size)])
    enumerate_points = ENUMERATORS[step.enumerator]
    return [
        point
        for combo in itertools.product(*per_axis)
        for point in enumerate_points(PARAMS, dict(zip(step.order, combo, strict=True)))
    ]


# ---------------------------------------------------------------------- strategies


@dataclass
class Step:
    kind: str  # run, stream, load, status, strict, damage
    spec: dict[str, Any] = field(default_factory=dict)
    bins: dict[str, int] = field(default_factory=dict)
    order: tuple[str, ...] = ()
    default_order: bool = False  # axis_order=None: memo_chunk_spec's key order
    enumerator: str | None = None
    damage: tuple[str, float, float] = ("truncate", 0.0, 0.0)  # how, which file, where
    version: int = 1  # which exec_fn computes
    on_code_change: str = "warn"


def represent(draw: st.DrawFn, values: list[Any]) -> Any:
    """The axis as Python values, a mix of numpy and Python scalars, or a numpy array."""
    fresh = [float("nan") if isinstance(v, float) and math.isnan(v) else v for v in values]
    if np is None:
        return fresh
    how = draw(st.sampled_from(["python", "scalars", "array"]))
    ints = all(type(v) is int for v in values)
    floats = all(type(v) is float for v in values)
    if how == "array" and values and (ints or floats):
        if ints and values == list(range(len(values))):
            return np.arange(len(values), dtype=draw(st.sampled_from([np.int32, np.int64])))
        if values == [0.5, 1.5, 2.5][: len(values)]:
            return np.linspace(0.5, 0.5 + len(values) - 1, len(values))
        return np.array(values, dtype=np.int32 if ints else np.float64)
    if how == "python":
        return fresh
    int_types = [int, np.int32, np.int64]
    float_types = [float, np.float64, np.float32]  # every atom is exact in float32
    return [
        v
        if isinstance(v, str)
        else draw(st.sampled_from(int_types if type(v) is int else float_types))(v)
        for v in fresh
    ]


@st.composite
def axis_values(draw: st.DrawFn, axis: str) -> Any:
    atoms = ATOMS[axis]
    prefix = draw(st.booleans())  # a prefix of the base order: arange/linspace-like
    longest = (4 if axis != "b" else 3) if prefix else len(atoms)
    length = draw(st.integers(1, longest)) if draw(st.integers(0, 9)) else 0
    values = (atoms if prefix else draw(st.permutations(atoms)))[:length]
    return represent(draw, values)


@st.composite
def steps(draw: st.DrawFn, axes: tuple[str, ...], enumerated: bool) -> Step:
    kinds = ["run", "run", "stream", "load", "status", "strict", "damage", "damage", "collide"]
    kind = draw(st.sampled_from(kinds))
    if kind == "damage":
        how = draw(st.sampled_from(["truncate", "flip", "segment"]))
        return Step(kind, damage=(how, draw(st.floats(0, 1)), draw(st.floats(0, 1))))
    # A custom enumerator's tuples follow axis_order, and their identity is the tuple:
    # sequences that use one keep axis_order fixed, so its points are the grid's points.
    order = tuple(sorted(axes)) if enumerated else tuple(draw(st.permutations(axes)))
    return Step(
        kind,
        spec={axis: draw(axis_values(axis)) for axis in axes},
        bins={axis: draw(st.integers(1, 4)) for axis in order},
        order=order,
        default_order=draw(st.booleans()),
        enumerator=draw(st.sampled_from(list(ENUMERATORS))) if enumerated else None,
        version=draw(st.sampled_from([1, 1, 2, 3])),
        on_code_change=draw(st.sampled_from(["warn", "recompute", "ignore"])),
    )


@st.composite
def request_sequences(draw: st.DrawFn) -> list[Step]:
    axes = draw(st.sampled_from([("a",), ("a", "b"), ("a", "c"), ("a", "b", "c")]))
    enumerated = draw(st.booleans())
    sequence = draw(st.lists(steps(axes, enumerated), min_size=2, max_size=10))
    grids = [s.spec for s in sequence if s.kind != "damage"]
    for step in sequence:  # often the grid of an earlier step again (other bins, order...)
        if step.kind != "damage" and draw(st.booleans()):
            step.spec = draw(st.sampled_from(grids))
    return sequence


# ---------------------------------------------------------------------- the model


class Model:
    """canonical point -> the outputs it may have; and how often each point executed."""

    def __init__(self, root: Path, counting: CountingExec) -> None:
        self.root = root
        self.counting = counting
        self.outputs: dict[Canon, set[Norm]] = {}
        self.executions: Counter[Canon] = Counter()
        # Times a point may execute again: it left the cache legitimately, or a known gap.
        self.excused: Counter[Canon] = Counter()
        self.damaged: dict[Path, set[Canon]] = {}  # damaged file -> points it held

    def memo(self, step: Step) -> SwarmMemo:
        global HELPER_SHIFT
        HELPER_SHIFT = 2 if step.version == 3 else 0  # version 3: 1 with the constant edited
        bins = {axis: step.bins[axis] for axis in step.order}  # key order = axis order
        return SwarmMemo(
            self.root,
            bins,
            3,
            enumerate_points=ENUMERATORS[step.enumerator],
            exec_fn=VersionedExec(
                Path(self.counting.log), 1 if step.version == 3 else step.version
            ),
            max_workers=1,
            verbose=0,
            axis_order=None if step.default_order else list(step.order),
            executor="serial",
            on_code_change=step.on_code_change,
        )

    def servable(self, state: CacheState, step: Step) -> set[Canon]:
        """Points with a stored output this step's policy may serve."""
        if step.on_code_change == "recompute":
            return state.stored_by(step.version)
        return state.stored

    @staticmethod
    def check_code_warning(step: Step, output: list[Any], caught: list[Any]) -> None:
        """Served outputs are the current code's, or the policy's warning said otherwise."""
        other = [o for o in output if o["version"] != step.version]
        warned = any(issubclass(w.category, CodeChangedWarning) for w in caught)
        if step.on_code_change == "recompute":
            assert not other, f"recompute served another code's output: {other[:3]}"
        elif step.on_code_change == "warn":
            assert warned == bool(other), (warned, other[:3])
            event(f"code warning: {warned}")
        else:
            assert not warned

    def check_cache(self, state: CacheState) -> None:
        """The files hold exactly the model's points, each with an output it may have."""
        assert state.stored == set(self.outputs)
        for points in state.files.values():
            for point, output in points.items():
                assert output in self.outputs[point], (point, output)
        assert state.broken <= set(self.damaged), "a file broke that no step damaged"

    def damage(self, step: Step) -> None:
        state = read_cache(self.root)
        how, which, where = step.damage
        if how == "segment":  # an index segment: rebuilt from the chunk files, nothing lost
            segments = sorted(self.root.glob("*/index/*.idx"))
            if segments:
                victim = segments[min(int(which * len(segments)), len(segments) - 1)]
                damage(victim, "flip", where)
                event("damage: segment")
            return
        if not state.files:
            return
        paths = sorted(state.files)
        victim = paths[min(int(which * len(paths)), len(paths) - 1)]
        damage(victim, how, where)
        event(f"damage: {how}")
        self.damaged[victim] = set(state.files[victim])
        others = set().union(*(pts for p, pts in state.files.items() if p != victim))
        for point in state.files[victim].keys() - others:
            del self.outputs[point]
            self.excused[point] += 1
        self.check_cache(read_cache(self.root))

    def compute(self, step: Step) -> None:
        before = read_cache(self.root)
        self.check_cache(before)
        points = requested_points(step)
        by_repr = {repr(p): (p, canon_point(p, step.order)) for p in points}
        wanted = {c for _, c in by_repr.values()}
        assert len(wanted) == len(by_repr) == len(points)  # no point twice, no repr twice
        self.counting.reset()
        memo = self.memo(step)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # damaged files are reported
            if step.kind == "stream":
                diag = memo.run_streaming(PARAMS, step.spec)
            else:
                output, diag = memo.run(PARAMS, step.spec)
        calls = Counter(self.counting.calls())
        assert all(n == 1 for n in calls.values()), f"executed twice in one call: {calls}"
        assert set(calls) <= set(by_repr), f"executed points not requested: {calls}"
        executed = {by_repr[r][1] for r in calls}
        # Streaming checks each file as a run loading it would (checksum and key included).
        must = wanted - self.servable(before, step)
        assert must <= executed, f"not executed: {must - executed}"
        assert executed <= must, f"stored points executed again: {executed - must}"
        self.excused.update(must & before.stored)  # stored by other code: recomputed
        if must & set(self.excused):
            event("lost points executed again")
        for r in calls:
            point, c = by_repr[r]
            self.executions[c] += 1
            computed = norm({**expected_output(PARAMS, point), "version": step.version})
            if c in before.stored and c in self.outputs:  # other code's copies may stay
                self.outputs[c].add(computed)
            elif c in must:
                self.outputs[c] = {computed}
            else:  # pragma: no cover - asserted above: a stored point never runs again
                self.outputs[c].add(computed)
        assert diag.total_points == len(points)
        assert diag.executed_points == len(executed)
        assert diag.cached_points + diag.executed_points == diag.total_points
        if step.kind == "run":
            assert len(output) == len(points)
            for out, (_, c) in zip(output, (by_repr[repr(p)] for p in points), strict=True):
                assert norm(out) in self.outputs[c], (c, out)
            self.check_code_warning(step, output, caught)
        after = read_cache(self.root)
        assert wanted <= after.stored
        dropped = set(self.outputs) - after.stored
        assert not dropped, f"stored points dropped from the cache: {dropped}"
        self.check_cache(after)

    def read(self, step: Step) -> None:
        state = read_cache(self.root)
        self.check_cache(state)
        points = requested_points(step)
        canon = [canon_point(p, step.order) for p in points]
        servable = self.servable(state, step)
        exact = sum(c not in servable for c in canon)
        event(f"read: {step.kind}, {'some' if exact else 'none'} missing")
        memo = self.memo(step)
        before = snapshot(self.root)
        self.counting.reset()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if step.kind == "status":
                status = memo.status(PARAMS, step.spec)
                assert status.missing_points == exact  # the accounting of a run
                assert status.total_points == len(points)
            else:
                try:
                    output, diag = memo.load(PARAMS, step.spec, strict=step.kind == "strict")
                except CacheMissError:
                    assert step.kind == "strict"
                    assert exact > 0, "strict load raised with nothing missing"
                else:
                    assert diag.missing_points == exact
                    assert step.kind != "strict" or diag.missing_points == 0
                    self.check_served(output, canon, servable, servable)
                    self.check_code_warning(step, output, caught)
        assert self.counting.count() == 0
        assert snapshot(self.root) == before, "a read changed the cache"

    def collide(self, step: Step) -> None:
        """A ``chunk_hash_fn`` naming every chunk alike: refused before any work when the
        request has two chunks or more (they would overwrite each other)."""
        chunks = math.prod(-(-len(step.spec[a]) // step.bins[a]) for a in step.order)
        if chunks < 2:
            event("collide: one chunk, no collision to refuse")
            return
        event("collide: refused")
        memo = self.memo(step)
        memo.config = dataclasses.replace(memo.config, chunk_hash_fn=lambda p, key, v: "same")
        before = snapshot(self.root)
        self.counting.reset()
        with pytest.raises(SpecError, match="same"):
            memo.run(PARAMS, step.spec)
        assert self.counting.count() == 0
        assert snapshot(self.root) == before

    def check_served(
        self, output: list[Any], canon: list[Canon], sure: set[Canon], maybe: set[Canon]
    ) -> None:
        """``output`` lists, in request order, every sure point and some maybe points."""
        rest = iter(output)
        pending = next(rest, None)
        for c in canon:
            if pending is not None and c in maybe and norm(pending) in self.outputs[c]:
                pending = next(rest, None)
            else:
                assert c not in sure, f"stored point {c} not served"
        assert pending is None, f"served something not requested: {pending}"

    def step(self, step: Step) -> None:
        for values in step.spec.values():
            event(f"axis: {type(values).__name__} of {sorted({type(v).__name__ for v in values})}")
            canon = {canon_value(v) for v in values}
            if ("f", "nan") in canon:
                event("axis holds NaN")
            if {("i", 1), ("f", "0x1.0000000000000p+0")} <= canon:
                event("axis holds 1 and 1.0")
        if step.kind == "damage":
            self.damage(step)
        elif step.kind == "collide":
            self.collide(step)
        elif step.kind in ("run", "stream"):
            self.compute(step)
        else:
            self.read(step)

    def check_executions(self) -> None:
        """Over the whole sequence: once per point, plus once per excuse to run again."""
        for c, n in self.executions.items():
            assert n <= 1 + self.excused[c], (c, n, self.excused[c])
        assert set(self.outputs) <= set(self.executions)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request_sequences())
def test_any_call_sequence_matches_the_model(request_sequence):
    with tempfile.TemporaryDirectory() as tmp:
        model = Model(Path(tmp) / "cache", CountingExec(Path(tmp) / "calls.log"))
        for step in request_sequence:
            model.step(step)
        model.check_executions()


@pytest.mark.parametrize(
    ("value", "other"),
    [(1, 1.0), (0.0, -0.0), (1, "1")],
)
def test_model_keeps_equal_values_of_other_types_apart(value, other):
    assert canon_value(value) != canon_value(other)


def test_model_keys_numpy_values_and_every_nan_alike():
    np_ = pytest.importorskip("numpy")
    assert canon_value(np_.int32(3)) == canon_value(3)
    assert canon_value(np_.float32(0.5)) == canon_value(np_.float64(0.5)) == canon_value(0.5)
    assert canon_value(np_.float32("nan")) == canon_value(float("nan")) == canon_value(math.nan)
