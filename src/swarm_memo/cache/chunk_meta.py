"""The JSON meta block of a chunk file, typed: :class:`ChunkMeta` and the per-point code
fingerprints it carries (run-length encoded). Read without unpickling anything; the
file's binary layout is :mod:`swarm_memo.cache.codec`'s."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from swarm_memo.errors import CorruptChunkError

T = TypeVar("T")

MIXED_CODE = "mixed"
"""The meta's ``code`` when a file's points were computed by different code: it equals no
fingerprint, so a reader that does not know ``codes`` treats them all as other code."""


def point_codes_of(codes: Sequence[str | None]) -> tuple[str | None, tuple[str | None, ...] | None]:
    """``(code, point_codes)`` for a record whose points were computed by ``codes``: one
    fingerprint when they agree, :data:`MIXED_CODE` and the list when they differ."""
    distinct = set(codes)
    if len(distinct) <= 1:
        return (next(iter(distinct)) if distinct else None), None
    return MIXED_CODE, tuple(codes)


def code_runs(codes: Sequence[str | None]) -> list[list[str | int | None]]:
    """Run-length form of per-point codes: ``[[code, count], ...]`` (a file's points
    usually come in long runs of one code)."""
    return [[code, sum(1 for _ in run)] for code, run in itertools.groupby(codes)]


def meta_point_codes(meta: Mapping[str, object]) -> tuple[str | None, ...] | None:
    """Per-point codes from a meta block (None when every point has the meta's ``code``).

    Raises
    ------
    CorruptChunkError
        The runs are malformed or do not count the file's points.
    """
    runs = meta.get("codes")
    if runs is None:
        return None
    try:
        if not isinstance(runs, list):
            raise TypeError(f"codes are a {type(runs).__name__}, not a list")
        codes = tuple(itertools.chain.from_iterable(itertools.repeat(c, int(n)) for c, n in runs))
        valid = len(codes) == _count(meta["points"]) and all(
            c is None or isinstance(c, str) for c in codes
        )
    except (TypeError, ValueError, KeyError) as exc:
        raise CorruptChunkError(f"malformed per-point code fingerprints: {exc!r}") from exc
    if not valid:
        raise CorruptChunkError("per-point code fingerprints do not match the points")
    return codes


@dataclass(frozen=True)
class ChunkMeta:
    """The JSON meta block of a chunk file, typed (read without unpickling anything).

    Fields a file written by an older swarm-memo lacks are None (or empty); a field of
    the wrong type is a :class:`CorruptChunkError` when parsed. ``key`` is the chunk key
    in its JSON form (see :mod:`swarm_memo.cache.meta_points`); ``point_ids`` the hex digests of
    a file's listed points; ``info`` its timings and provenance (informative only).
    """

    set_id: str | None
    cache_version: str | None
    axes: tuple[str, ...]
    product: bool
    points: int | None
    partial: bool
    code: str | None
    point_codes: tuple[str | None, ...] | None
    info: dict[str, Any]
    key: list[Any] | None
    key_digest: str | None
    point_ids: str | None
    name: str | None
    """The chunk file name it was written under (None in files from before names)."""
    enumerator: str | None = None
    """See :attr:`swarm_memo.cache.codec.ChunkRecord.enumerator` (None in files from before it)."""

    @classmethod
    def parse(cls, meta: Mapping[str, object]) -> ChunkMeta:
        """Type the meta block of a file.

        Raises
        ------
        CorruptChunkError
            A field has a type no swarm-memo writes.
        """
        try:
            return cls(
                set_id=_optional(meta, "set", str),
                cache_version=_optional(meta, "cache_version", str),
                axes=tuple(str(a) for a in _iterable(meta.get("axes") or ())),
                product=meta.get("product") is True,
                points=_optional(meta, "points", int),
                partial=bool(meta.get("partial", False)),
                code=_optional(meta, "code", str),
                point_codes=meta_point_codes(meta),
                info=_object(meta.get("info") or {}),
                key=_if_typed(meta, "key", list),
                key_digest=_optional(meta, "key_digest", str),
                point_ids=_if_typed(meta, "point_ids", str),
                name=_optional(meta, "name", str),
                enumerator=_optional(meta, "enumerator", str),
            )
        except (TypeError, ValueError) as exc:
            raise CorruptChunkError(f"a meta field is malformed: {exc}") from exc

    def codes(self, count: int) -> tuple[str | None, ...]:
        """Each of the file's ``count`` points' code fingerprints."""
        return self.point_codes if self.point_codes is not None else (self.code,) * count

    @property
    def compute_seconds(self) -> float | None:
        value = self.info.get("compute_seconds")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def computed_points(self) -> int | None:
        value = self.info.get("computed_points")
        return value if isinstance(value, int) else None

    @property
    def host(self) -> str | None:
        value = self.info.get("host")
        return value if isinstance(value, str) else None


def _if_typed(meta: Mapping[str, object], name: str, kind: type[T]) -> T | None:
    """A field that only helps counting points: None when absent or of another type (the
    count is then flagged as possibly inexact, never an error)."""
    value = meta.get(name)
    return value if isinstance(value, kind) else None


def _optional(meta: Mapping[str, object], name: str, kind: type[T]) -> T | None:
    value = meta.get(name)
    if value is not None and not isinstance(value, kind):
        raise TypeError(f"{name!r} is {type(value).__name__}, not {kind.__name__}")
    return value


def _iterable(value: object) -> Iterable[object]:
    if not isinstance(value, Iterable):
        raise TypeError(f"{type(value).__name__} is not iterable")
    return value


def _object(value: object) -> dict[str, object]:
    """A JSON object of a meta block."""
    if not isinstance(value, dict):
        raise TypeError(f"{type(value).__name__} is not an object")
    return dict(value)


def _count(value: object) -> int:
    if not isinstance(value, (int, str)):
        raise TypeError(f"a count is a {type(value).__name__}")
    return int(value)
