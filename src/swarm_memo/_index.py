"""The point index: which stored chunk file holds which point.

Chunk files are the truth; the index only speeds up finding points inside them. For each
chunk file the writer records which points it holds:

- a *product* chunk (default enumerator): its axis order and its bins' values. A point is
  found by per-axis lookups and index arithmetic, so point order, axis order and bin
  boundaries may all change between runs;
- an *enumerated* chunk (custom ``enumerate_points``): the 16-byte digest of each point.

Records are written after their chunk files, in batches: each batch is one immutable
*segment* file ``index/<uuid>.idx`` (written atomically, never modified). Writers never
share a file, so nothing needs a lock and nothing is lost to a race, on local disks,
NFS or object stores alike; and a chunk costs no extra file creation. Readers merge every
segment; once there are many, a reader folds them into one. Each record carries its chunk
file's checksum, so a record describing an older version of a file is detected. A chunk
file without a record (a crash before its batch was written, a deleted ``index/``) gets
one rebuilt from the file. Deleting ``index/`` loses nothing.
"""

from __future__ import annotations

import math
import pickle
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ._codec import ChunkRecord, compact_key
from ._hashing import encode, point_digest
from ._store import Store

INDEX_MAGIC = b"SWMEMOIX4"
SEGMENT_SUFFIX = ".idx"
FLUSH_EVERY = 64
"""Records per segment file while a run writes chunks."""
FOLD_ABOVE = 32
"""A reader folds the segments into one when it finds more than this."""
Location = tuple[str, int]
Found = tuple[str, list[int], list[int]]
"""(chunk file, positions in the request, positions in that file)."""


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
    code: str | None = None
    """Fingerprint of the code that computed the chunk's outputs, when known."""

    @classmethod
    def of(cls, record: ChunkRecord, digests: Sequence[bytes] | None = None) -> IndexRecord:
        """The index record of a chunk; ``digests`` saves re-hashing enumerated points."""
        if record.points is None:
            key = dict(compact_key(record.chunk_key))
            bins = tuple(key[a] for a in record.axes)
            return cls(record.axes, bins, None, record.checksum, record.code)
        if digests is None:
            digests = [point_digest(p) for p in record.points]
        return cls((), (), b"".join(digests), record.checksum, record.code)

    @cached_property
    def encodings(self) -> tuple[tuple[bytes, ...], ...]:
        """Canonical encodings of each bin's values, in ``axes`` order."""
        return tuple(tuple(encode(v, "chunk key") for v in values) for values in self.bins)

    def to_tuple(self) -> tuple[Any, ...]:
        return (self.axes, self.bins, self.digests, self.checksum, self.code)


def encode_segment(records: dict[str, IndexRecord]) -> bytes:
    """The bytes of one segment file."""
    rows = [(name, *record.to_tuple()) for name, record in records.items()]
    return INDEX_MAGIC + pickle.dumps(rows, protocol=5)


def decode_segment(data: bytes) -> dict[str, IndexRecord]:
    """Records of a segment file; empty when it is not a readable segment."""
    if not data.startswith(INDEX_MAGIC):
        return {}
    try:
        rows = pickle.loads(data[len(INDEX_MAGIC) :])
        return {
            name: IndexRecord(tuple(axes), tuple(bins), digests, checksum, code)
            for name, axes, bins, digests, checksum, code in rows
        }
    except Exception:  # a damaged segment: its chunks get records rebuilt
        return {}


