"""Canonical, type-tagged encoding of Python values and the digests built on it.

Keys of the cache must be identical across processes, machines, ``PYTHONHASHSEED`` and
dict insertion order, so nothing here uses ``repr``, ``str`` of arbitrary objects or the
builtin ``hash``. Every value is written as a type tag followed by a length-prefixed body;
dict items and set elements are sorted by their *encoded* bytes. ``1``, ``1.0``, ``True``
and ``"1"`` have different tags and so never collide. A type without a canonical encoding
raises :class:`~swarm_memo.errors.UnhashableValueError` naming where the value sits.

Changing anything in this module changes every digest, i.e. invalidates every cache: the
golden digests in ``tests/test_hashing.py`` guard against doing so by accident. Bump
``ENCODING_VERSION`` when it is done on purpose.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import math
import struct
import sys
from array import array
from collections.abc import Callable, Sequence
from pathlib import PurePath
from typing import Any

from .errors import UnhashableValueError

ENCODING_VERSION = 1
DIGEST_SIZE = 16

_Encoder = Callable[[Any, str, bytearray], None]


def _length(n: int, out: bytearray) -> None:
    out += n.to_bytes(8, "big")


def _enc_none(value: None, where: str, out: bytearray) -> None:
    out += b"N"


def _enc_bool(value: bool, where: str, out: bytearray) -> None:
    out += b"T" if value else b"F"


def _enc_int(value: int, where: str, out: bytearray) -> None:
    body = value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True)
    out += b"i"
    _length(len(body), out)
    out += body


_CANONICAL_NAN = struct.pack(">d", math.nan)


def _enc_float(value: float, where: str, out: bytearray) -> None:
    # Every NaN is the same NaN (payload bits carry no meaning for a sweep); -0.0 keeps its
    # sign bit and stays distinct from 0.0, as a function of it may differ (atan2, 1/x).
    out += b"f"
    out += _CANONICAL_NAN if value != value else struct.pack(">d", value)


def _enc_str(value: str, where: str, out: bytearray) -> None:
    body = value.encode("utf-8", "surrogatepass")
    out += b"s"
    _length(len(body), out)
    out += body


def _enc_bytes(value: bytes | bytearray, where: str, out: bytearray) -> None:
    out += b"b"
    _length(len(value), out)
    out += value


def _enc_sequence(tag: bytes) -> _Encoder:
    def encode_sequence(value: Any, where: str, out: bytearray) -> None:
        out += tag
        _length(len(value), out)
        for i, item in enumerate(value):
            encode_into(item, f"{where}[{i}]", out)

    return encode_sequence


def _encoded(value: Any, where: str) -> bytes:
    buf = bytearray()
    encode_into(value, where, buf)
    return bytes(buf)


def _enc_dict(value: dict[Any, Any], where: str, out: bytearray) -> None:
    items = []
    for key, item in value.items():
        key_bytes = _encoded(key, f"{where} key {key!r}")
        items.append((key_bytes, _encoded(item, f"{where}[{key!r}]")))
    items.sort()
    out += b"d"
    _length(len(items), out)
    for key_bytes, item_bytes in items:
        out += key_bytes
        out += item_bytes


def _enc_set(tag: bytes) -> _Encoder:
    def encode_set(value: Any, where: str, out: bytearray) -> None:
        elements = sorted(_encoded(item, f"{where} element") for item in value)
        out += tag
        _length(len(elements), out)
        for element in elements:
            out += element

    return encode_set


_EXACT: dict[type, _Encoder] = {
    type(None): _enc_none,
    bool: _enc_bool,
    int: _enc_int,
    float: _enc_float,
    str: _enc_str,
    bytes: _enc_bytes,
    bytearray: _enc_bytes,
    list: _enc_sequence(b"l"),
    tuple: _enc_sequence(b"t"),
    dict: _enc_dict,
    set: _enc_set(b"S"),
    frozenset: _enc_set(b"Z"),
}


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _enc_numpy(value: Any, where: str, out: bytearray) -> bool:
    """Encode a numpy scalar or array; return False when ``value`` is neither."""
    np = sys.modules.get("numpy")
    if np is None:
        return False
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            out += b"A"
            encode_into(list(value.shape), where, out)
            encode_into(value.ravel().tolist(), where, out)
            return True
        out += b"a"
        _enc_str(str(value.dtype.descr), where, out)
        encode_into(list(value.shape), where, out)
        _enc_bytes(np.ascontiguousarray(value).tobytes(), where, out)
        return True
    if isinstance(value, np.generic):
        if value.dtype.hasobject:
            return False
        out += b"g"
        _enc_str(str(value.dtype.descr), where, out)
        _enc_bytes(value.tobytes(), where, out)
        return True
    return False


def encode_into(value: Any, where: str, out: bytearray) -> None:
    """Append the canonical encoding of ``value`` to ``out``.

    ``where`` names the value for error messages, e.g. ``"params['model']"``.
    """
    encoder = _EXACT.get(type(value))
    if encoder is not None:
        encoder(value, where, out)
    elif isinstance(value, enum.Enum):
        out += b"e"
        _enc_str(_qualified_name(type(value)), where, out)
        encode_into(value.value, f"{where}.value", out)
    elif isinstance(value, PurePath):
        out += b"p"
        _enc_str(value.as_posix(), where, out)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        out += b"D"
        _enc_str(_qualified_name(type(value)), where, out)
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        _enc_dict(fields, where, out)
    elif _enc_numpy(value, where, out):
        pass
    else:
        _encode_subclass(value, where, out)


def _encode_subclass(value: Any, where: str, out: bytearray) -> None:
    # Subclasses of the builtins (IntEnum is handled above; OrderedDict, namedtuple, str
    # subclasses) are encoded as their builtin base: they compare equal to it.
    for base, encoder in _EXACT.items():
        if base is not type(None) and isinstance(value, base):
            encoder(value, where, out)
            return
    cls = type(value)
    raise UnhashableValueError(
        f"{where or 'value'} has type {_qualified_name(cls)}, which swarm-memo cannot hash "
        "stably; use builtins (dict, list, tuple, str, int, float, bool, None, bytes, set), "
        "pathlib paths, enums, dataclasses or numpy values, or convert it to one",
        where=where,
        value_type=cls,
    )


def encode(value: Any, where: str = "value") -> bytes:
    """Return the canonical encoding of ``value``."""
    return _encoded(value, where)


def digest_bytes(data: bytes) -> bytes:
    """Return the raw digest of already-encoded bytes."""
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE).digest()


def digest(value: Any, where: str = "value") -> str:
    """Return a stable hex digest of ``value`` (32 hex characters).

    Examples
    --------
    >>> digest({"b": 1, "a": 2}) == digest({"a": 2, "b": 1})
    True
    >>> digest(1) == digest(1.0)
    False
    """
    return digest_bytes(encode(value, where)).hex()


_INT64 = (-(2**63), 2**63 - 1)
_INT_ONLY = frozenset({int})


def is_int64_sequence(values: Sequence[Any], types: frozenset[type] | None = None) -> bool:
    """True when every value is a plain ``int`` (not bool) that fits in 64 bits.

    ``types``, the set of the values' types, may be passed when already known.
    """
    if types is None:
        types = frozenset(map(type, values))
    if not values or types != _INT_ONLY:
        return False
    return bool(_INT64[0] <= min(values) and max(values) <= _INT64[1])


def sequence_digest(
    values: Sequence[Any], where: str = "values", int64: bool | None = None
) -> bytes:
    """Raw digest of a sequence of values (an axis bin), fast for long integer bins.

    A sequence of plain ints that all fit in 64 bits is digested as their big-endian
    int64 array (one C call instead of one encoding per value); anything else as the
    concatenation of canonical encodings. The two forms carry different tags, and which
    form applies depends only on the values, so equal sequences always agree.
    ``int64`` may pass that answer when the caller knows it (for a whole axis at once).
    """
    count = len(values).to_bytes(8, "big")
    if int64 is None:
        int64 = is_int64_sequence(values)
    if int64 and values:
        packed = array("q", values)
        if sys.byteorder == "little":
            packed.byteswap()
        return digest_bytes(b"Q" + count + packed.tobytes())
    parts = [encode(v, where) for v in values]
    return digest_bytes(b"G" + count + b"".join(parts))


def point_digest(point: Any, where: str = "point") -> bytes:
    """Return the raw 16-byte digest of one point, used by the point index."""
    return digest_bytes(encode(point, where))
