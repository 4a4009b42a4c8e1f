"""The point index: which stored chunk file holds which point.

Chunk files are the truth; the index only speeds up finding points inside them. For each
chunk file the writer records which points it holds:

- a *product* chunk (default enumerator): its axis order and its bins' values. A point is
  found by per-axis lookups and index arithmetic, so point order, axis order and bin
  boundaries may all change between runs. Lookups go bin by bin, never value by value
  over the whole cache: a request costs O(its own points + the stored bins it may
  overlap), and reading the index costs O(files) (see :mod:`swarm_memo.cache.binindex`);
- an *enumerated* chunk (custom ``enumerate_points``): the 16-byte digest of each point.

Records are written after their chunk files, in batches: each batch is one immutable
*segment* file ``index/<uuid>.idx`` (written atomically, never modified). Writers never
share a file, so nothing needs a lock and nothing is lost to a race, on local disks,
NFS or object stores alike; and a chunk costs no extra file creation. Readers merge every
segment; once there are many, a reader folds them into one. Each record carries its chunk
file's checksum, so a record describing an older version of a file is detected. A chunk
file without a record (a crash before its batch was written, a deleted ``index/``) gets
one rebuilt from the file. Deleting ``index/`` loses nothing.

The index is never trusted blindly: segments are checksummed, and one that fails is
ignored and its records rebuilt (:mod:`swarm_memo.cache.segments`); serving confirms each
record against the chunk file itself before any output is copied (:mod:`swarm_memo.cache.reuse`).
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from swarm_memo.cache.binindex import AxisBins, RequestBin, value_keys
from swarm_memo.cache.segments import (
    FLUSH_EVERY,
    FOLD_ABOVE,
    INDEX_MAGIC,
    SEGMENT_SUFFIX,
    DamagedSegment,
    IndexLog,
    IndexRecord,
    decode_segment,
    encode_segment,
)
from swarm_memo.identity.grid import strides

__all__ = [
    "FLUSH_EVERY",
    "FOLD_ABOVE",
    "INDEX_MAGIC",
    "SEGMENT_SUFFIX",
    "DamagedSegment",
    "Found",
    "IndexLog",
    "IndexRecord",
    "PointIndex",
    "decode_segment",
    "encode_segment",
]

LOOKUP_ENTRIES = 1 << 16
"""Keyed values of stored bins kept between requests (about 100 bytes each: ~6 MB)."""
REQUEST_INTS = 1 << 18
"""Values and matched positions of requested bins kept between chunks (about 40 bytes
each: ~10 MB)."""
Location = tuple[str, int]
Found = tuple[str, Sequence[int], Sequence[int]]
"""(chunk file, positions in the request, positions in that file): lists, or ranges for
a run of shared values (the usual overlap of two int bins), never built as lists."""


def _scaled(positions: Sequence[int], stride: int) -> Sequence[int]:
    """``positions`` times ``stride``; a range at stride 1 stays itself (immutable)."""
    if stride > 1:
        return [i * stride for i in positions]
    return _own(positions)


def _own(positions: Sequence[int]) -> Sequence[int]:
    """Positions a caller may keep: a range itself, anything else copied to a list."""
    return positions if isinstance(positions, range) else list(positions)


@dataclass
class _ProductTable:
    """The product records by bin: per axis the distinct bins stored, and per axis set
    (sorted names) the files by the ids of their bins (in that sorted order)."""

    axes: dict[str, AxisBins]
    groups: dict[tuple[str, ...], dict[tuple[int, ...], list[str]]]
    files: dict[str, tuple[tuple[str, int, int], ...]]
    """Each file's (axis, bin id, stride) in its own axis order."""

    @classmethod
    def build(cls, records: dict[str, IndexRecord]) -> _ProductTable:
        table = cls({}, {}, {})
        for name, record in sorted(records.items()):
            if record.digests is not None:
                continue
            ids = tuple(
                table.axes.setdefault(axis, AxisBins()).add(values)
                for axis, values in zip(record.axes, record.bins, strict=True)
            )
            steps = strides([len(values) for values in record.bins])
            table.files[name] = tuple(zip(record.axes, ids, steps, strict=True))
            order = sorted(range(len(ids)), key=record.axes.__getitem__)
            group = table.groups.setdefault(tuple(record.axes[k] for k in order), {})
            group.setdefault(tuple(ids[k] for k in order), []).append(name)
        return table


