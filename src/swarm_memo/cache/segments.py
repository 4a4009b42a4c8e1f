"""Index segments: the records of the point index on disk (see :mod:`swarm_memo.cache.index`).

Each batch of records is one immutable segment file ``index/<time>-<id>.idx``: the magic
``SWMEMOIX5``, an xxh3-128 checksum of the rest, then a pickle of the records. A segment
that fails its checksum or any check of its records' shape, or that was written without a
checksum (format 4, an older swarm-memo), is never trusted: it is ignored (with one
:class:`CacheWarning` when damaged), the records of its chunk files are rebuilt from the
files, and a run deletes it. A record is also confirmed against its chunk file before
anything is served through it (:meth:`IndexRecord.describes`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import xxhash

from swarm_memo.cache.binindex import value_key
from swarm_memo.cache.codec import ChunkRecord
from swarm_memo.core.serial import DEFAULT_CODEC, Codec
from swarm_memo.core.userwarn import warn_user
from swarm_memo.errors import CacheWarning
from swarm_memo.identity.hashing import DIGEST_SIZE, point_digest
from swarm_memo.stores.base import Store

logger = logging.getLogger("swarm_memo")

INDEX_MAGIC = b"SWMEMOIX5"
"""Segment format 5: magic, xxh3-128 checksum of the pickle, pickle of the records."""
UNCHECKED_MAGIC = b"SWMEMOIX4"
"""Format 4 (no checksum, older swarm-memo): never trusted, its records are rebuilt."""
SEGMENT_SUFFIX = ".idx"
FLUSH_EVERY = 64
"""Records per segment file while a run writes chunks."""
FOLD_ABOVE = 32
"""A reader folds the segments into one when it finds more than this."""


@dataclass(frozen=True)
class IndexRecord:
    """The points of one chunk file: a product of axis bins, or a list of point digests.

    A product record keeps its bins' values (compact: runs of ints as ranges) in the
    stored axis order. Nothing is encoded on the write path, nor when the index is read:
    a request keys only the values of stored bins that may overlap it.
    """

    axes: tuple[str, ...]
    bins: tuple[Any, ...]
    digests: bytes | None
    checksum: bytes
    code: str | None = None
    """Fingerprint of the code that computed the chunk's outputs, when known."""

    def point_digests(self) -> list[bytes]:
        """The digests of the listed points of an enumerated file (none for a product)."""
        d = self.digests or b""
        return [d[i : i + DIGEST_SIZE] for i in range(0, len(d), DIGEST_SIZE)]

    @classmethod
    def of(
        cls,
        record: ChunkRecord,
        digests: Sequence[bytes] | None = None,
        checksum: bytes | None = None,
    ) -> IndexRecord:
        """The index record of a chunk; ``digests`` saves re-hashing enumerated points,
        ``checksum`` is its file's when the record was not read from that file."""
        checksum = record.checksum if checksum is None else checksum
        if record.points is None:
            key = dict(record.stored_key)
            bins = tuple(key[a] for a in record.axes)
            return cls(record.axes, bins, None, checksum, record.code)
        if digests is None:
            digests = [point_digest(p) for p in record.points]
        return cls((), (), b"".join(digests), checksum, record.code)

    def to_tuple(
        self,
    ) -> tuple[tuple[str, ...], tuple[Sequence[object], ...], bytes | None, bytes, str | None]:
        return (self.axes, self.bins, self.digests, self.checksum, self.code)

    def describes(self, record: ChunkRecord) -> bool:
        """Whether this record describes the chunk file ``record`` was read from: the same
        checksum and, for a product record, the same axes and bins (by canonical
        encoding), so its index arithmetic finds the right points in the file. A point
        list is confirmed point by point as it is served (see ``_reuse``)."""
        if record.checksum != self.checksum:
            return False
        if self.digests is not None:
            points = record.points
            return points is not None and len(points) * 16 == len(self.digests)
        if record.points is not None or record.axes != self.axes:
            return False
        key = dict(record.stored_key)
        if set(key) != set(self.axes):
            return False
        return all(_same_bin(key[a], b) for a, b in zip(self.axes, self.bins, strict=True))


class DamagedSegment(Exception):
    """A segment file that cannot be trusted; the message says why."""


def encode_segment(records: dict[str, IndexRecord], codec: Codec = DEFAULT_CODEC) -> bytes:
    """The bytes of one segment file: magic, checksum of the pickle, pickle."""
    rows = [(name, *record.to_tuple()) for name, record in records.items()]
    payload = codec.dumps(rows)
    return INDEX_MAGIC + xxhash.xxh3_128_digest(payload) + payload


