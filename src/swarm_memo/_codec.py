"""Chunk payload <-> bytes: magic, format version, checksum, pickled body.

A chunk file is self-describing: it holds the params, cache version, chunk key, the axis
order, the points (or a marker saying they are the cartesian product of the key) and one
output per point. Serialization lives here and only here; where the bytes go is the
store's business.

Layout (format version 1)::

    b"SWMEMOCK"            8 bytes, magic
    version                2 bytes, big-endian unsigned
    blake2b-128(body)     16 bytes, checksum
    body                   pickle (protocol 5) of a dict, see ChunkRecord
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass, field
from typing import Any

from ._types import ChunkKey
from .errors import CorruptChunkError

MAGIC = b"SWMEMOCK"
FORMAT_VERSION = 1
HEADER_SIZE = len(MAGIC) + 2 + 16


@dataclass(frozen=True)
class ChunkRecord:
    """Everything a chunk file stores.

    ``points`` is ``None`` when the points are the cartesian product of the key's bins in
    ``axes`` order (the default enumerator): storing them again would double small files.
    """

    params: dict[str, Any]
    cache_version: str
    chunk_key: ChunkKey
    axes: tuple[str, ...]
    points: list[Any] | None
    outputs: list[Any]
    checksum: bytes = field(default=b"", compare=False, repr=False)

    def resolved_points(self) -> list[Any]:
        """The chunk's points, rebuilt from the key when stored as a product."""
        if self.points is not None:
            return self.points
        import itertools

        bins = dict(self.chunk_key)
        return list(itertools.product(*(bins[axis] for axis in self.axes)))


def _checksum(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=16).digest()


def checksum_of(data: bytes) -> bytes:
    """The checksum stored in a chunk file's header (identifies its content)."""
    return data[len(MAGIC) + 2 : HEADER_SIZE]


def compact_key(chunk_key: ChunkKey) -> tuple[tuple[str, Any], ...]:
    """The chunk key with every run of consecutive ints stored as a ``range``.

    Integer axes (seeds, indices, sizes) are the longest ones; a bin of them costs a few
    bytes instead of a few bytes per value, which keeps small outputs' files small.
    """
    return tuple((axis, _compact(values)) for axis, values in chunk_key)


def _compact(values: tuple[Any, ...]) -> Any:
    if len(values) < 3 or set(map(type, values)) != {int}:
        return values
    step = values[1] - values[0]
    if step == 0:
        return values
    run = range(values[0], values[-1] + (1 if step > 0 else -1), step)
    return run if len(run) == len(values) and tuple(run) == values else values


def expand_key(stored: Any) -> ChunkKey:
    """Undo :func:`compact_key`."""
    return tuple((axis, tuple(values)) for axis, values in stored)


def encode_chunk(record: ChunkRecord) -> bytes:
    """Serialize a chunk record to the bytes of a chunk file."""
    body = pickle.dumps(
        {
            "params": record.params,
            "cache_version": record.cache_version,
            "chunk_key": compact_key(record.chunk_key),
            "axes": record.axes,
            "points": record.points,
            "outputs": record.outputs,
        },
        protocol=5,
    )
    return MAGIC + FORMAT_VERSION.to_bytes(2, "big") + _checksum(body) + body


def decode_chunk(data: bytes) -> ChunkRecord:
    """Parse chunk file bytes; raise :class:`CorruptChunkError` for anything not valid."""
    if len(data) < HEADER_SIZE or not data.startswith(MAGIC):
        raise CorruptChunkError("not a swarm-memo chunk file (bad magic or truncated header)")
    version = int.from_bytes(data[len(MAGIC) : len(MAGIC) + 2], "big")
    if version != FORMAT_VERSION:
        raise CorruptChunkError(
            f"chunk format version {version} is not supported (this swarm-memo reads "
            f"version {FORMAT_VERSION})"
        )
    checksum, body = data[len(MAGIC) + 2 : HEADER_SIZE], data[HEADER_SIZE:]
    if _checksum(body) != checksum:
        raise CorruptChunkError("checksum mismatch: the file is truncated or damaged")
    try:
        fields = pickle.loads(body)
        fields["chunk_key"] = expand_key(fields["chunk_key"])
        record = ChunkRecord(**fields, checksum=checksum)
    except Exception as exc:  # checksum passed, yet unreadable: e.g. a class went away
        raise CorruptChunkError(f"payload cannot be unpickled: {exc!r}") from exc
    if record.points is not None and len(record.points) != len(record.outputs):
        raise CorruptChunkError("points and outputs differ in length")
    return record
