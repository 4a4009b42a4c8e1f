"""Maintenance of one params set: forget it (``clear``) or rewrite a request's stored points
into exactly the current layout's chunk files (``compact``).

Both are writes, run only on a user's explicit call. ``compact`` never loses a point: a
file is removed only once every one of its points is stored in a file of the layout.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from swarm_memo.cache.chunk_meta import point_codes_of
from swarm_memo.cache.codec import ChunkRecord
from swarm_memo.cache.layout import CHUNK_SUFFIX
from swarm_memo.cache.params_set import ParamsSet
from swarm_memo.cache.reuse import Reuse, read_point_index
from swarm_memo.cache.serving import CodeChange, ServePolicy
from swarm_memo.core.jobs import MISSING
from swarm_memo.identity.grid import Chunk
from swarm_memo.identity.hashing import point_digest
from swarm_memo.run.plan import RunPlan


@dataclass
class CompactReport:
    """What ``compact`` did: files written, files removed, and points now stored."""

    written: int = 0
    removed: int = 0
    stored_points: int = 0
    missing_points: int = 0


def clear_set(pset: ParamsSet) -> int:
    """Delete every file of a params set; return how many chunk files it held."""
    store, paths = pset.store, pset.paths
    chunks = store.names(paths.chunks, CHUNK_SUFFIX)
    for folder in paths.folders:
        for name in store.names(folder):
            store.delete(f"{folder}/{name}")
    for key in paths.files:
        store.delete(key)
    store.prune(paths.root)
    return len(chunks)


def compact(plan: RunPlan) -> CompactReport:
    """Rewrite the stored points of ``plan``'s request into its own chunk files, then remove
    the other files of the set whose points are all stored in those.

    Every output keeps the fingerprint of the code that computed it (a file gathering
    outputs of several codes records each point's). Product files of another axis order
    hold outputs of another point layout: they are neither copied nor removed.
    """
    pset = plan.pset
    report = CompactReport()
    stored = pset.stored_names()
    axes = plan.grid.axis_names
    policy = ServePolicy(None, CodeChange.IGNORE, plan.function_name, axes)
    reuse = Reuse(pset, stored, policy=policy)
    layout_names: set[str] = set()
    covered: set[bytes] = set()  # digests of the points as enumerated
    for chunk, name in plan.named_chunks:
        layout_names.add(name)
        points = plan.points(chunk)
        digests = plan.point_digests(chunk, points)
        outputs: list[object] = [MISSING] * len(points)
        codes: list[str | None] = [None] * len(points)
        found = reuse.fill(
            chunk, functools.partial(list, digests), plan.product, outputs, codes=codes
        )
        report.stored_points += found
        report.missing_points += len(points) - found
        if not found:
            continue
        kept = [i for i, output in enumerate(outputs) if output is not MISSING]
        covered.update(digests[i] for i in kept)
        if name in stored and found == len(points) and _complete(pset, name, chunk.axes):
            continue  # its own file already holds exactly these points
        _write_layout_file(plan, chunk, name, points, digests, outputs, codes, kept)
        report.written += 1
    pset.close()
    records = read_point_index(pset, stored - layout_names).records
    for name, entry in records.items():
        if entry.digests is not None:
            redundant = set(entry.point_digests()) <= covered
        elif entry.axes == axes:
            cells = itertools.product(*(tuple(values) for values in entry.bins))
            redundant = all(point_digest(point) in covered for point in cells)
        else:
            redundant = False  # another point layout: this request never serves it
        # A file this version cannot read (a newer one's) is never removed.
        if redundant and pset.peek(name) is not None and name not in pset.unreadable:
            pset.store.delete(pset.chunk_key(name))
            report.removed += 1
    return report


def _write_layout_file(
    plan: RunPlan,
    chunk: Chunk,
    name: str,
    points: Sequence[object],
    digests: list[bytes],
    outputs: Sequence[object],
    codes: list[str | None],
    kept: list[int],
) -> None:
    """Write the points found for a chunk under its own name, each with its code."""
    pset = plan.pset
    own = pset.peek(name)
    if own is not None and own.product and own.axes != chunk.axes:
        record = pset.load(name, chunk)
        if record is not None:
            pset.set_aside_other_order(name, record)
    complete = len(kept) == len(points)
    code, point_codes = point_codes_of([codes[i] for i in kept])
    record = ChunkRecord(
        pset.set_id,
        pset.cache_version,
        chunk.key,
        chunk.axes,
        None if complete and plan.product else [points[i] for i in kept],
        [outputs[i] for i in kept],
        partial=not complete,
        code=code,
        key_digest=chunk.key_digest().hex(),
        point_codes=point_codes,
    )
    pset.save(name, record, None if record.points is None else [digests[i] for i in kept])


def _complete(pset: ParamsSet, name: str, axes: tuple[str, ...]) -> bool:
    """Whether a chunk's own file is complete, in this axis order, of one code."""
    meta = pset.peek(name)
    return meta is not None and not meta.partial and meta.axes == axes and meta.point_codes is None
