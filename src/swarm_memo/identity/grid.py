"""The grid: split spec -> axis bins -> memo chunks -> chunk keys. Pure; no I/O.

Input is validated here, once, into frozen dataclasses; nothing downstream re-checks it.
"""

from __future__ import annotations

import itertools
import math
import numbers
import operator
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, overload

from swarm_memo.core.types import ChunkKey
from swarm_memo.errors import SpecError, SpecTypeError
from swarm_memo.identity.bindigest import (
    encodings_digest,
    packed_array,
    packed_digest,
    packed_values,
    sequence_digest,
)
from swarm_memo.identity.hashing import digest_bytes, encode, encode_items


def _check_positive_int(value: object, name: str, hint: str = "an int >= 1") -> int:
    # numpy integers are accepted (as everywhere else); bools, floats and strings are not
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SpecTypeError(f"{name} must be {hint}; got {value!r} ({type(value).__name__})")
    if value < 1:
        raise SpecError(f"{name} must be {hint}; got {value!r}")
    return int(value)


def _parse_bin_size(axis: str, spec: object) -> int:
    name = f"memo_chunk_spec[{axis!r}]"
    hint = "an int >= 1 or {'size': n}"
    if isinstance(spec, Mapping):
        if set(spec) != {"size"}:
            raise SpecError(f"{name} must be {hint}; got {dict(spec)!r}")
        return _check_positive_int(spec["size"], name, hint)
    return _check_positive_int(spec, name, hint)


@dataclass(frozen=True)
class ChunkLayout:
    """Validated ``memo_chunk_spec`` and ``axis_order``: bin size per axis, axis order."""

    bin_sizes: tuple[tuple[str, int], ...]
    axis_order: tuple[str, ...]

    @classmethod
    def parse(cls, memo_chunk_spec: object, axis_order: Sequence[str] | None) -> ChunkLayout:
        if not isinstance(memo_chunk_spec, Mapping):
            raise SpecTypeError(
                "memo_chunk_spec must be a dict of axis name -> bin size; "
                f"got {type(memo_chunk_spec).__name__}"
            )
        for axis in memo_chunk_spec:
            if not isinstance(axis, str):
                raise SpecTypeError(f"memo_chunk_spec keys must be str axis names; got {axis!r}")
        sizes = {axis: _parse_bin_size(axis, spec) for axis, spec in memo_chunk_spec.items()}
        order = tuple(sizes) if axis_order is None else _parse_axis_order(axis_order, sizes)
        return cls(tuple((axis, sizes[axis]) for axis in order), order)

    def bin_size(self, axis: str) -> int:
        return dict(self.bin_sizes)[axis]


def _parse_axis_order(axis_order: object, axes: Mapping[str, int]) -> tuple[str, ...]:
    if isinstance(axis_order, (str, bytes)) or not isinstance(axis_order, Sequence):
        raise SpecTypeError(f"axis_order must be a sequence of axis names; got {axis_order!r}")
    order = tuple(axis_order)
    if sorted(order, key=repr) != sorted(axes, key=repr) or len(set(order)) != len(order):
        raise SpecError(
            f"axis_order must be a permutation of the memo_chunk_spec axes {sorted(axes)}; "
            f"got {list(order)}"
        )
    return order


class AxisValues(Sequence[object]):
    """An axis's values in order, read through its bins: the bins are the only copy of
    the values an axis keeps (a million values cost 8 MB once, not twice)."""

    def __init__(self, bins: tuple[tuple[object, ...], ...], bin_size: int) -> None:
        self._bins = bins
        self._bin_size = bin_size
        self._len = sum(map(len, bins))

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[object]:
        return itertools.chain.from_iterable(self._bins)

    @overload
    def __getitem__(self, index: int) -> object: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[object, ...]: ...
    def __getitem__(self, index: int | slice) -> object:
        if isinstance(index, slice):
            return tuple(self)[index]
        position = index + self._len if index < 0 else index
        if not 0 <= position < self._len:
            raise IndexError("axis value index out of range")
        bin_index, offset = divmod(position, self._bin_size)
        return self._bins[bin_index][offset]

    def __repr__(self) -> str:
        return f"AxisValues({tuple(self)!r:.200})"


