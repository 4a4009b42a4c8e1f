"""Formatting for the ``swarm-memo`` command: sizes, times, ages, reprs and JSON.

Pure functions over values, used by :mod:`swarm_memo.cache.listing`,
:mod:`swarm_memo.inspection.maintenance` and :mod:`swarm_memo.cli`. None of them reads a cache or
raises on a value it cannot format, except :func:`parse_duration`, which rejects a bad
``--older-than`` with :class:`~swarm_memo.errors.InspectError` (the user error of every
CLI module).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import math
import pathlib
import re
import reprlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, TypeAlias

from swarm_memo.errors import InspectError

_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([smhdw])\s*", re.IGNORECASE)
JSONValue: TypeAlias = bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None
"""What ``json.dumps`` writes without a ``default``: what :func:`to_jsonable` returns."""

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def _make_repr() -> reprlib.Repr:
    r = reprlib.Repr()
    r.maxlevel = 4
    r.maxdict = r.maxlist = r.maxtuple = r.maxset = r.maxfrozenset = 12
    r.maxstring = 60
    r.maxother = 60
    r.maxlong = 40
    return r


_REPR = _make_repr()


def abbreviate(text: str, width: int = 60) -> str:
    """``text`` on one line, cut to ``width`` characters with a trailing ``...``."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    return text[: max(width - 3, 1)] + "..."


def short_repr(value: object, width: int = 60) -> str:
    """A one-line repr of ``value`` of at most ``width`` characters (never raises)."""
    try:
        text = _REPR.repr(value)
    except Exception:  # a broken __repr__ must not break a listing
        text = f"<{type(value).__name__}>"
    return abbreviate(text, width)


def format_bytes(n: int) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def iso_time(timestamp: float | None) -> str | None:
    """A local ISO 8601 time with its UTC offset, to the second; ``None`` stays ``None``."""
    if timestamp is None:
        return None
    moment = _dt.datetime.fromtimestamp(timestamp, tz=_dt.timezone.utc).astimezone()
    return moment.isoformat(timespec="seconds")


def format_age(seconds: float) -> str:
    """``5400`` -> ``'1.5h'``."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{max(seconds, 0.0):.0f}s"


def parse_duration(text: str) -> float:
    """``'30d'`` -> seconds. Units: ``s``, ``m``, ``h``, ``d`` (and ``w``); a unit is required."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise InspectError(
            f"bad duration {text!r}: use a number and a unit s, m, h or d (e.g. 30d, 12h, 90m)"
        )
    return float(match.group(1)) * _UNITS[match.group(2).lower()]


def to_jsonable(value: object, _depth: int = 0) -> JSONValue:
    """Convert params and axis values to JSON types; anything unknown becomes its repr.

    Tuples and sets become lists (sets sorted when possible), paths strings, numpy values
    their ``tolist()``, dataclasses dicts, non-finite floats the strings ``"nan"``,
    ``"inf"`` and ``"-inf"``. Never raises.
    """
    try:
        return _jsonable(value, _depth)
    except Exception:
        return short_repr(value, 200)


def _jsonable(value: object, depth: int) -> JSONValue:
    if depth > 40:
        return short_repr(value, 200)
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else repr(float(value))
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        return _container_jsonable(value, depth + 1)
    return _leaf_jsonable(value, depth)


def _container_jsonable(value: Collection[object], depth: int) -> JSONValue:
    if isinstance(value, dict):
        return {
            (k if isinstance(k, str) else short_repr(k, 200)): _jsonable(v, depth)
            for k, v in value.items()
        }
    items = sort_values(value) if isinstance(value, (set, frozenset)) else value
    return [_jsonable(v, depth) for v in items]


def _leaf_jsonable(value: object, depth: int) -> JSONValue:
    """Paths, bytes, dates, dataclasses, numpy values; anything else as a short repr."""
    if isinstance(value, pathlib.PurePath):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return repr(bytes(value))
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return {f.name: _jsonable(getattr(value, f.name), depth + 1) for f in fields}
    if type(value).__module__.split(".")[0] == "numpy" and hasattr(value, "tolist"):
        if getattr(value, "size", 1) > 10_000:
            return short_repr(value, 200)
        return _jsonable(value.tolist(), depth + 1)
    return short_repr(value, 200)


def sort_values(values: Iterable[Any]) -> list[Any]:
    """Values sorted naturally when they compare, else by (type name, repr)."""
    items = list(values)
    try:
        return sorted(items)
    except Exception:
        return sorted(items, key=lambda v: (type(v).__name__, short_repr(v, 1000)))


def distinguishing_params(all_params: Sequence[object], width: int = 60) -> list[str | None]:
    """For params (dicts, as ``params.json`` describes them) whose cut reprs would look
    alike, a line showing first the keys whose values differ between those sets
    (``alpha=0.1; same: model, seed``). None for the others (not a dict, or a repr that
    tells it apart already): the caller shows the usual repr."""
    texts: list[str | None] = [None] * len(all_params)
    alike: dict[tuple[str, tuple[str, ...]], list[tuple[int, Mapping[object, object]]]] = {}
    for i, params in enumerate(all_params):
        if isinstance(params, dict):
            keys = tuple(sorted(map(str, params)))
            alike.setdefault((short_repr(params, width), keys), []).append((i, params))
    for (_, keys), members in alike.items():
        if len(members) < 2:
            continue
        values = [{str(k): _canonical_json(v) for k, v in given.items()} for _, given in members]
        differing = [k for k in keys if len({v[k] for v in values}) > 1]
        if not differing:
            continue  # the same params (another cache_version): the repr says it all
        same = [k for k in keys if k not in differing]
        for i, given in members:
            params = {str(k): v for k, v in given.items()}
            shown = ", ".join(f"{k}={short_repr(params[k], 30)}" for k in differing)
            texts[i] = abbreviate(shown + (f"; same: {', '.join(same)}" if same else ""), width)
    return texts


def _canonical_json(value: object) -> str:
    import json

    try:
        return json.dumps(value, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        return repr(value)
