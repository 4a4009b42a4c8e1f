"""The point index: which stored chunk file holds which point.

Chunk files are the truth; the index only speeds up finding points inside them. Beside
each ``chunks/<name>.chunk`` the writer puts an immutable record ``index/<name>.idx``
(after the chunk file, so a record never points at nothing), describing the points the
file holds:

- a *product* chunk (default enumerator): its axis order and, per axis, the canonical
  encodings of its bin values. A point is found by per-axis lookups and index arithmetic,
  so point order, axis order and bin boundaries may all change between runs;
- an *enumerated* chunk (custom ``enumerate_points``): the 16-byte digest of each point.

One record per chunk file means writers never share a file: nothing to lock, no lost
update, safe on network file systems. Reading the index lists the chunk files, reads the
records, and rebuilds (from the chunk file) any record that is missing or unreadable;
a record without its chunk file is ignored. Deleting ``index/`` loses nothing.
"""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ._codec import ChunkRecord, compact_key
from ._hashing import encode, point_digest

if TYPE_CHECKING:
    from ._cache import ParamsSet

INDEX_MAGIC = b"SWMEMOIX2"
Location = tuple[str, int]


@dataclass(frozen=True)
class IndexRecord:
    """The points of one chunk file: a product of axis bins, or a list of point digests.

    A product record keeps its bins' values (compact: runs of ints as ranges) in the
    stored axis order; their canonical encodings are computed when the index is read,
    i.e. only by runs that need point lookups, never on the write path.
    """

    axes: tuple[str, ...]
    bins: tuple[Any, ...]
    digests: bytes | None
    checksum: bytes

    @classmethod
    def of(cls, record: ChunkRecord, digests: Sequence[bytes] | None = None) -> IndexRecord:
        """The index record of a chunk; ``digests`` saves re-hashing enumerated points."""
        if record.points is None:
            key = dict(compact_key(record.chunk_key))
            return cls(record.axes, tuple(key[a] for a in record.axes), None, record.checksum)
        if digests is None:
            digests = [point_digest(p) for p in record.points]
        return cls((), (), b"".join(digests), record.checksum)

    @cached_property
    def encodings(self) -> tuple[tuple[bytes, ...], ...]:
        """Canonical encodings of each bin's values, in ``axes`` order."""
        return tuple(tuple(encode(v, "chunk key") for v in values) for values in self.bins)

    def to_bytes(self) -> bytes:
        fields = (self.axes, self.bins, self.digests, self.checksum)
        return INDEX_MAGIC + pickle.dumps(fields, protocol=5)

    @classmethod
    def from_bytes(cls, data: bytes) -> IndexRecord | None:
        if not data.startswith(INDEX_MAGIC):
            return None
        try:
            axes, bins, digests, checksum = pickle.loads(data[len(INDEX_MAGIC) :])
            return cls(tuple(axes), tuple(bins), digests, checksum)
        except Exception:  # damaged record: rebuilt from the chunk file by the caller
            return None


def _strides(lengths: Sequence[int]) -> list[int]:
    strides, stride = [], 1
    for length in reversed(lengths):
        strides.append(stride)
        stride *= length
    return strides[::-1]


class PointIndex:
    """Where each stored point lives, for one params set."""

    def __init__(self, records: dict[str, IndexRecord]) -> None:
        self.records = records
        self._by_value: dict[tuple[str, bytes], list[str]] = {}
        self._by_digest: dict[bytes, Location] | None = None
        for name, record in sorted(records.items()):
            if record.digests is None:
                for axis, encs in zip(record.axes, record.encodings):
                    for enc in encs:
                        self._by_value.setdefault((axis, enc), []).append(name)

    @classmethod
    def read(cls, pset: ParamsSet, names: set[str]) -> PointIndex:
        """Read the records of ``names``, rebuilding missing or damaged ones."""
        records: dict[str, IndexRecord] = {}
        for name in sorted(names):
            record = pset.read_index_record(name)
            if record is None:
                record = pset.rebuild_index_record(name)
            if record is not None:
                records[name] = record
        return cls(records)

    def __len__(self) -> int:
        return len(self.records)

    def locate_product(
        self, axes: Sequence[str], encodings: Sequence[Sequence[bytes]]
    ) -> dict[int, Location]:
        """Map positions of a requested product chunk to stored (file, position).

        ``axes`` and ``encodings`` describe the request in its own axis order; positions
        are flat indices of its cartesian product (first axis slowest).
        """
        found: dict[int, Location] = {}
        want = dict(zip(axes, encodings))
        req_strides = dict(zip(axes, _strides([len(e) for e in encodings])))
        for name in self._candidates(want):
            record = self.records[name]
            if set(record.axes) != set(axes):
                continue
            file_strides = _strides([len(e) for e in record.encodings])
            per_axis = []
            for axis, file_encs, file_stride in zip(record.axes, record.encodings, file_strides):
                where = {enc: j for j, enc in enumerate(file_encs)}
                pairs = [
                    (i * req_strides[axis], where[enc] * file_stride)
                    for i, enc in enumerate(want[axis])
                    if enc in where
                ]
                if not pairs:
                    break
                per_axis.append(pairs)
            else:
                for combo in itertools.product(*per_axis):
                    req_pos = sum(r for r, _ in combo)
                    if req_pos not in found:
                        found[req_pos] = (name, sum(f for _, f in combo))
        return found

    def _candidates(self, want: dict[str, Sequence[bytes]]) -> list[str]:
        """Files sharing at least one value with the request on every axis."""
        names: set[str] | None = None
        for axis, encs in want.items():
            on_axis: set[str] = set()
            for enc in encs:
                on_axis.update(self._by_value.get((axis, enc), ()))
            names = on_axis if names is None else names & on_axis
            if not names:
                return []
        return sorted(names or ())

    def locate_points(self, digests: Sequence[bytes]) -> dict[int, Location]:
        """Map positions of requested enumerated points (by digest) to stored locations."""
        if self._by_digest is None:
            self._by_digest = {}
            for name, record in sorted(self.records.items()):
                if record.digests is not None:
                    d = record.digests
                    for pos in range(len(d) // 16):
                        self._by_digest.setdefault(d[16 * pos : 16 * pos + 16], (name, pos))
        found = {}
        for i, digest in enumerate(digests):
            location = self._by_digest.get(digest)
            if location is not None:
                found[i] = location
        return found
