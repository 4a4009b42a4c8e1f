"""The canonical encoding: stable, type-aware, refuses what it cannot key."""

from __future__ import annotations

import dataclasses
import enum
import math
import pathlib
from collections import OrderedDict

import pytest

from helpers import outputs_under_hash_seeds
from swarm_memo import UnhashableValueError
from swarm_memo.identity.hashing import digest

np = pytest.importorskip("numpy")


class Color(enum.Enum):
    RED = 1
    BLUE = 2


@dataclasses.dataclass(frozen=True)
class Cfg:
    lr: float
    layers: tuple


GOLDEN_CASES = {
    "none": None,
    "true": True,
    "one": 1,
    "one_float": 1.0,
    "one_str": "1",
    "big": 2**100,
    "neg": -5,
    "bytes": b"ab",
    "list": [1, "a", None],
    "tuple": (1, 2),
    "dict": {"b": 2, "a": [1, 2.5]},
    "set": {3, 1, 2},
    "nan": math.nan,
    "negzero": -0.0,
    "path": pathlib.PurePosixPath("/tmp/x"),
    "np_array": np.arange(6, dtype=np.int64).reshape(2, 3),
    "np_scalar": np.float32(1.5),
    "np_complex": np.complex128(1 + 2j),
}

# Pinned: a change here invalidates every user's cache. Bump ENCODING_VERSION on purpose.
# Version 2 changed np_scalar on purpose: a numpy scalar with a Python equivalent now
# encodes as that Python value (np.float32(1.5) keys like 1.5). np_complex was added in 2.
GOLDEN_DIGESTS = {
    "none": "738096e476d3c5447c3cb95c39bfc964",
    "true": "0583525866ce6d4c711b8d319b34a247",
    "one": "54d7c54b7c32398e3300a2d91f850b60",
    "one_float": "4d4346ac1a663fd98f65ca64cfb41948",
    "one_str": "9da68e24be2e54a6c65bf00564671761",
    "big": "4b94e774bb81ba37766b2482eff019ce",
    "neg": "e71d82ce5c8bc7025ee27470d5fd2d47",
    "bytes": "36b96533162039b6a4e52d534f62ebbd",
    "list": "1c778e2ad37367024d205748eceb9aa0",
    "tuple": "c9f9c76c830c779e86dbbb92321e72c5",
    "dict": "8fea81438a0b2c24fbe6976269e23b9a",
    "set": "1db1d34d562a830f6b2ef36528965fb3",
    "nan": "5d595b4f2a9d814944f8df4ab7ddf27b",
    "negzero": "e1ebd447d3de8834cb9e59316b0f4ddd",
    "path": "56f0e630e453fc0020bdcbbedafb76b8",
    "np_array": "b50c4d4e45f55b1f5dd994aaccf982c0",
    "np_scalar": "ad63c8fa7d1cc4c26efa73c470a1cf9a",
    "np_complex": "e0c3357def742863641ebabe8945a271",
}


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_digests_stay_the_same(name):
    assert digest(GOLDEN_CASES[name]) == GOLDEN_DIGESTS[name]


def test_digests_are_the_same_in_another_process_with_another_hash_seed():
    code = (
        "from swarm_memo.identity.hashing import digest;"
        "print(digest({'b': {3, 1, 'x'}, 'a': ('q', frozenset({2, 'y'}))}))"
    )
    assert len(outputs_under_hash_seeds(code, ("0", "1", "987"))) == 1


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (1, 1.0),
        (1, True),
        (1, "1"),
        (0, False),
        (0.0, -0.0),
        ([1, 2], (1, 2)),
        ({1, 2}, frozenset({1, 2})),
        (b"a", "a"),
        (None, "None"),
        (Color.RED, 1),
        (Color.RED, Color.BLUE),
        (np.int64(1), 1.0),
        (np.float64(1.0), 1),
        (np.bool_(True), 1),
        (np.float32(0.1), 0.1),
        (np.complex128(1), 1.0),
        (np.datetime64("2020-01-01"), np.datetime64("2020-01-02")),
        (np.arange(4), np.arange(4).reshape(2, 2)),
        (np.arange(4, dtype=np.int64), np.arange(4, dtype=np.int32)),
        (Cfg(0.1, (1,)), {"lr": 0.1, "layers": (1,)}),
        ({"a": 1}, {"a": 1.0}),
        ([[1], 2], [1, [2]]),
        ("ab", "a\x00b"),
    ],
)
def test_distinct_values_have_distinct_digests(a, b):
    assert digest(a) != digest(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
        ({3, "x", 1}, {1, 3, "x"}),
        (math.nan, float("nan")),
        (math.nan, -math.nan),
        (OrderedDict([("b", 1), ("a", 2)]), {"a": 2, "b": 1}),
        (Cfg(0.1, (1, 2)), Cfg(0.1, (1, 2))),
        (pathlib.PurePosixPath("a/b"), pathlib.PurePosixPath("a//b")),
        (np.array([1.5, 2.5]), np.array([1.5, 2.5])),
        (np.int64(1), 1),
        (np.int64(1), np.int32(1)),
        (np.uint8(3), 3),
        (np.float64(1.5), 1.5),
        (np.float32(1.5), 1.5),
        (np.float16(0.5), 0.5),
        (np.float64("nan"), math.nan),
        (np.bool_(True), True),
        (np.str_("a"), "a"),
        (np.bytes_(b"a"), b"a"),
        ({"k": np.float64(1.5)}, {"k": 1.5}),
        ([np.int32(1), np.int64(2)], [1, 2]),
    ],
)
def test_equal_values_have_equal_digests(a, b):
    assert digest(a) == digest(b)