@dataclass(frozen=True)
class Axis:
    """One split axis: its values in the order given, cut into bins of ``bin_size``.

    One digest per bin is computed when the axis is built: planning a grid costs O(values)
    once and its memory does not grow with the number of points. The values are kept
    once, as the bins' tuples (``values`` reads through them). The canonical encoding of
    every value (needed only to find stored points) is computed on first use and kept.
    """

    name: str
    bins: tuple[tuple[object, ...], ...]
    bin_size: int
    bin_digests: tuple[bytes, ...] = field(repr=False, compare=False)
    value_encodings: tuple[bytes, ...] | None = field(default=None, repr=False, compare=False)
    """Encodings already computed while building the axis, if any (else lazily)."""
    whole_digest: bytes | None = field(default=None, repr=False, compare=False)
    """Digest of the whole value list, if computed while building the axis (else lazily)."""

    @cached_property
    def list_digest(self) -> bytes:
        """Digest of the whole value list, whatever the bins: equal exactly for equal lists
        (by canonical encoding); computed without encoding every value one by one."""
        if self.whole_digest is not None:
            return self.whole_digest
        return sequence_digest(self.values, f"split_spec[{self.name!r}]")

    @cached_property
    def values(self) -> AxisValues:
        """Every value, in order (a view of the bins, no copy)."""
        return AxisValues(self.bins, self.bin_size)

    @cached_property
    def bin_encodings(self) -> tuple[tuple[bytes, ...], ...]:
        """Canonical encodings of every value, bin by bin."""
        encodings = self.value_encodings
        if encodings is None:
            encodings = tuple(encode_items(self.values, f"split_spec[{self.name!r}]"))
        n = self.bin_size
        return tuple(encodings[i : i + n] for i in range(0, len(encodings), n))

    @cached_property
    def name_encoding(self) -> bytes:
        return encode(self.name)


def _duplicate_error(
    where: str, values: tuple[object, ...], encodings: Sequence[bytes]
) -> SpecError:
    seen: dict[bytes, int] = {}
    for i, enc in enumerate(encodings):
        if enc in seen:
            return SpecError(
                f"{where} holds the value {values[i]!r} twice (positions {seen[enc]} and {i}); "
                "each axis value must be unique"
            )
        seen[enc] = i
    raise AssertionError("no duplicate found")  # pragma: no cover


def _parse_axis(name: str, values: Any, bin_size: int) -> Axis:
    where = f"split_spec[{name!r}]"
    is_list = isinstance(values, (Sequence, range)) or type(values).__name__ == "ndarray"
    if isinstance(values, (str, bytes, Mapping)) or not is_list:
        raise SpecTypeError(
            f"{where} must be a list of values; got {type(values).__name__} {values!r:.80}"
        )
    in_numpy = packed_array(values)  # a numpy axis of ints or floats: numpy does it
    values = tuple(values)
    starts = range(0, len(values), bin_size)
    packed = in_numpy[:2] if in_numpy is not None else packed_values(values)
    if packed is not None:  # every bin is packed too: one C call for the whole axis
        tag, data = packed
        if in_numpy is not None:
            distinct = in_numpy[2]
        elif _increasing(values):  # sorted axes (the usual ones) need no 32 MB set
            distinct = len(values)
        elif tag == b"Q":  # ints (numpy ones too) are equal exactly when encodings are
            distinct = len(set(values))
        else:  # floats: -0.0 == 0.0 and nan != nan, so compare the packed words
            words = array("q")
            words.frombytes(data)  # equal 8-byte words <=> equal encodings
            distinct = len(set(words))
        if distinct != len(values):
            raise _duplicate_error(where, values, encode_items(values, where))
        view = memoryview(data)  # bins hashed in place: slices of bytes would copy them
        digests = tuple(packed_digest(tag, view[8 * i : 8 * (i + bin_size)]) for i in starts)
        bins = tuple(values[i : i + bin_size] for i in starts)
        return Axis(name, bins, bin_size, digests, None, packed_digest(tag, data))
    encodings = tuple(encode_items(values, where))
    if len(set(encodings)) != len(encodings):
        raise _duplicate_error(where, values, encodings)
    digests = tuple(encodings_digest(encodings[i : i + bin_size]) for i in starts)
    bins = tuple(values[i : i + bin_size] for i in starts)
    return Axis(name, bins, bin_size, digests, encodings, encodings_digest(encodings))


