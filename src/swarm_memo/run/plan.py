"""Planning one request: validate it, name its chunks, enumerate and hash their points."""

from __future__ import annotations

import copy
import enum
import itertools
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from swarm_memo.cache.keydefaults import key_params as _key_params
from swarm_memo.cache.params_set import ParamsSet, check_chunk_name, params_set_id
from swarm_memo.core.types import ExecFn
from swarm_memo.errors import SpecError, SpecTypeError, UnhashableValueError
from swarm_memo.identity.fingerprint import seeing_fingerprint
from swarm_memo.identity.grid import Chunk, Grid, product_points
from swarm_memo.identity.hashing import digest_parts, encode, point_digest
from swarm_memo.run.config import MemoConfig

ChunkPoints = list[tuple[object, ...]] | list[object]
"""A chunk's points: tuples of axis values (the default points) or, with a custom
``enumerate_points``, the objects it returned."""


class Access(enum.Enum):
    """What a call may do to the cache, decided once at the edge of the call."""

    READ = "read"
    """``load``, ``status``, frames with ``load_only``: never writes, moves or rebuilds."""
    MAINTAIN = "maintain"
    """``compact``, ``clear``: rewrites stored points; computes nothing."""
    COMPUTE = "compute"
    """``run``, ``run_streaming``: computes what is missing and stores it."""

    @property
    def writes(self) -> bool:
        return self is not Access.READ

    @property
    def computes(self) -> bool:
        return self is Access.COMPUTE


@dataclass
class RunPlan:
    """One request, validated: what keys the cache, what runs, where it lives.

    ``exec_params`` is this run's own copy of the params: an ``exec_fn`` that mutates it
    changes neither the caller's dict nor any key (keys were derived at planning). The
    copy is made when first needed (a point about to execute, a custom enumerator): a
    fully cached call never copies params.
    """

    config: MemoConfig
    exec_source: ExecParams
    exec_fn: ExecFn | None
    code: str | None
    """Fingerprint of the code that computes this request's points (None: unknown)."""
    function_name: str
    grid: Grid
    pset: ParamsSet
    named_chunks: list[tuple[Chunk, str]] = field(default_factory=list)
    access: Access = Access.READ
    enumerator_code: str | None = None
    """Fingerprint (hex) of the custom ``enumerate_points``, with what it reaches
    (helpers, module constants), taken once per call when planned (on the caller's
    thread, before the enumerator runs); None for the default product, and when the
    fingerprint cannot see all the enumerator reads (:func:`seeing_fingerprint`).

    A chunk file stamped with it lists exactly what this enumerator returns for the
    file's sub-spec: an exact hit then serves its points without calling it again, as a
    stored output stands for ``exec_fn`` of the same fingerprint."""

    @property
    def exec_params(self) -> dict[str, object]:
        return self.exec_source.copy()

    @property
    def product(self) -> bool:
        """True when points are the default cartesian product (found by their bins)."""
        return self.config.enumerate_points is None

    def points(self, chunk: Chunk) -> ChunkPoints:
        enumerate_points = self.config.enumerate_points
        if enumerate_points is None:
            return product_points({}, chunk.split_spec)  # the product ignores params
        points = enumerate_points(self.exec_params, chunk.split_spec)
        if isinstance(points, (str, bytes)) or not isinstance(points, Sequence):
            raise SpecTypeError(
                f"enumerate_points must return a list of points; got {type(points).__name__} "
                f"for chunk {chunk.split_spec!r:.200}"
            )
        return list(points)

    def chunk_points(self, chunk: Chunk) -> tuple[ChunkPoints, bool]:
        """A chunk's points, and whether they are exactly the cartesian product of its
        bins in axis order: such a chunk is stored and found as a product chunk (no point
        list on disk, no per-point digests), whatever enumerated it."""
        points = self.points(chunk)
        return points, self.product or is_product(points, chunk.bins)

    def point_digests(self, chunk: Chunk, points: Sequence[object]) -> list[bytes]:
        """Digests (canonical encodings) of a chunk's points: how points are compared."""
        try:
            return [point_digest(p) for p in points]
        except UnhashableValueError as exc:
            raise UnhashableValueError(
                f"enumerate_points returned a point that cannot be hashed for chunk "
                f"{chunk.split_spec!r:.200}: {exc}",
                where=exc.where,
                value_type=exc.value_type,
            ) from exc

    @property
    def shape(self) -> list[int]:
        return [len(axis.bins) for axis in self.grid.axes]


def is_product(points: Sequence[Any], bins: Sequence[Sequence[object]]) -> bool:
    """Whether ``points`` are the tuples of the product of ``bins``, item by item the very
    same objects (identity, not ``==``: 1.0 is not 1). About 0.1 µs per point."""
    if len(points) != math.prod(map(len, bins)) or not points:
        return False
    if set(map(type, points)) != {tuple} or set(map(len, points)) != {len(bins)}:
        return False
    flat = itertools.chain.from_iterable(points)
    if len(bins) == 1:  # one axis: the points' values are the bin's, no tuples to build
        return all(map(operator.is_, flat, bins[0]))
    expected = itertools.chain.from_iterable(itertools.product(*bins))
    return all(map(operator.is_, flat, expected))