class Model:
    """Its repr holds a memory address: it must never become part of a key."""


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"model": Model()}, r"params\['model'\]"),
        ({"fn": len}, r"params\['fn'\]"),
        ({"xs": [1, object()]}, r"params\['xs'\]\[1\]"),
        ({"s": {Model()}}, r"params\['s'\] element"),
        ({"arr": np.array([Model()], dtype=object)}, r"params\['arr'\]"),
        ({"a": [1, {"b": (2, Model())}]}, r"params\['a'\]\[1\]\['b'\]\[1\] has type"),
        ({Model(): 1}, r"params key <"),
        ({"e": Cfg(Model(), ())}, r"params\['e'\]\['lr'\] has type"),
    ],
)
def test_values_without_a_stable_encoding_are_refused_with_their_location(value, where):
    with pytest.raises(UnhashableValueError, match=where) as info:
        digest(value, "params")
    assert info.value.where.startswith("params")


def test_chunk_file_names_stay_the_same():
    from swarm_memo import SwarmMemo
    from swarm_memo.run.plan import Access, plan_run

    memo = SwarmMemo("unused", {"x": 2, "s": 1}, 1, verbose=0)
    plan = plan_run(memo.config, {"a": 1}, {"x": [1, 2, 3], "s": ["u"]}, access=Access.READ)
    assert [name for _, name in plan.named_chunks] == [
        "907ad5b37a292b34a4f47ea65716ffb7",
        "4389b63e6ccf57e84c3387202d60a6a8",
    ]


def test_bin_digests_keep_their_int64_and_generic_forms():
    from swarm_memo.identity.bindigest import sequence_digest

    assert sequence_digest([1, 2]).hex() == "15d52f1986508c07dcc24816b2a0ddeb"
    assert sequence_digest([1, 2**70]).hex() == "8b493ae7af6d54a911bf53e9e311c25f"
    distinct = {sequence_digest(v) for v in ([1, 2], [1.0, 2.0], [True, 2], [1, "2"], [2, 1])}
    assert len(distinct) == 5
    assert sequence_digest([1, 2]) == sequence_digest((1, 2)) == sequence_digest(range(1, 3))


def test_float_bins_have_a_pinned_packed_form():
    from swarm_memo.identity.bindigest import sequence_digest

    # New in encoding version 2: float bins are digested as a packed float64 array.
    assert sequence_digest([0.5, 1.5]).hex() == "7bc2dd5593f263b7699a2a5840970a05"
    assert sequence_digest([0.5, math.nan, -0.0]).hex() == "e989393d6dd89c40574d23411f1a0d1d"
    assert sequence_digest([0.0]) != sequence_digest([-0.0])


class Meters(float):
    """A float subclass: encodes as a float, so it must take the float form too."""


class Count(int):
    """An int subclass: encodes as an int."""


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([1, 2, 3], np.arange(1, 4, dtype=np.int32)),
        ([1, 2, 3], [np.uint8(1), np.int16(2), np.int64(3)]),
        ([1, 2, 3], [Count(1), Count(2), 3]),
        ([0.5, 1.5], np.array([0.5, 1.5])),
        ([0.5, 1.5], [np.float32(0.5), np.float16(1.5)]),
        ([0.5, 1.5], [Meters(0.5), 1.5]),
        ([math.nan, 1.0], [np.float64("nan"), 1.0]),
        ([math.nan, 1.0], [-math.nan, np.float32(1.0)]),
        ([2**64 - 1, 1], [np.uint64(2**64 - 1), np.uint8(1)]),
        (["a", 1], [np.str_("a"), np.int8(1)]),
        ([], ()),
    ],
)
def test_bin_digest_form_depends_on_values_not_types(a, b):
    from swarm_memo.identity.bindigest import encodings_digest, sequence_digest
    from swarm_memo.identity.hashing import encode_items

    assert sequence_digest(a) == sequence_digest(b)
    assert encodings_digest(encode_items(b)) == sequence_digest(a)


class CountingKey(str):
    """A str key that counts how often its repr is built."""

    reprs = 0

    def __repr__(self) -> str:
        CountingKey.reprs += 1
        return super().__repr__()


def test_encoding_builds_no_location_text_unless_a_value_is_refused():
    CountingKey.reprs = 0
    digest({CountingKey(f"k{i}"): [i, {CountingKey("x"): 1.5}] for i in range(100)}, "params")
    assert CountingKey.reprs == 0
    with pytest.raises(UnhashableValueError, match=r"params\['k1'\]\[1\]\['x'\] has type"):
        digest({CountingKey("k1"): [1, {CountingKey("x"): Model()}]}, "params")