def decode_segment(data: bytes, codec: Codec = DEFAULT_CODEC) -> dict[str, IndexRecord]:
    """Records of a segment file.

    Raises
    ------
    DamagedSegment
        Not a segment of this format, a checksum mismatch, or records of the wrong shape.
    """
    if data.startswith(UNCHECKED_MAGIC):
        raise DamagedSegment("written without a checksum (an older swarm-memo)")
    head = len(INDEX_MAGIC) + 16
    if len(data) < head or not data.startswith(INDEX_MAGIC):
        raise DamagedSegment("not an index segment (bad magic or truncated)")
    payload = memoryview(data)[head:]
    if xxhash.xxh3_128_digest(payload) != data[len(INDEX_MAGIC) : head]:
        raise DamagedSegment("checksum mismatch: the segment is damaged")
    try:  # the checksum passed: only a writer of another version could get here
        rows = codec.loads(payload)
        if not isinstance(rows, list):
            raise ValueError(f"records are a {type(rows).__name__}, not a list")
        return dict(_checked_row(row) for row in rows)
    except Exception as exc:
        raise DamagedSegment(f"unreadable records: {exc!r}") from exc


def _checked_row(row: object) -> tuple[str, IndexRecord]:
    """One stored row as (chunk name, record); raises on any field of the wrong type."""
    if not isinstance(row, (tuple, list)):
        raise ValueError(f"a record is a {type(row).__name__}, not a tuple")
    name, axes, bins, digests, checksum, code = row
    axes, bins = tuple(axes), tuple(bins)
    valid = (
        isinstance(name, str)
        and all(isinstance(axis, str) for axis in axes)
        and isinstance(checksum, bytes)
        and (code is None or isinstance(code, str))
    )
    if digests is None:
        valid = valid and len(axes) == len(bins)  # no axes: a sweep of one point ()
        valid = valid and all(isinstance(b, (range, tuple, list)) for b in bins)
    else:
        valid = valid and isinstance(digests, bytes) and len(digests) % 16 == 0
    if not valid:
        raise ValueError(f"malformed record of chunk {name!r:.80}")
    return name, IndexRecord(axes, bins, digests, checksum, code)


class IndexLog:
    """Reads the segments of one params set and writes this run's records in batches."""

    def __init__(self, store: Store, prefix: str, codec: Codec = DEFAULT_CODEC) -> None:
        self._store = store
        self._prefix = prefix
        self._codec = codec
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
            self._store.write(self._new_key(), encode_segment(pending, self._codec), durable=False)

    def _new_key(self) -> str:
        # Names sort by creation time, so a newer record of a chunk wins when merged.
        return f"{self._prefix}/{time.time_ns():020d}-{uuid.uuid4().hex[:12]}{SEGMENT_SUFFIX}"

    def read(self, *, fold: bool) -> dict[str, IndexRecord]:
        """Every record stored (this run's pending ones included); ``fold`` (runs only,
        never reads) replaces many segments by one."""
        names = sorted(self._store.names(self._prefix, SEGMENT_SUFFIX))
        records: dict[str, IndexRecord] = {}
        untrusted = False
        for segment in names:
            data = self._store.read(f"{self._prefix}/{segment}")
            if data is None:
                continue  # folded away by another run meanwhile
            try:
                records.update(decode_segment(data, self._codec))
            except DamagedSegment as exc:
                untrusted = True
                self._report(segment, exc, data)
        with self._lock:
            records.update(self._pending)
        if fold and (untrusted or len(names) > FOLD_ABOVE):
            self._fold(records, names)
        return records

    def _report(self, segment: str, exc: DamagedSegment, data: bytes) -> None:
        """One warning per damaged segment read; a segment of an older swarm-memo is only
        logged (it is not damaged, just not checked)."""
        url = self._store.url(f"{self._prefix}/{segment}")
        message = (
            f"swarm-memo: ignoring index segment {url}: {exc}; the records of its chunk "
            "files are rebuilt from the files"
        )
        if data.startswith(UNCHECKED_MAGIC):
            logger.info(message)
        else:
            warn_user(message, CacheWarning)

    def _fold(self, records: dict[str, IndexRecord], segments: list[str]) -> None:
        """Replace many segments (or untrusted ones) by one. Segments written meanwhile
        are left alone; one deleted under a concurrent reader only costs that reader some
        rebuilds. The records of an untrusted segment's files are rebuilt by the caller."""
        if records:
            self._store.write(self._new_key(), encode_segment(records, self._codec), durable=False)
        for segment in segments:
            self._store.delete(f"{self._prefix}/{segment}")


def _same_bin(a: Sequence[object], b: Sequence[object]) -> bool:
    """Whether two bins hold the same values, compared by canonical encoding."""
    if len(a) != len(b):
        return False
    types = set(map(type, a)) | set(map(type, b))
    if types <= {int} or types <= {str}:  # == is encoding equality for these
        return tuple(a) == tuple(b)
    return [value_key(v) for v in a] == [value_key(v) for v in b]
