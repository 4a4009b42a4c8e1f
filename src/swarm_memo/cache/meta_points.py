"""Which points a chunk file holds, from its JSON meta alone (nothing is unpickled).

``swarm-memo ls`` and ``info`` count each stored point once, even when several chunk
files of a params set hold it (after a rebin, or inserts into an axis). The chunk key
lives in the pickled body, so the counting relies on two meta fields (written by
``_codec.ChunkRecord.meta``):

``key``
    The chunk key: ``[[axis, values], ...]`` in ``axes`` order. ``values`` is either
    ``{"range": [start, stop, step]}`` (a run of ints, as ``_codec.compact_key`` stores
    it) or a list of *items*; an item is the value itself when it is ``None``, a bool, an
    int, a str or a finite float, else ``{"id": <hex digest of its canonical encoding>,
    "repr": <its repr, shortened>}``.
``point_ids``
    Only when ``product`` is false (custom enumerator, partial chunk): the hex digests of
    the chunk's points (``_hashing.point_digest``), concatenated, in points order.

A chunk whose meta lacks them (written before they existed) adds its ``points`` count
as is, and the total is flagged as possibly counting some points twice.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeGuard

from swarm_memo.core.textfmt import short_repr
from swarm_memo.identity.hashing import digest_bytes, encode

Token = Hashable
"""The identity of one axis value (equal tokens <=> equal canonical encodings)."""


class MetaPoints(Protocol):
    """The fields of a chunk file's meta
    (:class:`~swarm_memo.cache.chunk_meta.ChunkMeta`) that say which points it holds."""

    @property
    def product(self) -> bool: ...
    @property
    def points(self) -> int | None: ...
    @property
    def key(self) -> Sequence[Sequence[object]] | None: ...
    @property
    def point_ids(self) -> str | None: ...


def item_token(item: object) -> Token:
    """Identity of one ``key`` item; ``1``, ``1.0``, ``True`` and ``"1"`` stay distinct."""
    if isinstance(item, dict):
        return ("id", str(item.get("id", item.get("repr", ""))))
    if isinstance(item, float):
        return ("float", repr(item))  # -0.0 is not 0.0, as in the canonical encoding
    return (type(item).__name__, item)


def item_display(item: object) -> object:
    """What to show for one ``key`` item: the value, or the repr of a non-JSON value."""
    if isinstance(item, dict):
        return str(item.get("repr", item.get("id", "?")))
    return item


def key_items(values: object) -> list[object]:
    """The items of one axis of ``key``, a ``range`` run expanded."""
    if isinstance(values, dict) and "range" in values:
        start, stop, step = (int(v) for v in values["range"])
        return list(range(start, stop, step))
    if isinstance(values, list):
        return values
    raise ValueError(f"malformed key values {values!r}")


def chunk_key(meta: MetaPoints) -> list[tuple[str, list[object]]] | None:
    """The chunk key of a chunk file's meta as ``[(axis, items)]``; None when absent."""
    key = meta.key
    if key is None:
        return None
    try:
        return [(str(axis), key_items(values)) for axis, values in key]
    except (TypeError, ValueError):
        return None


def _point_ids(meta: MetaPoints) -> list[str] | None:
    ids, count = meta.point_ids, meta.points
    if ids is None or count is None or count <= 0:
        return [] if count == 0 else None
    if len(ids) % count:
        return None
    width = len(ids) // count
    return [ids[i : i + width] for i in range(0, len(ids), width)]