class PointIndex:
    """Where each stored point lives, for one params set.

    Built in O(files): nothing is encoded up front. A request is matched bin by bin
    (see :mod:`swarm_memo.cache.binindex`): only stored bins that may overlap it are looked
    at, and only their values are keyed.
    """

    def __init__(self, records: dict[str, IndexRecord]) -> None:
        self.records = records
        self._by_digest: dict[bytes, Location] | None = None
        self._lookups: OrderedDict[tuple[str, int], dict[Hashable, int]] = OrderedDict()
        self._lookup_entries = 0
        self._requests: dict[tuple[str, int], RequestBin] = {}
        self._request_budget = REQUEST_INTS
        self.has_digests = any(record.digests is not None for record in records.values())
        self.has_products = any(record.digests is None for record in records.values())
        """Whether some file lists its points by digest (enumerated or partial chunks)."""

    def __len__(self) -> int:
        return len(self.records)

    @cached_property
    def _table(self) -> _ProductTable:
        return _ProductTable.build(self.records)

    def locate_product(self, axes: Sequence[str], bins: Sequence[Sequence[object]]) -> list[Found]:
        """Where the points of a requested product chunk are stored.

        ``axes`` and ``bins`` (values) describe the request in its own axis order;
        positions are flat indices of its cartesian product (first axis slowest). Each
        point is reported once, from the first file (in name order) that holds it.
        """
        table = self._table
        names = sorted(axes)
        group = table.groups.get(tuple(names))
        if not group:
            return []
        requests = {
            axis: self._request(axis, values) for axis, values in zip(axes, bins, strict=True)
        }
        overlapping = []
        for axis in names:
            request = requests[axis]
            if request.overlap is None:
                request.overlap = table.axes[axis].overlapping(request.sketch)
            if not request.overlap:
                return []  # no stored bin can hold a requested value: nothing is keyed
            overlapping.append(request.overlap)
        req_strides = dict(zip(axes, strides([len(values) for values in bins]), strict=True))
        return self._collect(_candidates(group, overlapping), requests, req_strides)

    def _request(self, axis: str, values: Sequence[object]) -> RequestBin:
        """The requested bin ``values`` of ``axis``, as seen by an earlier chunk if any.

        Chunks of a grid share their bins (the same tuple objects): what was worked out
        for a bin, with every stored bin, is kept for the next chunk, within a budget.
        """
        key = (axis, id(values))  # the cache holds ``values``: its id is not reused
        request = self._requests.get(key)
        if request is None or request.values is not values:
            if self._request_budget < 0:
                self._requests.clear()
                self._request_budget = REQUEST_INTS
            request = self._requests[key] = RequestBin(values)
            self._request_budget -= len(values)
        return request

    def _collect(
        self, names: list[str], requests: dict[str, RequestBin], req_strides: dict[str, int]
    ) -> list[Found]:
        left = math.prod(len(r.values) for r in requests.values())
        taken: set[int] = set()
        found: list[Found] = []
        for n, name in enumerate(names):
            offsets = self._offsets(name, requests, req_strides)
            if offsets is None:
                continue
            reqs, files = offsets
            if taken and not taken.isdisjoint(reqs):  # an earlier file holds some points
                keep = [k for k, r in enumerate(reqs) if r not in taken]
                reqs, files = [reqs[k] for k in keep], [files[k] for k in keep]
                if not reqs:
                    continue
            found.append((name, reqs, files))
            left -= len(reqs)
            if left == 0:
                break
            if n + 1 < len(names):
                taken.update(reqs)
        return found

    def _offsets(
        self, name: str, requests: dict[str, RequestBin], req_strides: dict[str, int]
    ) -> tuple[Sequence[int], Sequence[int]] | None:
        """(request positions, file positions) of the points a file shares with the
        request; None when it shares none."""
        reqs: Sequence[int] | None = None
        files: Sequence[int] = []
        for axis, bin_id, file_stride in self._table.files[name]:
            request = requests[axis]
            req_stride = req_strides[axis]
            part = request.parts.get((bin_id, req_stride, file_stride))
            if part is None:
                part = self._axis_offsets(axis, bin_id, request, req_stride, file_stride)
            req_deltas, file_deltas = part
            if not req_deltas:
                return None
            if reqs is None:  # a range stays one (immutable): a run is marked in one slice
                reqs, files = _own(req_deltas), _own(file_deltas)
            else:
                reqs = [r + d for r in reqs for d in req_deltas]
                files = [f + d for f in files for d in file_deltas]
        assert reqs is not None  # a record has at least one axis
        return reqs, files

    def _axis_offsets(
        self, axis: str, bin_id: int, request: RequestBin, req_stride: int, file_stride: int
    ) -> tuple[Sequence[int], Sequence[int]]:
        """Offsets in the request and in a file of the values a stored bin shares with a
        requested one (kept in the request's cache)."""
        stored = self._table.axes[axis].values[bin_id]
        lookup = None if isinstance(stored, range) else self._lookup(axis, bin_id)
        req_pos, file_pos = request.pairs(stored, lookup)
        part = (_scaled(req_pos, req_stride), _scaled(file_pos, file_stride))
        request.parts[bin_id, req_stride, file_stride] = part
        self._request_budget -= len(part[0]) + len(part[1])
        return part

    def _lookup(self, axis: str, bin_id: int) -> dict[Hashable, int]:
        """Key -> position of a stored bin's values; recently used ones are kept."""
        lookup = self._lookups.get((axis, bin_id))
        if lookup is not None:
            self._lookups.move_to_end((axis, bin_id))
            return lookup
        values = self._table.axes[axis].values[bin_id]
        lookup = {key: j for j, key in enumerate(value_keys(values))}
        self._lookups[axis, bin_id] = lookup
        self._lookup_entries += len(lookup)
        while self._lookup_entries > LOOKUP_ENTRIES and len(self._lookups) > 1:
            _, dropped = self._lookups.popitem(last=False)
            self._lookup_entries -= len(dropped)
        return lookup

    def locate_points(self, digests: Sequence[bytes]) -> list[Found]:
        """Where requested enumerated points (by digest) are stored."""
        if self._by_digest is None:
            self._by_digest = {}
            for name, record in sorted(self.records.items()):
                for pos, digest in enumerate(record.point_digests()):
                    self._by_digest.setdefault(digest, (name, pos))
        by_file: dict[str, tuple[str, list[int], list[int]]] = {}
        for i, digest in enumerate(digests):
            location = self._by_digest.get(digest)
            if location is not None:
                name, file_pos = location
                entry = by_file.setdefault(name, (name, [], []))
                entry[1].append(i)
                entry[2].append(file_pos)
        return list(by_file.values())


def _candidates(group: dict[tuple[int, ...], list[str]], overlapping: list[set[int]]) -> list[str]:
    """Files of a group whose bin on every axis may overlap the request, in name order:
    by enumerating the combinations of overlapping bins, or the group when smaller."""
    if math.prod(len(ids) for ids in overlapping) <= len(group):
        combos: Iterable[tuple[int, ...]] = itertools.product(*overlapping)
        names = [name for key in combos for name in group.get(key, ())]
    else:
        names = [
            name
            for key, files in group.items()
            if all(k in ids for k, ids in zip(key, overlapping, strict=True))
            for name in files
        ]
    return sorted(names)
