"""Finding stored axis bins that share values with a requested bin, without encoding them.

The point index (:mod:`swarm_memo.cache.index`) keeps, per axis, the *distinct* bins stored
(most files of a grid share their bins with many others). A requested bin is matched
against them in two steps:

1. a cheap filter: each bin has a :class:`Sketch` (per value kind, its smallest and largest
   value; whether it holds a NaN; whether it holds values of other types), computed from
   Python types and C-level ``min``/``max``, never from encodings. Per axis, bins are kept
   sorted by their lower bound, so the bins that may overlap a request are found by
   ``bisect`` in O(log bins + matches);
2. an exact match, only for the bins that pass: values are compared by :func:`value_key`,
   which is equal for two values exactly when their canonical encodings are equal (so
   ``1``, ``1.0`` and ``True`` stay apart, every NaN is the same NaN). Runs of ints stored
   as ``range`` are matched by arithmetic, without any per-value work.
"""

from __future__ import annotations

import math
import operator
import struct
from bisect import bisect_right
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

import xxhash

from swarm_memo.core.serial import DEFAULT_CODEC
from swarm_memo.identity.hashing import encode, scalar_kind

if TYPE_CHECKING:
    from typing_extensions import Self

_INT, _FLOAT, _STR = "i", "f", "s"


class Ordered(Protocol):
    """A bound of a :class:`Sketch`: an int, float or str, compared only with bounds of
    its own kind."""

    def __lt__(self, other: Self, /) -> bool: ...
    def __le__(self, other: Self, /) -> bool: ...
    def __gt__(self, other: Self, /) -> bool: ...
    def __ge__(self, other: Self, /) -> bool: ...


_unpack_float = struct.Struct(">d").unpack


def value_key(value: Any) -> Hashable:
    """A key equal for two values exactly when their canonical encodings are equal.

    Ints and strs (Python or numpy) are their own key, as a Python ``int`` / ``str``;
    everything else is keyed by its encoding, decoded back to an ``int`` / ``str`` when it
    is an int or str encoding (subclasses), so that the two forms never disagree.
    """
    cls = type(value)
    if cls is int or cls is str:
        key: Hashable = value
        return key
    kind = scalar_kind(cls)
    if kind == _INT:
        return int(value)
    if kind == _STR:
        return str(value)
    enc = encode(value, "axis value")
    tag = enc[:1]
    if tag == b"i":
        return int.from_bytes(enc[9:], "big", signed=True)
    if tag == b"s":
        return enc[9:].decode("utf-8", "surrogatepass")
    return enc


def value_types(values: Sequence[object]) -> set[type]:
    """The types of ``values``: one count when all are of the first's type (the usual
    bin, no set built), else their set."""
    if isinstance(values, range):
        return {int} if len(values) else set()
    if len(values) == 0:
        return set()
    first = type(values[0])
    if operator.countOf(map(type, values), first) == len(values):
        return {first}
    return set(map(type, values))


def value_keys(values: Sequence[object]) -> Sequence[Hashable]:
    """:func:`value_key` of each value (a bin of plain ints or strs is its own keys)."""
    if isinstance(values, range):
        return values
    types = value_types(values)
    if types == {int} or types == {str}:
        return values
    return [value_key(v) for v in values]


@dataclass
class Sketch:
    """What a bin may hold, for an overlap test: never says "no" wrongly.

    ``bounds`` maps a kind (int, float, str) to the smallest and largest value of that
    kind; ``nan`` says a float NaN is present; ``other`` that values of other types are
    (such a stored bin overlaps every request).
    """

    bounds: dict[str, tuple[Ordered, Ordered]] = field(default_factory=dict)
    nan: bool = False
    other: bool = False

    def add(self, kind: str, values: Sequence[Any]) -> None:
        if kind == _FLOAT:
            if math.isnan(sum(values)):
                numbers = [v for v in values if v == v]  # NaN, or inf - inf: look closer
                self.nan = self.nan or len(numbers) < len(values)
                values = numbers
            if not values:
                return
        low, high = min(values), max(values)
        cast = {_INT: int, _FLOAT: float, _STR: str}[kind]
        low, high = cast(low), cast(high)
        if kind in self.bounds:
            old_low, old_high = self.bounds[kind]
            low, high = min(low, old_low), max(high, old_high)
        self.bounds[kind] = (low, high)


