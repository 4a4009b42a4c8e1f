"""Maintenance of one params set: forget it (``clear``) or rewrite a request's stored points
into exactly the current layout's chunk files (``compact``).

Both are writes, run only on a user's explicit call. ``compact`` never loses a point: a
file is removed only once every one of its points is stored in a file of the layout.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

from ._cache import CHUNK_SUFFIX, PARAMS_FILE, ParamsSet
from ._codec import ChunkRecord
from ._hashing import point_digest
from ._plan import RunPlan
from ._reuse import Reuse, read_point_index
from ._scheduler import MISSING


@dataclass
class CompactReport:
    """What ``compact`` did: files written, files removed, and points now stored."""

    written: int = 0
    removed: int = 0
    stored_points: int = 0
    missing_points: int = 0


def clear_set(pset: ParamsSet) -> int:
    """Delete every file of a params set; return how many chunk files it held."""
    store, set_id = pset.store, pset.set_id
    chunks = store.names(f"{set_id}/chunks", CHUNK_SUFFIX)
    for folder in ("chunks", "index"):
        for name in store.names(f"{set_id}/{folder}"):
            store.delete(f"{set_id}/{folder}/{name}")
    for name in (PARAMS_FILE, "claims.lock"):
        store.delete(f"{set_id}/{name}")
    store.prune(set_id)
    return len(chunks)


def compact(plan: RunPlan) -> CompactReport:
    """Rewrite the stored points of ``plan``'s request into its own chunk files, then remove
    the other files of the set whose points are all stored in those."""
    pset = plan.pset
    report = CompactReport()
    stored = pset.stored_names()
    reuse = Reuse(pset, stored)
    layout_names: set[str] = set()
    covered: set[bytes] = set()  # digests of the points as enumerated
    covered_cells: set[bytes] = set()  # product points, independent of axis order
    for chunk, name in plan.named_chunks:
        layout_names.add(name)
        points = plan.points(chunk)
        digests = plan.point_digests(chunk, points)
        outputs = [MISSING] * len(points)
        found = reuse.fill(chunk, functools.partial(list, digests), plan.product, outputs)
        report.stored_points += found
        report.missing_points += len(points) - found
        if not found:
            continue
        kept = [i for i, output in enumerate(outputs) if output is not MISSING]
        covered.update(digests[i] for i in kept)
        if plan.product:
            covered_cells.update(_cell(points[i], chunk.axes) for i in kept)
        if name in stored and _complete(pset, name) and found == len(points):
            continue  # its own file already holds exactly these points
        complete = found == len(points)
        record = ChunkRecord(
            pset.set_id,
            pset.cache_version,
            chunk.key,
            chunk.axes,
            None if complete and plan.product else [points[i] for i in kept],
            [outputs[i] for i in kept],
            partial=not complete,
            code=plan.code,
            key_digest=chunk.key_digest().hex(),
        )
        pset.save(name, record, None if record.points is None else [digests[i] for i in kept])
        report.written += 1
    pset.close()
    records = read_point_index(pset, stored - layout_names).records
    for name, entry in records.items():
        if entry.digests is not None:
            d = entry.digests
            redundant = {d[i : i + 16] for i in range(0, len(d), 16)} <= covered
        else:
            cells = itertools.product(*(tuple(values) for values in entry.bins))
            redundant = all(_cell(point, entry.axes) in covered_cells for point in cells)
        if redundant:
            pset.store.delete(pset.chunk_key(name))
            report.removed += 1
    return report


def _complete(pset: ParamsSet, name: str) -> bool:
    meta = pset.peek(name)
    return meta is not None and not meta.get("partial")


def _cell(point: tuple[object, ...], axes: tuple[str, ...]) -> bytes:
    """A product point's identity whatever the axis order: values in sorted axis order."""
    return point_digest(tuple(v for _, v in sorted(zip(axes, point, strict=True))))