class IndexLog:
    """Reads the segments of one params set and writes this run's records in batches."""

    def __init__(self, store: Store, prefix: str) -> None:
        self._store = store
        self._prefix = prefix
        self._pending: dict[str, IndexRecord] = {}
        self._lock = threading.Lock()  # chunk writer threads add records concurrently

    def add(self, name: str, record: IndexRecord) -> None:
        with self._lock:
            self._pending[name] = record
            full = len(self._pending) >= FLUSH_EVERY
        if full:
            self.flush()

    def flush(self) -> None:
        """Write the pending records as one new segment (no fsync: rebuildable)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if pending:
            self._store.write(self._new_key(), encode_segment(pending), durable=False)

    def _new_key(self) -> str:
        # Names sort by creation time, so a newer record of a chunk wins when merged.
        return f"{self._prefix}/{time.time_ns():020d}-{uuid.uuid4().hex[:12]}{SEGMENT_SUFFIX}"

    def read(self, *, fold: bool) -> dict[str, IndexRecord]:
        """Every record stored (this run's pending ones included); ``fold`` (runs only,
        never reads) replaces many segments by one."""
        names = sorted(self._store.names(self._prefix, SEGMENT_SUFFIX))
        records: dict[str, IndexRecord] = {}
        for segment in names:
            data = self._store.read(f"{self._prefix}/{segment}")
            records.update(decode_segment(data or b""))
        with self._lock:
            records.update(self._pending)
        if fold and len(names) > FOLD_ABOVE:
            self._fold(records, names)
        return records

    def _fold(self, records: dict[str, IndexRecord], segments: list[str]) -> None:
        """Replace many segments by one. Segments written meanwhile are left alone; one
        deleted under a concurrent reader only costs that reader some rebuilds."""
        self._store.write(self._new_key(), encode_segment(records), durable=False)
        for segment in segments:
            self._store.delete(f"{self._prefix}/{segment}")


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
        self.has_digests = any(record.digests is not None for record in records.values())
        """Whether some file lists its points by digest (enumerated or partial chunks)."""
        for name, record in sorted(records.items()):
            if record.digests is None:
                for axis, encs in zip(record.axes, record.encodings):
                    for enc in encs:
                        self._by_value.setdefault((axis, enc), []).append(name)

    def __len__(self) -> int:
        return len(self.records)

    def locate_product(
        self, axes: Sequence[str], encodings: Sequence[Sequence[bytes]]
    ) -> list[Found]:
        """Where the points of a requested product chunk are stored.

        ``axes`` and ``encodings`` describe the request in its own axis order; positions
        are flat indices of its cartesian product (first axis slowest). Each point is
        reported once, from the first file (in name order) that holds it.
        """
        want = dict(zip(axes, encodings))
        req_strides = dict(zip(axes, _strides([len(e) for e in encodings])))
        taken = bytearray(math.prod(len(e) for e in encodings))
        found: list[Found] = []
        for name in self._candidates(want):
            record = self.records[name]
            if set(record.axes) != set(axes):
                continue
            offsets = [(0, 0)]  # (request position, file position), built axis by axis
            file_strides = _strides([len(e) for e in record.encodings])
            for axis, file_encs, file_stride in zip(record.axes, record.encodings, file_strides):
                where = {enc: j * file_stride for j, enc in enumerate(file_encs)}
                stride = req_strides[axis]
                pairs = [
                    (i * stride, where[enc]) for i, enc in enumerate(want[axis]) if enc in where
                ]
                offsets = [(r + dr, f + df) for r, f in offsets for dr, df in pairs]
            req = [r for r, _ in offsets if not taken[r]]
            if req:
                files = [f for r, f in offsets if not taken[r]]
                for r in req:
                    taken[r] = 1
                found.append((name, req, files))
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

    def locate_points(self, digests: Sequence[bytes]) -> list[Found]:
        """Where requested enumerated points (by digest) are stored."""
        if self._by_digest is None:
            self._by_digest = {}
            for name, record in sorted(self.records.items()):
                if record.digests is not None:
                    d = record.digests
                    for pos in range(len(d) // 16):
                        self._by_digest.setdefault(d[16 * pos : 16 * pos + 16], (name, pos))
        by_file: dict[str, Found] = {}
        for i, digest in enumerate(digests):
            location = self._by_digest.get(digest)
            if location is not None:
                name, file_pos = location
                entry = by_file.setdefault(name, (name, [], []))
                entry[1].append(i)
                entry[2].append(file_pos)
        return list(by_file.values())