def stored_sketch(values: Sequence[object]) -> Sketch:
    """The sketch of a stored bin, from its values' types (no encoding)."""
    sketch = Sketch()
    if isinstance(values, range):
        if len(values):
            first, last = values[0], values[-1]
            sketch.bounds[_INT] = (min(first, last), max(first, last))
        return sketch
    types = value_types(values)
    if len(types) == 1:
        kind = scalar_kind(next(iter(types)))
        if kind:
            sketch.add(kind, values)
        else:
            sketch.other = True
        return sketch
    by_kind: dict[str, list[object]] = {}
    for value in values:
        by_kind.setdefault(scalar_kind(type(value)), []).append(value)
    sketch.other = "" in by_kind
    for kind, group in by_kind.items():
        if kind:
            sketch.add(kind, group)
    return sketch


def keys_sketch(keys: Iterable[Hashable]) -> Sketch:
    """The sketch of a requested bin, from its values' keys (see :func:`value_key`)."""
    sketch = Sketch()
    ints: list[int] = []
    strs: list[str] = []
    floats: list[float] = []
    for key in keys:
        if type(key) is int:
            ints.append(key)
        elif type(key) is str:
            strs.append(key)
        elif isinstance(key, bytes) and key[:1] == b"f" and len(key) == 9:
            floats.append(_unpack_float(key[1:])[0])
        else:
            sketch.other = True
    for kind, group in ((_INT, ints), (_STR, strs), (_FLOAT, floats)):
        if group:
            sketch.add(kind, group)
    return sketch


def bin_identity(values: Sequence[object]) -> Hashable:
    """Equal for two stored bins only when they hold the same values (same encodings):
    a ``range`` is its own identity, any other bin the digest of its pickle."""
    if isinstance(values, range):
        return values
    return xxhash.xxh3_128_digest(DEFAULT_CODEC.dumps(values))  # in memory only


@dataclass
class _SortedBounds:
    """Bins of one kind sorted by lower bound, with the running maximum of upper bounds."""

    lows: list[Ordered]
    highs: list[Ordered]
    ids: list[int]
    reach: list[Ordered]
    """``reach[k]``: the largest upper bound among the first ``k + 1`` bins."""

    @classmethod
    def build(cls, entries: list[tuple[Ordered, Ordered, int]]) -> _SortedBounds:
        entries.sort(key=lambda e: e[0])
        reach: list[Ordered] = []
        for _, high, _ in entries:
            reach.append(high if not reach or high > reach[-1] else reach[-1])
        return cls([e[0] for e in entries], [e[1] for e in entries], [e[2] for e in entries], reach)

    def overlapping(self, low: Ordered, high: Ordered, out: set[int]) -> None:
        k = bisect_right(self.lows, high) - 1
        while k >= 0 and self.reach[k] >= low:
            if self.highs[k] >= low:
                out.add(self.ids[k])
            k -= 1


class AxisBins:
    """The distinct bins stored on one axis, and which of them may overlap a request."""

    def __init__(self) -> None:
        self.values: list[Sequence[object]] = []
        self._ids: dict[Hashable, int] = {}
        self._seen: dict[int, tuple[Sequence[object], int]] = {}

    def add(self, values: Sequence[object]) -> int:
        """The id of a stored bin (the same for every bin with the same values)."""
        seen = self._seen.get(id(values))
        if seen is not None and seen[0] is values:
            return seen[1]  # one run's records share their bins' objects (pickle memo)
        raw = values
        if not isinstance(values, range) and value_types(values) == {int}:
            values = _as_range(values) or values  # short runs are not compacted on disk
        identity = bin_identity(values)
        found = self._ids.get(identity)
        if found is None:
            found = self._ids[identity] = len(self.values)
            self.values.append(values)
            self.__dict__.pop("_search", None)
        if not isinstance(raw, range):
            self._seen[id(raw)] = (raw, found)  # holds ``raw``: its id is not reused
        return found

    @cached_property
    def _search(self) -> tuple[dict[str, _SortedBounds], list[int], list[int]]:
        """Per kind the sorted bounds; the bins holding a NaN; those holding other types."""
        entries: dict[str, list[tuple[Ordered, Ordered, int]]] = {}
        nan: list[int] = []
        other: list[int] = []
        for bin_id, values in enumerate(self.values):
            sketch = stored_sketch(values)
            for kind, (low, high) in sketch.bounds.items():
                entries.setdefault(kind, []).append((low, high, bin_id))
            if sketch.nan:
                nan.append(bin_id)
            if sketch.other:
                other.append(bin_id)
        kinds = {kind: _SortedBounds.build(group) for kind, group in entries.items()}
        return kinds, nan, other

    def overlapping(self, request: Sketch) -> set[int]:
        """Ids of the stored bins that may share a value with a bin of this sketch."""
        kinds, nan, other = self._search
        found = set(other)
        for kind, (low, high) in request.bounds.items():
            bounds = kinds.get(kind)
            if bounds is not None:
                bounds.overlapping(low, high, found)
        if request.nan:
            found.update(nan)
        return found


