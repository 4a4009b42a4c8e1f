"""Planning one request: validate it, name its chunks, enumerate and hash their points."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._cache import ParamsSet, check_chunk_name, params_set_id
from ._grid import Chunk, Grid, product_points
from ._hashing import digest_bytes, encode, point_digest
from ._types import Params, Point, SplitSpec
from .errors import SpecError, SpecTypeError, UnhashableValueError

if TYPE_CHECKING:
    from ._memo import SwarmMemo

ExecFn = Callable[[Params, Point], Any]
EnumerateFn = Callable[[Params, SplitSpec], Sequence[Point]]


@dataclass
class RunPlan:
    """One request, validated: what keys the cache, what runs, where it lives."""

    key_params: dict[str, Any]
    exec_params: dict[str, Any]
    exec_fn: ExecFn | None
    enumerate_points: EnumerateFn | None
    grid: Grid
    pset: ParamsSet
    named_chunks: list[tuple[Chunk, str]] = field(default_factory=list)

    @property
    def product(self) -> bool:
        """True when points are the default cartesian product (found by their bins)."""
        return self.enumerate_points is None

    def points(self, chunk: Chunk) -> list[Any]:
        if self.enumerate_points is None:
            return product_points(self.exec_params, chunk.split_spec)
        points = self.enumerate_points(self.exec_params, chunk.split_spec)
        if isinstance(points, (str, bytes)) or not isinstance(points, Sequence):
            raise SpecTypeError(
                f"enumerate_points must return a list of points; got {type(points).__name__} "
                f"for chunk {chunk.split_spec!r:.200}"
            )
        return list(points)

    def point_count(self, chunk: Chunk) -> int:
        return chunk.product_size if self.product else len(self.points(chunk))

    def point_digests(self, chunk: Chunk, points: list[Any]) -> list[bytes] | None:
        """Digests of enumerated points (None for product chunks, found by their bins)."""
        if self.product:
            return None
        try:
            return [point_digest(p) for p in points]
        except UnhashableValueError as exc:
            raise UnhashableValueError(
                f"enumerate_points returned a point that cannot be hashed for chunk "
                f"{chunk.split_spec!r:.200}: {exc}",
                where=exc.where,
                value_type=exc.value_type,
            ) from exc


def plan_run(
    memo: SwarmMemo,
    key_params: Any,
    split_spec: Any,
    exec_params: dict[str, Any],
    exec_fn: ExecFn | None,
) -> RunPlan:
    """Validate a request and name its chunks; raises before any work on bad input."""
    if not isinstance(key_params, dict):
        raise SpecTypeError(f"params must be a dict; got {type(key_params).__name__}")
    params_encoding = encode(key_params, "params")
    grid = Grid.build(split_spec, memo.layout)
    version = encode(memo.cache_version)
    set_id = params_set_id(params_encoding, memo.cache_version)
    pset = ParamsSet(memo.store, set_id, key_params, memo.cache_version)
    plan = RunPlan(key_params, exec_params, exec_fn, memo.enumerate_points, grid, pset)
    if not plan.product and grid.chunk_count:
        first = next(grid.chunks())  # catch unhashable points before any work starts
        plan.point_digests(first, plan.points(first))
    hash_fn = memo.chunk_hash_fn
    for chunk in grid.chunks():
        if hash_fn is None:
            # A digest of (params, chunk key, cache_version), built from per-bin digests
            # so that planning a million-point grid costs O(chunks), not O(points).
            name = digest_bytes(
                b"swarm-memo-chunk" + params_encoding + chunk.key_digest() + version
            ).hex()
        else:
            try:
                name = check_chunk_name(hash_fn(key_params, chunk.key, memo.cache_version))
            except ValueError as exc:
                raise SpecError(str(exc)) from exc
        plan.named_chunks.append((chunk, name))
    return plan
