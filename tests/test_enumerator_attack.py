"""Attacks on the warm-hit trust of a stored enumerator fingerprint (issue 23, lever 2): a
warm run may skip ``enumerate_points`` only when the fingerprint it compares sees what the
enumerator reads, and taking the fingerprint never breaks a run."""

from __future__ import annotations

import json
import os
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import CountingExec, chunk_files, edit_module, module_file
from swarm_memo import SwarmMemo
from swarm_memo.cache.codec import HEADER_SIZE, read_header
from swarm_memo.identity.fingerprint import code_fingerprint

SPLIT = {"i": list(range(12))}
Enumerator = Callable[[dict[str, object], dict[str, list[object]]], list[tuple[object, ...]]]


def memo_for(
    root: Path, enumerate_points: Enumerator, counting: object, **options: object
) -> SwarmMemo:
    return SwarmMemo(
        root / "cache",
        {"i": 4},
        2,
        exec_fn=counting,
        enumerate_points=enumerate_points,
        max_workers=1,
        verbose=0,
        **options,
    )


def stamps(root: Path) -> set[object]:
    found = set()
    for path in chunk_files(root / "cache"):
        data = path.read_bytes()
        meta = json.loads(data[HEADER_SIZE : HEADER_SIZE + read_header(data).meta_length])
        found.add(meta.get("enumerator"))
    return found


class Settings:
    """A plain object: no canonical encoding, so a fingerprint sees only its type."""

    def __init__(self, step: int) -> None:
        self.step = step


def closing_over(settings: Settings) -> Enumerator:
    def enumerate_points(params, split_spec):
        return [(v,) for v in split_spec["i"][:: settings.step]]

    return enumerate_points


class Slotted:
    """A callable object whose state lives in slots (no ``__dict__``)."""

    __slots__ = ("step",)

    def __init__(self, step: int) -> None:
        self.step = step

    def __call__(self, params, split_spec):
        return [(v,) for v in split_spec["i"][:: self.step]]


@pytest.mark.parametrize(
    "make", [lambda step: closing_over(Settings(step)), Slotted], ids=["closure", "slots"]
)
def test_an_enumerator_whose_state_the_fingerprint_cannot_see_is_called(tmp_path, make):
    """Two enumerators listing different points but with one fingerprint (their state is
    an object it sees by type only): the second is called on warm hits, never trusted."""
    counting = CountingExec(tmp_path / "calls.log")
    memo_for(tmp_path, make(1), counting).run({}, SPLIT)
    assert code_fingerprint(make(1)) == code_fingerprint(make(2))  # the blind spot
    assert stamps(tmp_path) == {None}  # nothing to trust
    memo = memo_for(tmp_path, make(2), counting)
    evens = [(v,) for v in range(0, 12, 2)]
    outputs, diag = memo.run({}, SPLIT)
    assert [o["point"] for o in outputs] == evens
    assert diag.total_points == 6
    assert [o["point"] for o in memo.load({}, SPLIT, strict=True)[0]] == evens
    assert memo.status({}, SPLIT).total_points == 6
    assert memo.run_streaming({}, SPLIT).cached_points == 6
    assert counting.count() == 12  # every even point was stored already


class Lazy:
    """A callable proxy whose attribute lookups raise: it cannot be fingerprinted."""

    __slots__ = ()

    def __getattr__(self, name: str) -> object:
        raise RuntimeError(f"not loaded yet: {name}")

    def __call__(self, params, split_spec):
        return [(v,) for v in reversed(split_spec["i"])]


def test_an_enumerator_that_cannot_be_fingerprinted_still_runs(tmp_path):
    """The fingerprint failing is no error: every point is computed and stored, and warm
    runs call the enumerator (nothing is trusted)."""
    counting = CountingExec(tmp_path / "calls.log")
    memo = memo_for(tmp_path, Lazy(), counting)
    cold, diag = memo.run({}, SPLIT)
    assert [o["point"] for o in cold] == [(v,) for k in (3, 7, 11) for v in range(k, k - 4, -1)]
    assert diag.executed_points == 12
    assert len(chunk_files(tmp_path / "cache")) == 3
    assert stamps(tmp_path) == {None}
    assert memo.run({}, SPLIT)[0] == cold
    assert memo.status({}, SPLIT).cached_points == 12
    assert counting.count() == 12


SEEN: dict[tuple[object, ...], list[tuple[object, ...]]] = {}