def _increasing(values: tuple[object, ...]) -> bool:
    """Whether packed ints or floats strictly increase (then they are distinct, and so are
    their encodings): one C pass, no memory, where a set of a million ints takes 32 MB.
    NaN, and -0.0 next to 0.0, are not increasing."""
    less: Callable[..., object] = operator.lt  # ints or floats only (packed)
    return all(map(less, values, itertools.islice(values, 1, None)))


@dataclass(frozen=True)
class Chunk:
    """One memo chunk: a bin of every axis (in axis order) and its position in the grid."""

    index: int
    axes: tuple[str, ...]
    bins: tuple[tuple[object, ...], ...]
    bin_digests: tuple[bytes, ...] = field(repr=False, compare=False)
    origin: tuple[tuple[Axis, int], ...] = field(repr=False, compare=False)
    """Which bin of which :class:`Axis` each bin is (encodings are cached there)."""

    @property
    def bin_encodings(self) -> tuple[tuple[bytes, ...], ...]:
        """Canonical encodings of every bin value, for point lookups in the index."""
        return tuple(axis.bin_encodings[i] for axis, i in self.origin)

    @property
    def key(self) -> ChunkKey:
        """``((axis, bin values), ...)`` sorted by axis name: independent of axis order."""
        return tuple(sorted(zip(self.axes, self.bins, strict=True), key=lambda item: item[0]))

    @property
    def split_spec(self) -> dict[str, list[object]]:
        """The chunk's sub-spec, passed to ``enumerate_points``, in axis order."""
        return {axis: list(values) for axis, values in zip(self.axes, self.bins, strict=True)}

    @property
    def product_size(self) -> int:
        """Number of points of the cartesian product of the bins."""
        return math.prod(len(b) for b in self.bins)

    def key_digest(self) -> bytes:
        """Digest of the chunk key, computed from per-bin digests (axis order ignored)."""
        return self._key_digest

    @cached_property
    def _key_digest(self) -> bytes:
        parts = sorted(axis.name_encoding + axis.bin_digests[i] for axis, i in self.origin)
        return digest_bytes(b"".join(parts))


@dataclass(frozen=True)
class Grid:
    """A validated split spec laid out by a :class:`ChunkLayout`."""

    axes: tuple[Axis, ...]

    @classmethod
    def build(cls, split_spec: object, layout: ChunkLayout) -> Grid:
        if not isinstance(split_spec, Mapping):
            raise SpecTypeError(
                f"split_spec must be a dict of axis name -> list of values; "
                f"got {type(split_spec).__name__}"
            )
        given, expected = set(split_spec), set(layout.axis_order)
        if given != expected:
            raise SpecError(
                f"split_spec axes {sorted(given, key=repr)} do not match memo_chunk_spec axes "
                f"{sorted(expected)}: missing from split_spec {sorted(expected - given)}, "
                f"unknown to memo_chunk_spec {sorted(given - expected, key=repr)}"
            )
        return cls(
            tuple(_parse_axis(name, split_spec[name], size) for name, size in layout.bin_sizes)
        )

    @property
    def axis_names(self) -> tuple[str, ...]:
        return tuple(axis.name for axis in self.axes)

    @property
    def chunk_count(self) -> int:
        return math.prod(len(axis.bins) for axis in self.axes)

    def chunks(self) -> Iterator[Chunk]:
        """Yield every memo chunk, the first axis varying slowest."""
        names = self.axis_names
        bin_ranges = [range(len(axis.bins)) for axis in self.axes]
        for index, combo in enumerate(itertools.product(*bin_ranges)):
            yield Chunk(
                index,
                names,
                tuple(axis.bins[i] for axis, i in zip(self.axes, combo, strict=True)),
                tuple(axis.bin_digests[i] for axis, i in zip(self.axes, combo, strict=True)),
                tuple(zip(self.axes, combo, strict=True)),
            )


def strides(lengths: Sequence[int]) -> list[int]:
    """Row-major strides of a grid of these lengths (the first axis varies slowest)."""
    out, stride = [], 1
    for length in reversed(lengths):
        out.append(stride)
        stride *= length
    return out[::-1]


def product_points(
    params: Mapping[str, object], chunk_split_spec: Mapping[str, Sequence[object]]
) -> list[tuple[object, ...]]:
    """The default ``enumerate_points``: the cartesian product of the chunk's values.

    Points are tuples in the order of the chunk spec's axes (the memo's ``axis_order``).
    """
    return list(itertools.product(*chunk_split_spec.values()))