@dataclass
class PointCounter:
    """Counts distinct points over the metas of one params set's chunk files."""

    _bins: dict[tuple[tuple[str, frozenset[Token]], ...], int] = field(default_factory=dict)
    _enumerated: set[str] = field(default_factory=set)
    _loose: int = 0
    exact: bool = True
    """False when a chunk without ``key``/``point_ids`` was counted as is."""

    def add(self, meta: MetaPoints) -> None:
        """Account for one chunk file."""
        if meta.product:
            key = chunk_key(meta)
            if key is not None:
                bins = tuple(sorted((a, frozenset(map(item_token, v))) for a, v in key))
                self._bins[bins] = math.prod(len(tokens) for _, tokens in bins)
                return
        else:
            ids = _point_ids(meta)
            if ids is not None:
                self._enumerated.update(ids)
                return
        points = meta.points
        self._loose += points if points is not None and points > 0 else 0
        self.exact = False

    def total(self) -> int:
        """Distinct points seen (plus the counts of chunks without identities)."""
        return self._product_points() + len(self._enumerated) + self._loose

    def _product_points(self) -> int:
        if _disjoint(self._bins):
            return sum(self._bins.values())
        seen: set[tuple[Token, ...]] = set()
        for bins in self._bins:
            seen.update(itertools.product(*(tokens for _, tokens in bins)))
        return len(seen)


def _disjoint(chunks: Iterable[tuple[tuple[str, frozenset[Token]], ...]]) -> bool:
    """True when the chunks come from one binning: each value of each axis sits in one
    bin only and all chunks share their axes, so distinct chunks hold distinct points."""
    owner: dict[tuple[str, Token], frozenset[Token]] = {}
    axes: set[tuple[str, ...]] = set()
    for bins in chunks:
        axes.add(tuple(a for a, _ in bins))
        for axis, tokens in bins:
            for token in tokens:
                if owner.setdefault((axis, token), tokens) != tokens:
                    return False
    return len(axes) <= 1


def count_distinct_points(metas: Iterable[MetaPoints]) -> tuple[int, bool]:
    """``(distinct points, exact)`` over the metas of one params set's chunk files."""
    counter = PointCounter()
    for meta in metas:
        counter.add(meta)
    return counter.total(), counter.exact


def axis_values(metas: Iterable[MetaPoints]) -> dict[str, list[object]]:
    """Per axis, the distinct values (display form) found in the metas' chunk keys."""
    per_axis: dict[str, dict[Token, object]] = {}
    for meta in metas:
        for axis, items in chunk_key(meta) or ():
            seen = per_axis.setdefault(axis, {})
            for item in items:
                seen.setdefault(item_token(item), item_display(item))
    return {axis: list(seen.values()) for axis, seen in per_axis.items()}


# --------------------------------------------------------------------------- writing side


def key_meta(
    chunk_key: Sequence[tuple[str, Sequence[object]]], axes: Sequence[str]
) -> list[list[object]]:
    """The ``key`` meta field of a chunk (for ``_codec.ChunkRecord.meta``); its bins may
    be tuples of values or, as ``_codec.compact_key`` stores runs of ints, ranges."""
    bins = dict(chunk_key)
    return [[axis, values_meta(bins[axis])] for axis in axes]


def point_ids_meta(digests: Iterable[bytes]) -> str:
    """The ``point_ids`` meta field from the points' ``_hashing.point_digest`` values."""
    return b"".join(digests).hex()


def values_meta(values: Sequence[object]) -> dict[str, list[int]] | list[object]:
    """One axis's values as the ``key`` meta field stores them: a run of ints as
    ``{"range": [start, stop, step]}``, else a list of items."""
    if isinstance(values, range):  # already found to be a run of ints (a stored key)
        return {"range": [values.start, values.stop, values.step]}
    if len(values) >= 3 and _all_ints(values):
        step = values[1] - values[0]
        if step:
            run = range(values[0], values[-1] + (1 if step > 0 else -1), step)
            if len(run) == len(values) and tuple(run) == tuple(values):
                return {"range": [run.start, run.stop, run.step]}
    return [_item_meta(v) for v in values]


def _all_ints(values: Sequence[object]) -> TypeGuard[Sequence[int]]:
    return all(type(v) is int for v in values)


def _item_meta(value: object) -> object:
    if value is None or type(value) in (bool, int, str):
        return value
    if type(value) is float and math.isfinite(value):
        return value
    try:
        ident = digest_bytes(encode(value, "chunk key")).hex()
    except Exception:  # not encodable here: the repr is the best identity left
        ident = "repr:" + repr(value)
    return {"id": ident, "repr": short_repr(value, 200)}