def remembering(params, split_spec):
    """An enumerator that fills a module-level memo of what it listed, and logs its calls."""
    with open(os.environ["ENUM_ATTACK_LOG"], "a") as log:
        log.write("call\n")
    key = tuple(split_spec["i"])
    if key not in SEEN:
        SEEN[key] = [(v,) for v in reversed(split_spec["i"])]
    return SEEN[key]


def test_the_stamp_is_the_fingerprint_the_run_started_with(tmp_path, monkeypatch):
    """The stamp is taken when the call is planned, before the enumerator runs (not on a
    writer thread while the driver enumerates more chunks and fills the state the
    fingerprint reads): a new process, whose state is the cold run's at its start,
    trusts the files."""
    log = tmp_path / "enum.log"
    monkeypatch.setenv("ENUM_ATTACK_LOG", str(log))
    SEEN.clear()
    before = code_fingerprint(remembering).hex()
    counting = CountingExec(tmp_path / "calls.log")
    cold, _ = memo_for(tmp_path, remembering, counting).run({}, SPLIT)
    assert stamps(tmp_path) == {before}
    SEEN.clear()  # as in a new process
    log.unlink()
    outputs, diag = memo_for(tmp_path, remembering, counting).run({}, SPLIT)
    assert outputs == cold
    assert diag.cached_points == 12
    assert not log.exists()  # trusted: not called
    assert counting.count() == 12
    SEEN.clear()


