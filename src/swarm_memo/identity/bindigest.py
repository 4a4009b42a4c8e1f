"""Digests of axis bins: sequences of values, fast for long int and float bins.

A bin digest must be equal for equal sequences and only for them. It has three forms,
chosen from the values' canonical encodings (:mod:`swarm_memo.identity.hashing`) alone, never
from their Python types, so ``[1, 2]``, ``range(1, 3)`` and ``np.arange(1, 3,
dtype=np.int32)`` agree, and so do ``[0.5, nan]`` and ``np.array([0.5, np.nan])``:

- ``Q``: every value encodes as an int that fits in 64 bits -> big-endian int64 array;
- ``F``: every value encodes as a float -> big-endian float64 array (canonical NaN,
  ``-0.0`` kept distinct from ``0.0``);
- ``G``: otherwise, and when empty -> the concatenated canonical encodings.

``Q`` and ``F`` are fast paths: one C call for a whole axis instead of one encoding per
value. Changing this module changes chunk names: see ``ENCODING_VERSION``.
"""

from __future__ import annotations

import math
import operator
import sys
import types
from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from swarm_memo.identity.hashing import digest_bytes, digest_parts, encode_items, scalar_kind

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


def _kind(cls: type) -> str:
    """``"i"`` or ``"f"`` for types packed as one array; ``""`` otherwise."""
    kind = scalar_kind(cls)
    return "" if kind == "s" else kind


def _packed_bytes(values: array[int] | array[float]) -> bytes:
    if sys.byteorder == "little":
        values.byteswap()
    return values.tobytes()


def packed_values(values: Sequence[Any]) -> tuple[bytes, bytes] | None:
    """``(tag, bytes)`` of the packed form of ``values``, or None if it has none.

    The tag is ``b"Q"`` (8 bytes per value, big-endian int64) or ``b"F"`` (big-endian
    float64, every NaN canonical); see :func:`sequence_digest`. Decided from the values'
    types, which give the same answer as their encodings for the types recognised here;
    values of other types get None and are decided from their encodings.
    """
    if len(values) == 0:
        return None
    first = type(values[0])  # one type, the usual axis: counted without a set
    same = operator.countOf(map(type, values), first) == len(values)
    types = {first} if same else set(map(type, values))
    kinds = {_kind(cls) for cls in types}
    if kinds == {"i"}:
        try:  # exact types only: array() would also take bools and other __index__ types
            packed = array("q", values if types == {int} else [int(v) for v in values])
        except OverflowError:  # beyond int64: encoded value by value
            return None
        return b"Q", _packed_bytes(packed)
    if kinds == {"f"}:
        if any(map(math.isnan, values)):
            values = [math.nan if v != v else v for v in values]
        return b"F", _packed_bytes(array("d", values))
    return None


def packed_array(values: object) -> tuple[bytes, bytes, int] | None:
    """``(tag, bytes, distinct)`` for a 1-D numpy array of ints or floats: what
    :func:`packed_values` gives for its items, and how many distinct encodings they
    have, computed by numpy in a few passes; None for anything else (numpy is never
    imported here)."""
    np = sys.modules.get("numpy")
    if np is None or not isinstance(values, np.ndarray) or values.ndim != 1 or not len(values):
        return None
    kind, size = values.dtype.kind, values.dtype.itemsize
    if kind in "iu":
        if kind == "u" and size == 8 and values.max() > np.iinfo(np.int64).max:
            return None  # beyond int64: encoded value by value
        ints = values.astype(np.int64)
        return b"Q", ints.astype(">i8").tobytes(), _distinct(np, ints)
    if kind == "f" and size <= 8:
        floats = values.astype(np.float64)
        nans = np.isnan(floats)
        if nans.any():
            floats[nans] = math.nan  # one canonical NaN
        # -0.0 == 0.0 and nan != nan: equal encodings are equal 8-byte words
        return b"F", floats.astype(">f8").tobytes(), _distinct(np, floats.view(np.int64))
    return None


def _distinct(np: types.ModuleType, words: npt.NDArray[np.int64]) -> int:
    """How many distinct values a native int64 array holds (sorted: numpy's hashing
    unique is slower)."""
    ordered = np.sort(words)
    return len(ordered) - int(np.count_nonzero(ordered[1:] == ordered[:-1]))


def _packed_from_encodings(encodings: Sequence[bytes]) -> tuple[bytes, bytes] | None:
    if not encodings:
        return None
    first = encodings[0][:1]
    if first == b"f" and all(e[:1] == b"f" for e in encodings):
        return b"F", b"".join(e[1:] for e in encodings)
    if first == b"i" and all(e[:1] == b"i" and len(e) <= 17 for e in encodings):
        # an int encoding is tag, 8-byte length, minimal two's complement body: a body
        # of at most 8 bytes is exactly an int64
        return b"Q", b"".join(
            int.from_bytes(e[9:], "big", signed=True).to_bytes(8, "big", signed=True)
            for e in encodings
        )
    return None


def packed_digest(tag: bytes, packed: bytes | memoryview) -> bytes:
    """Digest of a packed sequence (see :func:`packed_values`)."""
    # fed in parts: a whole axis is megabytes, and a concatenation would copy it
    return digest_parts(tag, (len(packed) // 8).to_bytes(8, "big"), packed).digest()


def encodings_digest(encodings: Sequence[bytes]) -> bytes:
    """Digest of a sequence given its values' canonical encodings.

    Equal to :func:`sequence_digest` of the values (the packed form is used whenever it
    applies).
    """
    packed = _packed_from_encodings(encodings)
    if packed is not None:
        return packed_digest(*packed)
    return digest_bytes(b"G" + len(encodings).to_bytes(8, "big") + b"".join(encodings))


def sequence_digest(values: Sequence[object], where: str = "values") -> bytes:
    """Raw digest of a sequence of values (an axis bin), fast for int and float bins.

    The form (see the module docstring) depends only on the values' canonical encodings,
    so ``[1, 2]``, ``(1, 2)``, ``range(1, 3)`` and ``np.arange(1, 3, dtype=np.int32)``
    agree, and so do ``[0.5, nan]`` and ``np.array([0.5, np.nan])``.
    """
    packed = packed_values(values)
    if packed is not None:
        return packed_digest(*packed)
    return encodings_digest(encode_items(values, where))
