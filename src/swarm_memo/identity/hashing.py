"""Canonical, type-tagged encoding of Python values and the digests built on it.

Keys of the cache must be identical across processes, machines, ``PYTHONHASHSEED`` and
dict insertion order, so nothing here uses ``repr``, ``str`` of arbitrary objects or the
builtin ``hash``. Every value is written as a type tag followed by a length-prefixed body;
dict items and set elements are sorted by their *encoded* bytes. ``1``, ``1.0``, ``True``
and ``"1"`` have different tags and so never collide. A numpy scalar with a Python
equivalent (bool, int, float up to 64 bits, str, bytes) is encoded exactly as that Python
value, so ``np.float64(1.5)`` keys like ``1.5``. A type without a canonical encoding
raises :class:`~swarm_memo.errors.UnhashableValueError` naming where the value sits; that
location is only built when the error is raised, never on the hot path.

Changing anything in this module changes digests, i.e. invalidates caches: the golden
digests in ``tests/test_hashing.py`` guard against doing so by accident. Bump
``ENCODING_VERSION`` when it is done on purpose.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import math
import struct
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from swarm_memo.errors import UnhashableValueError
from swarm_memo.identity.nesting import too_deep

if TYPE_CHECKING:
    import numpy as np

ENCODING_VERSION = 2
"""2: numpy scalars encode as their Python equivalent; float bins have a packed form."""
DIGEST_SIZE = 16

_Encoder = Callable[[Any, bytearray], None]


class _Refused(Exception):
    """Internal: a value without a canonical encoding.

    Containers append their part of the location (``[3]``, ``['key']``) while the
    exception unwinds, so no location string is built unless a value is refused.
    """

    def __init__(self, value_type: type) -> None:
        super().__init__(value_type)
        self.value_type = value_type
        self.path: list[str] = []

    def error(self, where: str) -> UnhashableValueError:
        location = where + "".join(reversed(self.path))
        return UnhashableValueError(
            f"{location or 'value'} has type {_qualified_name(self.value_type)}, which "
            "swarm-memo cannot hash stably; use builtins (dict, list, tuple, str, int, float, "
            "bool, None, bytes, set), pathlib paths, enums, dataclasses or numpy values, or "
            "convert it to one",
            where=location,
            value_type=self.value_type,
        )


def _length(n: int, out: bytearray) -> None:
    out += n.to_bytes(8, "big")


def _enc_none(value: None, out: bytearray) -> None:
    out += b"N"


def _enc_bool(value: bool, out: bytearray) -> None:
    out += b"T" if value else b"F"


_INT_HEADS = tuple(b"i" + n.to_bytes(8, "big") for n in range(256))


def _enc_int(value: int, out: bytearray) -> None:
    n = (value.bit_length() + 8) >> 3
    out += _INT_HEADS[n] if n < 256 else b"i" + n.to_bytes(8, "big")
    out += value.to_bytes(n, "big", signed=True)


_CANONICAL_NAN = struct.pack(">d", math.nan)
_NAN_ENCODING = b"f" + _CANONICAL_NAN
_pack_float = struct.Struct(">cd").pack


def _enc_float(value: float, out: bytearray) -> None:
    # Every NaN is the same NaN (payload bits carry no meaning for a sweep); -0.0 keeps its
    # sign bit and stays distinct from 0.0, as a function of it may differ (atan2, 1/x).
    out += _NAN_ENCODING if value != value else _pack_float(b"f", value)


def _enc_str(value: str, out: bytearray) -> None:
    body = value.encode("utf-8", "surrogatepass")
    out += b"s"
    _length(len(body), out)
    out += body


def _enc_bytes(value: bytes | bytearray, out: bytearray) -> None:
    out += b"b"
    _length(len(value), out)
    out += value


def _enc_items(items: Iterable[Any], out: bytearray) -> None:
    """Encode each item in turn; ints and floats inline (the hot path of long lists)."""
    i = 0
    try:
        for i, item in enumerate(items):  # noqa: B007  # i names a refused item
            cls = type(item)
            if cls is int:
                n = (item.bit_length() + 8) >> 3
                if n < 256:
                    out += _INT_HEADS[n]
                    out += item.to_bytes(n, "big", signed=True)
                else:
                    _enc_int(item, out)
            elif cls is float:
                out += _NAN_ENCODING if item != item else _pack_float(b"f", item)
            else:
                _encode_value(item, out)
    except _Refused as exc:
        exc.path.append(f"[{i}]")
        raise


def _enc_sequence(tag: bytes) -> _Encoder:
    def encode_sequence(value: Sequence[object], out: bytearray) -> None:
        out += tag
        _length(len(value), out)
        _enc_items(value, out)

    return encode_sequence


def _encoded(value: object) -> bytes:
    buf = bytearray()
    _encode_value(value, buf)
    return bytes(buf)


def _enc_dict(value: Mapping[object, object], out: bytearray) -> None:
    items = []
    for key, item in value.items():
        try:
            key_bytes = _encoded(key)
        except _Refused as exc:
            exc.path.append(f" key {key!r}")
            raise
        try:
            items.append((key_bytes, _encoded(item)))
        except _Refused as exc:
            exc.path.append(f"[{key!r}]")
            raise
    items.sort()
    out += b"d"
    _length(len(items), out)
    for key_bytes, item_bytes in items:
        out += key_bytes
        out += item_bytes


def _enc_set(tag: bytes) -> _Encoder:
    def encode_set(value: Set[object], out: bytearray) -> None:
        try:
            elements = sorted(map(_encoded, value))
        except _Refused as exc:
            exc.path.append(" element")
            raise
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
# Subclasses of these builtins (OrderedDict, namedtuple, str subclasses) encode as the
# base: they compare equal to it. IntEnum is an enum first (handled before).
_BASES = tuple((base, enc) for base, enc in _EXACT.items() if base is not type(None))


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _python_scalar(value: np.generic) -> bool | int | float | str | bytes | None:
    """The Python value equal to a numpy scalar, or None when there is none."""
    kind = value.dtype.kind
    if kind == "b":
        return bool(value)
    if kind in "iu":
        return int(value)
    if kind == "f" and value.dtype.itemsize <= 8:  # longdouble has no Python equivalent
        return float(value)
    if kind == "U":
        return str(value)
    if kind == "S" and isinstance(value, bytes):  # numpy.bytes_ is a bytes subclass
        return bytes(value)
    return None


def _enc_numpy(value: object, out: bytearray) -> bool:
    """Encode a numpy scalar or array; return False when ``value`` is neither."""
    np = sys.modules.get("numpy")
    if np is None:
        return False
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            out += b"A"
            _encode_value(list(value.shape), out)
            _encode_value(value.ravel().tolist(), out)
            return True
        out += b"a"
        _enc_str(str(value.dtype.descr), out)
        _encode_value(list(value.shape), out)
        _enc_bytes(np.ascontiguousarray(value).tobytes(), out)
        return True
    if isinstance(value, np.generic):
        python = _python_scalar(value)
        if python is not None:
            _EXACT[type(python)](python, out)
            return True
        if value.dtype.hasobject:
            return False
        out += b"g"  # complex, datetime64, longdouble...: dtype-tagged raw bytes
        _enc_str(str(value.dtype.descr), out)
        _enc_bytes(value.tobytes(), out)
        return True
    return False


def _encode_value(value: object, out: bytearray) -> None:
    encoder = _EXACT.get(type(value))
    if encoder is not None:
        encoder(value, out)
    else:
        _encode_other(value, out)


def _encode_other(value: object, out: bytearray) -> None:
    if isinstance(value, enum.Enum):
        out += b"e"
        _enc_str(_qualified_name(type(value)), out)
        try:
            _encode_value(value.value, out)
        except _Refused as exc:
            exc.path.append(".value")
            raise
    elif isinstance(value, PurePath):
        out += b"p"
        _enc_str(value.as_posix(), out)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        out += b"D"
        _enc_str(_qualified_name(type(value)), out)
        _enc_dict({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, out)
    elif not _enc_numpy(value, out):
        for base, encoder in _BASES:
            if isinstance(value, base):
                encoder(value, out)
                return
        raise _Refused(type(value))


def encode_into(value: object, where: str, out: bytearray) -> None:
    """Append the canonical encoding of ``value`` to ``out``.

    ``where`` names the value for error messages, e.g. ``"params['model']"``.

    Raises
    ------
    UnhashableValueError
        When ``value`` holds something without a canonical encoding; its ``where``
        attribute locates it, e.g. ``params['xs'][1]``.
    """
    try:
        _encode_value(value, out)
    except _Refused as exc:
        raise exc.error(where) from None
    except RecursionError:
        raise too_deep(value, where) from None


def encode(value: object, where: str = "value") -> bytes:
    """Return the canonical encoding of ``value`` (see :func:`encode_into`)."""
    buf = bytearray()
    encode_into(value, where, buf)
    return bytes(buf)


def encode_items(values: Iterable[object], where: str = "values") -> list[bytes]:
    """Return the canonical encoding of each value; ``where[i]`` names a refused one."""
    encodings = []
    i = 0
    try:
        for i, value in enumerate(values):  # noqa: B007  # i names a refused value
            buf = bytearray()
            _encode_value(value, buf)
            encodings.append(bytes(buf))
    except _Refused as exc:
        exc.path.append(f"[{i}]")
        raise exc.error(where) from None
    except RecursionError:
        raise too_deep(value, f"{where}[{i}]") from None
    return encodings


def digest_bytes(data: bytes) -> bytes:
    """Return the raw digest of already-encoded bytes."""
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE).digest()


def digest_parts(*parts: bytes | memoryview) -> hashlib.blake2b:
    """A hasher fed ``parts`` in turn: ``digest_bytes`` of their concatenation, without
    building it (params holding big arrays encode to many megabytes). ``.copy()`` it to
    digest many suffixes of one long prefix, each prefix byte hashed once."""
    hasher = hashlib.blake2b(digest_size=DIGEST_SIZE)
    for part in parts:
        hasher.update(part)
    return hasher


def digest(value: object, where: str = "value") -> str:
    """Return a stable hex digest of ``value`` (32 hex characters).

    Examples
    --------
    >>> digest({"b": 1, "a": 2}) == digest({"a": 2, "b": 1})
    True
    >>> digest(1) == digest(1.0)
    False
    """
    return digest_bytes(encode(value, where)).hex()


def point_digest(point: object, where: str = "point") -> bytes:
    """Return the raw 16-byte digest of one point, used by the point index."""
    return digest_bytes(encode(point, where))


def short_description(value: object, width: int = 200) -> str:
    """A bounded description of a value for messages: its repr, cut to ``width``
    characters, with a digest when cut (so two long values can still be told apart)."""
    text = repr(value)
    if len(text) <= width:
        return text
    try:
        tag = f"digest {digest(value)[:12]}"
    except UnhashableValueError:
        tag = "no digest"
    return f"{text[:width]}... ({len(text):,} characters, {tag})"


_SCALAR_KINDS: dict[type, str] = {int: "i", float: "f", str: "s"}


def scalar_kind(cls: type) -> str:
    """How values of type ``cls`` always encode: ``"i"`` (an int), ``"f"`` (a float),
    ``"s"`` (a str) or ``""`` (anything else). numpy scalar types encode like the Python
    scalar of their kind (floats up to 64 bits). Cached per type: a type's kind never
    changes."""
    kind = _SCALAR_KINDS.get(cls)
    if kind is None:
        kind = ""
        np = sys.modules.get("numpy")
        if np is not None and issubclass(cls, np.generic):
            dtype = np.dtype(cls)
            if dtype.kind in "iu":
                kind = "i"
            elif dtype.kind == "f" and dtype.itemsize <= 8:
                kind = "f"
            elif dtype.kind == "U":
                kind = "s"
        _SCALAR_KINDS[cls] = kind
    return kind


def equal(a: object, b: object) -> bool:
    """Whether two values are the same (``==``, or the same canonical encoding)."""
    try:
        if a is b or bool(a == b):
            return True
    except Exception:
        pass
    try:
        return encode(a) == encode(b)
    except TypeError:
        return False