Pairs = tuple[Sequence[int], Sequence[int]]
"""Positions of shared values: in the requested bin, and at the same index in a stored one."""


def _as_range(values: Sequence[Any]) -> range | None:
    """Plain ints ``values`` as a range, when they have a constant step."""
    if isinstance(values, range):
        return values
    if len(values) < 2:
        return range(values[0], values[0] + 1) if values else None
    step = values[1] - values[0]
    if step == 0:
        return None
    run = range(values[0], values[-1] + (1 if step > 0 else -1), step)
    return run if len(run) == len(values) and tuple(run) == tuple(values) else None


def _range_pairs(wanted: range, stored: range) -> Pairs | None:
    """Shared values of two ranges of the same step, by arithmetic; None for other steps."""
    if wanted.step != stored.step:
        return None
    shift, rest = divmod(wanted.start - stored.start, stored.step)
    if rest:
        return range(0), range(0)
    first, stop = max(0, -shift), min(len(wanted), len(stored) - shift)
    if first >= stop:
        return range(0), range(0)
    return range(first, stop), range(first + shift, stop + shift)


class RequestBin:
    """One requested axis bin: keys, positions and sketch, each computed on first use."""

    def __init__(self, values: Sequence[object]) -> None:
        self.values = values
        self.overlap: set[int] | None = None
        """Ids of the stored bins of its axis that may share values with it (the index's)."""
        self.parts: dict[tuple[int, int, int], tuple[Sequence[int], Sequence[int]]] = {}
        """The index's offsets of shared values, by (stored bin, request and file strides)."""
        types = value_types(values)
        kind = _INT if types == {int} else _STR if types == {str} else ""
        self._plain = bool(kind)
        """Every value is a plain int (or every one a plain str): its own key."""
        self.run = _as_range(values) if kind == _INT else None
        """The values as a range, when they are ints with a constant step."""
        if self.run is not None:
            self.sketch = stored_sketch(self.run)
        elif kind:
            self.sketch = Sketch()
            self.sketch.add(kind, values)
        else:
            self.sketch = keys_sketch(self.keys)

    @cached_property
    def keys(self) -> Sequence[Hashable]:
        return self.values if self._plain else [value_key(v) for v in self.values]

    @cached_property
    def positions(self) -> dict[Hashable, int]:
        return {key: i for i, key in enumerate(self.keys)}

    def pairs(self, stored: Sequence[object], lookup: dict[Hashable, int] | None) -> Pairs:
        """Where the values shared with a stored bin are, in both bins. ``lookup`` maps
        the stored bin's keys to their positions (None for a ``range`` bin)."""
        if lookup is None and isinstance(stored, range) and self.run is not None:
            found = _range_pairs(self.run, stored)
            if found is not None:
                return found
        if len(stored) < len(self.values):  # walk the stored bin, look up the request
            where = self.positions
            items: Iterable[tuple[int, Hashable]] = (
                enumerate(stored) if lookup is None else ((j, k) for k, j in lookup.items())
            )
            matches = [(i, j) for j, key in items if (i := where.get(key)) is not None]
        elif lookup is not None:
            keys = self.keys
            matches = [(i, j) for i, key in enumerate(keys) if (j := lookup.get(key)) is not None]
        else:
            assert isinstance(stored, range)
            matches = _in_range(self.keys, stored)
        return [i for i, _ in matches], [j for _, j in matches]


def _in_range(keys: Sequence[Hashable], stored: range) -> list[tuple[int, int]]:
    start, step, size = stored.start, stored.step, len(stored)
    matches = []
    for i, key in enumerate(keys):
        if type(key) is int:
            j, rest = divmod(key - start, step)
            if not rest and 0 <= j < size:
                matches.append((i, j))
    return matches