@dataclass
class ExecParams:
    """The params ``exec_fn`` receives, deep-copied once, on first use."""

    source: Mapping[str, object]
    shared: frozenset[str] = frozenset()
    """Keys passed as they are (ignored ones: a client, a lock)."""
    _copy: dict[str, object] | None = None

    def copy(self) -> dict[str, object]:
        if self._copy is None:
            self._copy = _own_copy(self.source, self.shared)
        return self._copy


def _own_copy(
    params: Mapping[str, object], shared: frozenset[str] = frozenset()
) -> dict[str, object]:
    """A deep copy of ``params``; the ``shared`` keys (ignored ones: a client) as they are."""
    kept = {k: v for k, v in params.items() if k not in shared}
    try:
        copied = copy.deepcopy(kept)
    except Exception:  # not deep-copyable: at least a new top-level dict
        copied = kept
    return {k: copied.get(k, v) for k, v in params.items()}


def plan_run(
    config: MemoConfig,
    key_params: object,
    split_spec: object,
    *,
    exec_params: Mapping[str, object] | None = None,
    exec_fn: ExecFn | None = None,
    code: str | None = None,
    function_name: str = "exec_fn",
    access: Access,
    ignore: frozenset[str] = frozenset(),
) -> RunPlan:
    """Validate a request and name its chunks; raises before any work on bad input.

    ``access`` says what the call may do: a read (``load``, ``status``) never writes,
    moves or rebuilds anything in the cache. Ignored keys and keys at their declared
    default are passed to ``exec_fn`` but left out of the key. A computing call on a
    params set with no chunk file yet starts the worker pool in the background while the
    grid is planned.
    """
    if not isinstance(key_params, dict):
        raise SpecTypeError(f"params must be a dict; got {type(key_params).__name__}")
    if exec_params is None:
        exec_params = key_params
    ignore = ignore | config.ignore
    key_params = _key_params(key_params, config.key_defaults, ignore)
    params_encoding = encode(key_params, "params")
    set_id = params_set_id(params_encoding, config.cache_version)
    # The set only describes the params (params.json) during this call: no copy.
    pset = ParamsSet(
        config.store, set_id, key_params, config.cache_version, access.writes, config.codec
    )
    if access.computes and exec_fn is not None and not pset.stored_names():
        config.backends.prestart()  # a new params set: everything is computed
    grid = Grid.build(split_spec, config.layout)
    version = encode(config.cache_version)
    plan = RunPlan(
        config,
        ExecParams(exec_params, ignore),
        exec_fn,
        code,
        function_name,
        grid,
        pset,
        access=access,
        enumerator_code=_enumerator_code(config),
    )
    hash_fn = config.chunk_hash_fn
    prefix = digest_parts(b"swarm-memo-chunk", params_encoding)  # the params hashed once
    for chunk in grid.chunks():
        if hash_fn is None:
            # A digest of (params, chunk key, cache_version), built from per-bin digests
            # so that planning a million-point grid costs O(chunks), not O(points).
            hasher = prefix.copy()
            hasher.update(chunk.key_digest() + version)
            name = hasher.hexdigest()
        else:
            try:
                name = check_chunk_name(hash_fn(key_params, chunk.key, config.cache_version))
            except ValueError as exc:
                raise SpecError(str(exc)) from exc
        plan.named_chunks.append((chunk, name))
    if hash_fn is not None:
        _check_distinct_names(plan.named_chunks)
    if not plan.product and plan.named_chunks:
        first, name = plan.named_chunks[0]
        if not pset.has_chunk(name):  # unhashable points caught before any work starts
            plan.point_digests(first, plan.points(first))  # (a stored chunk: when served)
    return plan


def _enumerator_code(config: MemoConfig) -> str | None:
    enumerate_points = config.enumerate_points
    if enumerate_points is None:
        return None
    fingerprint = seeing_fingerprint(enumerate_points)
    return None if fingerprint is None else fingerprint.hex()


def _check_distinct_names(named_chunks: list[tuple[Chunk, str]]) -> None:
    """Two chunks of one request under one file name would overwrite each other's file
    (each run setting the other's aside): a :class:`SpecError` naming both."""
    first: dict[str, Chunk] = {}
    for chunk, name in named_chunks:
        other = first.setdefault(name, chunk)
        if other is not chunk:
            raise SpecError(
                f"chunk_hash_fn returned the same name {name!r} for two chunks of this "
                f"request: {other.key!r:.300} and {chunk.key!r:.300}; it must name each "
                "chunk differently (e.g. include every value of the chunk key)"
            )