@pytest.fixture
def helper_module(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[types.ModuleType]:
    """A user module of helpers, in a real file under ``tmp_path``, edited by the test."""
    name = "enumattack_" + "".join(c if c.isalnum() else "_" for c in request.node.name)
    source = "STEP = 1\n\n\ndef pick(values):\n    return values[::STEP]\n"
    with module_file(tmp_path / "code", name, source) as module:
        yield module


def through(module: types.ModuleType) -> Enumerator:
    """An enumerator reaching a module of helpers only through its closure."""
    return lambda params, split_spec: [(v,) for v in module.pick(split_spec["i"])]


def test_an_enumerator_reaching_a_module_through_a_closure_is_called(tmp_path, helper_module):
    """A fingerprint records a module held in a closure by its name only (its helpers are
    not followed): an edit of a helper changes no fingerprint, so it is never trusted."""
    counting = CountingExec(tmp_path / "calls.log")
    enumerate_points = through(helper_module)
    before = code_fingerprint(enumerate_points)
    memo_for(tmp_path, enumerate_points, counting).run({}, SPLIT)
    edit_module(helper_module, "STEP = 1", "STEP = 3")
    assert code_fingerprint(enumerate_points) == before  # the blind spot
    memo = memo_for(tmp_path, enumerate_points, counting)
    outputs, diag = memo.run({}, SPLIT)
    assert [o["point"] for o in outputs] == [(v,) for v in (0, 3, 4, 7, 8, 11)]
    assert diag.total_points == 6
    assert memo.status({}, SPLIT).total_points == 6
    assert counting.count() == 12


def test_status_and_streaming_call_an_untrusted_enumerator_once_per_chunk(tmp_path):
    """Files no fingerprint vouches for: ``status`` and ``run_streaming`` enumerate each
    stored chunk once to compare its points (not once to see whether they are the product,
    then again to compare them)."""
    calls: list[str] = []
    settings = Settings(1)

    def enumerate_points(params, split_spec):
        calls.append(repr(split_spec["i"][0]))
        return [(v,) for v in reversed(split_spec["i"][:: settings.step])]

    counting = CountingExec(tmp_path / "calls.log")
    memo = memo_for(tmp_path, enumerate_points, counting)
    memo.run({}, SPLIT)
    calls.clear()
    assert memo.status({}, SPLIT).cached_points == 12
    assert sorted(calls) == ["0", "4", "8"]
    calls.clear()
    assert memo.run_streaming({}, SPLIT).cached_points == 12
    assert sorted(calls) == ["0", "4", "8"]
    assert counting.count() == 12


def listing(shift: int, keep: int) -> Enumerator:
    """The first ``keep`` values of each chunk, plus the first one shifted by ``shift``
    (no shift: nothing added). Logs its calls."""

    def enumerate_points(params, split_spec):
        with open(os.environ["ENUM_ATTACK_LOG"], "a") as log:
            log.write("call\n")
        values = split_spec["i"]
        added = [(values[0] + shift,)] if shift else []
        return [(v,) for v in values[:keep]] + added

    return enumerate_points


def test_a_file_keeping_points_the_enumerator_no_lists_is_never_trusted(tmp_path, monkeypatch):
    """A chunk completed for an enumerator while its file keeps points of an earlier one is
    not stamped: it lists more than the enumerator returns, so a warm hit compares."""
    log = tmp_path / "enum.log"
    monkeypatch.setenv("ENUM_ATTACK_LOG", str(log))
    counting = CountingExec(tmp_path / "calls.log")
    memo_for(tmp_path, listing(0, 4), counting).run({}, SPLIT)  # every point, stamped
    narrower = listing(100, 2)  # two stored points and a new one per chunk
    expected = [(v,) for k in (0, 4, 8) for v in (k, k + 1, k + 100)]
    outputs, _ = memo_for(tmp_path, narrower, counting).run({}, SPLIT)
    assert [o["point"] for o in outputs] == expected
    assert counting.count() == 15
    for _ in range(2):
        memo = memo_for(tmp_path, narrower, counting)
        assert [o["point"] for o in memo.run({}, SPLIT)[0]] == expected
        assert [o["point"] for o in memo.load({}, SPLIT, strict=True)[0]] == expected
        assert memo.status({}, SPLIT).total_points == 9
    assert counting.count() == 15


class OtherCode(CountingExec):
    """``CountingExec`` with other code: its outputs differ."""

    def __call__(self, params, point):
        return {**super().__call__(params, point), "version": 2}


def test_a_trusted_file_of_other_code_is_recomputed_under_recompute(tmp_path, monkeypatch):
    """Trusting a file's points never trusts its outputs: ``on_code_change='recompute'``
    recomputes outputs of other code on a stamped file too."""
    monkeypatch.setenv("ENUM_ATTACK_LOG", str(tmp_path / "enum.log"))
    enumerate_points = listing(0, 3)
    memo_for(tmp_path, enumerate_points, CountingExec(tmp_path / "calls.log")).run({}, SPLIT)
    other = OtherCode(tmp_path / "calls.log")
    memo = memo_for(tmp_path, enumerate_points, other, on_code_change="recompute")
    assert memo.status({}, SPLIT).missing_points == 9
    outputs, diag = memo.run({}, SPLIT)
    assert [o.get("version") for o in outputs] == [2] * 9
    assert diag.executed_points == 9
    assert other.count() == 18


def stepping(step: int) -> Enumerator:
    return lambda params, split_spec: [(v,) for v in split_spec["i"][::step]]


def test_a_lambda_closing_over_a_value_is_trusted_per_value(tmp_path):
    """A lambda's fingerprint holds its closure's values: each step is stamped and trusted
    on its own, and the other step's files are compared, never trusted."""
    counting = CountingExec(tmp_path / "calls.log")
    memo_for(tmp_path, stepping(1), counting).run({}, SPLIT)
    one = stamps(tmp_path)
    assert None not in one
    outputs, diag = memo_for(tmp_path, stepping(2), counting).run({}, SPLIT)
    assert [o["point"] for o in outputs] == [(v,) for v in range(0, 12, 2)]
    assert diag.total_points == 6
    assert memo_for(tmp_path, stepping(2), counting).status({}, SPLIT).total_points == 6
    assert stamps(tmp_path) == one  # nothing computed, nothing written
    assert counting.count() == 12


STRATEGIES: types.ModuleType | None = None
"""A user module of helpers, set by the test below."""


def dispatching(params, split_spec):
    """An enumerator calling a helper found by a computed name (not spelled in its code)."""
    return [(v,) for v in getattr(STRATEGIES, "pick")(split_spec["i"])]  # noqa: B009


def test_an_enumerator_looking_helpers_up_by_name_is_called(tmp_path, helper_module, monkeypatch):
    """A fingerprint follows the names a function spells: a helper reached through
    ``getattr`` is not followed, so its edit changes no fingerprint; such an enumerator is
    never trusted."""
    monkeypatch.setattr(sys.modules[__name__], "STRATEGIES", helper_module)
    counting = CountingExec(tmp_path / "calls.log")
    before = code_fingerprint(dispatching)
    memo_for(tmp_path, dispatching, counting).run({}, SPLIT)
    edit_module(helper_module, "STEP = 1", "STEP = 3")
    assert code_fingerprint(dispatching) == before  # the blind spot
    outputs, diag = memo_for(tmp_path, dispatching, counting).run({}, SPLIT)
    assert [o["point"] for o in outputs] == [(v,) for v in (0, 3, 4, 7, 8, 11)]
    assert diag.total_points == 6
    assert counting.count() == 12
