"""Which points of a recorded request are stored, missing or failed, and the picture of
it over two axes (the other axes aggregated): ``swarm-memo show``, ``Status.plot`` and
``Status._repr_html_``.

Works from JSON alone: the request's axis values (``_requests_log``), the chunk files'
meta blocks (their ``key`` and, for partial or enumerated chunks, ``point_ids``) and the
failures the runs recorded. A point is *stored* when a chunk file holds it, *failed* when
a run recorded its failure and no file holds it since, else *missing*. Points of partial
chunks are matched by digest, which needs their axis values; values JSON cannot hold
exactly (numpy arrays, dataclasses...) are matched in product chunks only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from swarm_memo.cache.chunk_meta import ChunkMeta
from swarm_memo.cache.meta_points import Token, chunk_key, item_display, item_token
from swarm_memo.core.picture import FAILED, MISSING, STORED, Coverage
from swarm_memo.errors import SpecError
from swarm_memo.identity.hashing import point_digest
from swarm_memo.run.requests_log import RequestInfo, read_requests, request_from_plan

if TYPE_CHECKING:
    from swarm_memo.run.plan import RunPlan

# --------------------------------------------------------------------------- building


def coverage_of(
    request: RequestInfo, metas: Iterable[ChunkMeta], failures: Iterable[Mapping[str, object]]
) -> Coverage:
    """The state of every point of ``request`` from the chunk files' metas and the
    recorded failures (``{"values": [item per axis], ...}``)."""
    items = request.items()
    if items is None:
        raise SpecError(
            "this request's axis values were not recorded (too many); its coverage cannot be drawn"
        )
    index = [{item_token(item): i for i, item in enumerate(axis)} for axis in items]
    shape = [len(axis) for axis in items]
    strides = [math.prod(shape[i + 1 :]) for i in range(len(shape))]
    states = bytearray(math.prod(shape))
    axes = request.axes
    for meta in metas:
        _mark_chunk(meta, axes, index, strides, states)
    for failure in failures:
        values = failure.get("values")
        if not isinstance(values, list) or len(values) != len(axes):
            continue
        where = [index[a].get(item_token(v), -1) for a, v in enumerate(values)]
        if min(where) >= 0:
            flat = sum(i * s for i, s in zip(where, strides, strict=True))
            if states[flat] == MISSING:
                states[flat] = FAILED
    labels = [[str(item_display(item)) for item in axis] for axis in items]
    return Coverage(list(axes), labels, states)


def _mark_chunk(
    meta: ChunkMeta,
    axes: list[str],
    index: list[dict[Token, int]],
    strides: list[int],
    states: bytearray,
) -> None:
    """Mark the request's points that one chunk file holds as stored."""
    key = chunk_key(meta)
    if key is None or sorted(a for a, _ in key) != sorted(axes):
        return
    by_axis = dict(key)
    # per request axis: (position in the request, item) of the chunk's values it asks for
    hits = [
        [(index[a][t], item) for item in by_axis[name] if (t := item_token(item)) in index[a]]
        for a, name in enumerate(axes)
    ]
    if meta.product:
        for combo in itertools.product(*hits):
            states[sum(i * s for (i, _), s in zip(combo, strides, strict=True))] = STORED
        return
    ids = _point_ids(meta)
    if not ids:
        return
    order = [axes.index(name) for name, _ in key]  # the point tuple follows the file's axes
    for combo in itertools.product(*hits):
        values = [combo[a][1] for a in order]
        if any(isinstance(v, dict) for v in values):
            continue  # not plain JSON: its digest cannot be computed from the meta
        if point_digest(tuple(values)).hex() in ids:
            states[sum(i * s for (i, _), s in zip(combo, strides, strict=True))] = STORED


def _point_ids(meta: ChunkMeta) -> set[str]:
    ids, count = meta.point_ids, meta.points
    if ids is None or count is None or count <= 0 or len(ids) % count:
        return set()
    width = len(ids) // count
    return {ids[i : i + width] for i in range(0, len(ids), width)}


def plan_coverage(plan: RunPlan) -> Coverage:
    """The coverage of a planned request (``SwarmMemo.status``), from the cache files."""
    from swarm_memo.cache.listing import ChunkFacts

    if not plan.product:
        raise SpecError("the picture needs the default points (no custom enumerate_points)")
    request = request_from_plan(plan, "status", 0.0)
    store, set_id = plan.pset.store, plan.pset.set_id
    failures = [f for r in read_requests(store, set_id) for f in r.failed]
    return coverage_of(request, ChunkFacts.read(store, set_id).metas, failures)
