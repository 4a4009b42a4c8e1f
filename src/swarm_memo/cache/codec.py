"""Chunk payload <-> bytes. The only module that knows the layout of a chunk file.

A chunk file is self-describing and self-checking. Its header is fixed-size, followed by a
small JSON *meta* block (readable without unpickling anything: the CLI, the streaming
check and the trust checks read only this) and the *body* (the outputs)::

    b"SWMEMOCK"            8 bytes   magic
    format version         2 bytes   big-endian; a newer one is "unreadable here"
    codec id               2 bytes   how meta and body are encoded and checked (see CODECS)
    meta length            4 bytes
    body length            8 bytes   so a truncated file is caught from header + size alone
    checksum              16 bytes   of meta + body (xxh3-128 for codec 1)
    meta                   JSON object: set id, cache version, axes, counts, code
                           fingerprint, timings, provenance; unknown keys are ignored
    body                   codec 1: pickle (protocol 5) of {"chunk_key", "points",
                           "outputs"}; codec 2: the same pickle with its large buffers
                           (numpy arrays of 64 KiB or more) out of band, see below

Codec 2 body: pickle length (8 bytes) and buffer count (4 bytes), then per buffer its
offset from the body start and its length (8 + 8 bytes), the pickle stream, and the
buffers, each starting at a file offset that is a multiple of 64. A reader builds the
arrays over the file's bytes read once (``pickle.loads(..., buffers=...)``), without
copying them again. A file without such buffers is written with codec 1, which every
earlier version of format 2 reads.

Readers ignore fields they do not know, so a newer writer may add fields (to meta or to
the body) without breaking older readers; a format change that older readers cannot
follow bumps the format version, and those readers then report the file as unreadable
here (not damaged), leaving it in place.
"""

from __future__ import annotations

import itertools
import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeGuard

import xxhash

from swarm_memo.cache.chunk_meta import ChunkMeta, code_runs
from swarm_memo.cache.meta_points import key_meta, point_ids_meta
from swarm_memo.core.serial import DEFAULT_CODEC, Codec
from swarm_memo.errors import CorruptChunkError, UnreadableChunkError
from swarm_memo.identity.hashing import point_digest

StoredKey = tuple[tuple[str, Sequence[Any]], ...]
"""A chunk key whose bins may be any sequences (a key read from a file keeps runs of
ints as ``range`` objects): compare it by digest or by bin values, never as a tuple."""

MAGIC = b"SWMEMOCK"
FORMAT_VERSION = 2
PICKLE_XXH3 = 1
"""Codec 1: JSON meta, pickled body, xxh3-128 checksum."""
PICKLE_BUFFERS_XXH3 = 2
"""Codec 2: codec 1 with large pickle buffers stored out of band (zero-copy arrays)."""
CODECS = (PICKLE_XXH3, PICKLE_BUFFERS_XXH3)
_BUFFER_ALIGN = 64
_BODY_HEAD = struct.Struct(">QI")
"""Codec 2: pickle length, buffer count."""
_BUFFER_ENTRY = struct.Struct(">QQ")
"""Codec 2: one buffer's offset from the body start and its length."""
_FIXED_FIELDS = struct.Struct(">HHIQ")
"""Format version, codec id, meta length, body length (after the magic)."""
_FIXED = len(MAGIC) + _FIXED_FIELDS.size
HEADER_SIZE = _FIXED + 16
"""Bytes to read to get a :class:`ChunkHeader` (the meta follows)."""


@dataclass(frozen=True)
class ChunkRecord:
    """Everything a chunk file stores.

    ``points`` is ``None`` when the points are the cartesian product of the key's bins in
    ``axes`` order (stored again they would double small files). ``partial`` chunks hold
    only some points of their chunk (listed in ``points``): failed points skipped, or a
    run stopped early; point-level reuse serves them, and a later run completes the chunk.
    ``set_id`` identifies the params set (the params themselves are stored once per set);
    ``code`` is the fingerprint of the ``exec_fn`` that computed every output, when known;
    when different code computed different points (outputs kept from older files),
    ``code`` is :data:`MIXED_CODE` and ``point_codes`` holds each point's fingerprint
    (build such records with :func:`with_point_codes`);
    ``info`` holds timings and provenance (``compute_seconds``, ``computed_at``, ``host``,
    ``pid``, versions): informative only.
    """

    set_id: str
    cache_version: str
    chunk_key: StoredKey
    axes: tuple[str, ...]
    points: list[Any] | None
    outputs: list[Any]
    partial: bool = False
    code: str | None = None
    info: dict[str, Any] = field(default_factory=dict, compare=False)
    checksum: bytes = field(default=b"", compare=False, repr=False)
    point_digests: Sequence[bytes] | None = field(default=None, compare=False, repr=False)
    """Digests of ``points`` when the writer has them (saves hashing them again)."""
    key_digest: str | None = None
    """Hex digest of the chunk key (``Chunk.key_digest``), checked instead of the key."""
    stored_bytes: int = field(default=0, compare=False, repr=False)
    """The size of the file it was read from (0 for a record not read from a file)."""
    point_codes: tuple[str | None, ...] | None = None
    """Per point, the fingerprint of the code that computed it (None: all ``code``)."""
    enumerator: str | None = None
    """Fingerprint of the custom ``enumerate_points`` whose output for this chunk's
    sub-spec (in ``axes`` order) is exactly the file's points; None: unknown, or the
    default product."""

    def code_at(self, position: int) -> str | None:
        """The fingerprint of the code that computed the output at ``position``."""
        return self.code if self.point_codes is None else self.point_codes[position]

    def codes(self) -> list[str | None]:
        """Every point's code fingerprint, in stored order."""
        if self.point_codes is None:
            return [self.code] * len(self.outputs)
        return list(self.point_codes)

    @cached_property
    def stored_key(self) -> StoredKey:
        """The chunk key as files and index records store it (:func:`compact_key`);
        computed once per record, however many of them write it."""
        return compact_key(self.chunk_key)

    def resolved_points(self) -> list[object]:
        """The chunk's points, rebuilt from the key when stored as a product."""
        if self.points is not None:
            return self.points
        bins = dict(self.chunk_key)
        return list(itertools.product(*(bins[axis] for axis in self.axes)))

    def meta(self) -> dict[str, object]:
        """The JSON meta block: what the CLI and checks read without unpickling. ``key``
        and ``point_ids`` let ``swarm-memo ls`` count each stored point once."""
        meta: dict[str, object] = {
            "set": self.set_id,
            "cache_version": self.cache_version,
            "axes": list(self.axes),
            "product": self.points is None,
            "points": len(self.outputs),
            "partial": self.partial,
            "code": self.code,
            "info": self.info,
            "key": key_meta(self.stored_key, self.axes),
            "key_digest": self.key_digest,
        }
        if self.point_codes is not None:
            meta["codes"] = code_runs(self.point_codes)
        if self.enumerator is not None:  # absent otherwise: older readers ignore it
            meta["enumerator"] = self.enumerator
        if self.points is not None:
            digests = self.point_digests
            if digests is None:
                digests = [point_digest(p) for p in self.points]
            meta["point_ids"] = point_ids_meta(digests)
        return meta


@dataclass(frozen=True)
class ChunkHeader:
    """What a chunk file says about itself, read without unpickling anything."""

    format_version: int
    codec: int
    meta_length: int
    body_length: int
    checksum: bytes

    @property
    def file_size(self) -> int:
        """The size an intact file with this header has."""
        return HEADER_SIZE + self.meta_length + self.body_length


def checksum(data: bytes | memoryview) -> bytes:
    return xxhash.xxh3_128_digest(data)


def compact_key(chunk_key: StoredKey) -> StoredKey:
    """The chunk key with every run of consecutive ints stored as a ``range``.

    Integer axes (seeds, indices, sizes) are the longest ones; a bin of them costs a few
    bytes instead of a few bytes per value, which keeps small outputs' files small.
    """
    return tuple((axis, _compact(values)) for axis, values in chunk_key)


def _compact(values: Sequence[object]) -> Sequence[object]:
    if isinstance(values, range) or len(values) < 3 or not _all_ints(values):
        return values
    step = values[1] - values[0]
    if step == 0:
        return values
    run = range(values[0], values[-1] + (1 if step > 0 else -1), step)
    return run if len(run) == len(values) and tuple(run) == values else values


def _all_ints(values: Sequence[object]) -> TypeGuard[Sequence[int]]:
    return set(map(type, values)) == {int}


def read_key(stored: object) -> StoredKey:
    """A stored chunk key as read: runs of ints stay ``range`` objects (sequences that
    cost nothing to build, however long the bin)."""
    if not isinstance(stored, (tuple, list)):
        raise TypeError(f"the chunk key is a {type(stored).__name__}")
    return tuple(
        (axis, values if isinstance(values, range) else tuple(values)) for axis, values in stored
    )


def encode_chunk(
    record: ChunkRecord, name: str | None = None, codec: Codec = DEFAULT_CODEC
) -> bytes:
    """Serialize a chunk record to the bytes of a chunk file (the checksum is computed).
    ``name``, the chunk file's name, goes into the meta: ``verify`` reports a file stored
    under another name than its writer gave it (a copy, a rename). ``codec`` pickles the
    body (codec 2 when it keeps some buffer out of band)."""
    fields = record.meta()
    if name is not None:
        fields["name"] = name
    meta = json.dumps(fields, sort_keys=True, default=repr).encode()
    payload: dict[str, object] = {
        "chunk_key": record.stored_key,
        "points": record.points,
        "outputs": record.outputs,
    }
    codec_id, body = _encode_body(payload, HEADER_SIZE + len(meta), codec)
    hasher = xxhash.xxh3_128(meta)
    for part in body:
        hasher.update(part)
    size = sum(memoryview(part).nbytes for part in body)
    fixed = MAGIC + _FIXED_FIELDS.pack(FORMAT_VERSION, codec_id, len(meta), size)
    return b"".join([fixed, hasher.digest(), meta, *body])


def _encode_body(
    payload: dict[str, object], body_start: int, codec: Codec
) -> tuple[int, list[bytes | memoryview]]:
    """``(codec id, parts)`` of the body: codec 1 unless ``codec`` keeps some pickle
    buffer out of band (codec 2), aligned for arrays built over the file's bytes."""
    stream, buffers = codec.dumps_split(payload)
    if not buffers:
        return PICKLE_XXH3, [stream]
    position = _BODY_HEAD.size + _BUFFER_ENTRY.size * len(buffers) + len(stream)
    table: list[bytes] = [_BODY_HEAD.pack(len(stream), len(buffers))]
    data: list[bytes | memoryview] = []
    for view in buffers:
        padding = -(body_start + position) % _BUFFER_ALIGN
        data += [b"\0" * padding, view]
        table.append(_BUFFER_ENTRY.pack(position + padding, view.nbytes))
        position += padding + view.nbytes
    return PICKLE_BUFFERS_XXH3, [b"".join(table), stream, *data]


def read_header(data: bytes) -> ChunkHeader:
    """Parse the fixed header (``data`` may be just its first :data:`HEADER_SIZE` bytes).

    Raises
    ------
    CorruptChunkError
        Bad magic or a truncated header.
    UnreadableChunkError
        A format version or codec this swarm-memo does not know (written by a newer one).
    """
    if len(data) < HEADER_SIZE or bytes(data[: len(MAGIC)]) != MAGIC:
        raise CorruptChunkError("not a swarm-memo chunk file (bad magic or truncated header)")
    version, codec, meta_length, body_length = _FIXED_FIELDS.unpack_from(data, len(MAGIC))
    if version != FORMAT_VERSION or codec not in CODECS:
        raise UnreadableChunkError(
            f"chunk format {version} with codec {codec} cannot be read by this swarm-memo "
            f"(it reads format {FORMAT_VERSION}, codecs {list(CODECS)}); was it written by "
            "a newer version?"
        )
    return ChunkHeader(version, codec, meta_length, body_length, bytes(data[_FIXED:HEADER_SIZE]))


def check_size(header: ChunkHeader, size: int) -> None:
    """Raise :class:`CorruptChunkError` unless a file of ``size`` bytes can be intact."""
    if size != header.file_size:
        raise CorruptChunkError(
            f"the file has {size} bytes where its header says {header.file_size}: "
            "truncated or damaged"
        )


def read_meta(data: bytes) -> tuple[ChunkHeader, ChunkMeta]:
    """Header and meta of a whole chunk file, checksum verified; nothing is unpickled."""
    header = read_header(data)
    check_size(header, len(data))
    view = memoryview(data)[HEADER_SIZE:]
    if checksum(view) != header.checksum:
        raise CorruptChunkError("checksum mismatch: the file is damaged")
    return header, parse_meta(header, data)


def parse_meta(header: ChunkHeader, data: bytes) -> ChunkMeta:
    """The meta block of a file whose first bytes are ``data`` (not checksummed here)."""
    raw = data[HEADER_SIZE : HEADER_SIZE + header.meta_length]
    try:  # decoded first: json.loads would sniff the encoding of bytes on every call
        meta = json.loads(bytes(raw).decode()) if len(raw) == header.meta_length else None
    except ValueError as exc:  # UnicodeDecodeError included
        raise CorruptChunkError(f"unreadable meta block: {exc}") from exc
    if not isinstance(meta, dict):
        raise CorruptChunkError("unreadable meta block: truncated or not a JSON object")
    return ChunkMeta.parse(meta)


PEEK_GUESS = 4096
"""Bytes read at first to peek at a chunk file's meta (most metas are smaller)."""


def peek_meta(read_prefix: Callable[[int], bytes | None], size: int) -> ChunkMeta:
    """The meta of a chunk file of ``size`` bytes from its first bytes alone
    (``read_prefix(n)`` reads them): magic, format, size and meta checked, not the
    checksum, and the body is never read. The one way to peek at a file.

    Raises
    ------
    CorruptChunkError
        Bad magic, a size that does not match the header, an unreadable meta.
    UnreadableChunkError
        A format this swarm-memo does not know.
    FileNotFoundError
        The file is gone.
    """
    head = read_prefix(HEADER_SIZE + PEEK_GUESS)
    if head is None:
        raise FileNotFoundError("the file vanished while being read")
    header = read_header(head)
    check_size(header, size)
    end = HEADER_SIZE + header.meta_length
    if len(head) < end:
        head = read_prefix(end) or b""
    return parse_meta(header, head)


def body_of(data: bytes) -> memoryview:
    """The body of a chunk file, unchecked (for benchmarks and tools): a pickle for codec
    1; use :func:`decode_body` for any codec."""
    return memoryview(data)[HEADER_SIZE + read_header(data).meta_length :]


def decode_body(header: ChunkHeader, data: bytes, codec: Codec = DEFAULT_CODEC) -> object:
    """Unpickle the body of a chunk file (not checked here). With codec 2 the arrays are
    built over ``data`` itself when it is writable (a ``bytearray``: they keep it alive),
    over one writable copy of the body otherwise."""
    view = memoryview(data)[HEADER_SIZE + header.meta_length :]
    if header.codec == PICKLE_XXH3:
        return codec.loads(view)
    length, count = _BODY_HEAD.unpack_from(view)
    start = _BODY_HEAD.size + _BUFFER_ENTRY.size * count
    table = [
        _BUFFER_ENTRY.unpack_from(view, _BODY_HEAD.size + _BUFFER_ENTRY.size * k)
        for k in range(count)
    ]
    if any(offset < start + length or offset + size > len(view) for offset, size in table):
        raise ValueError("a pickle buffer lies outside the body")
    if view.readonly:  # arrays over read-only memory could not be written to
        view = memoryview(bytearray(view))
    buffers = [view[offset : offset + size] for offset, size in table]
    return codec.loads(view[start : start + length], buffers=buffers)


def decode_chunk(data: bytes, codec: Codec = DEFAULT_CODEC) -> ChunkRecord:
    """Parse and check chunk file bytes.

    Raises
    ------
    CorruptChunkError
        The file is damaged: bad magic, truncation, checksum mismatch, missing fields.
    UnreadableChunkError
        The file is intact but cannot be read here: a newer format, or an output whose
        class cannot be imported in this process.
    """
    header, meta = read_meta(data)
    try:
        body = decode_body(header, data, codec)
    except (ImportError, AttributeError) as exc:  # intact, but a class is not importable here
        raise UnreadableChunkError(f"an output cannot be unpickled here: {exc!r}") from exc
    except Exception as exc:  # the checksum passed, so this is not an accident of the disk
        raise CorruptChunkError(f"the body cannot be unpickled: {exc!r}") from exc
    if meta.set_id is None or meta.cache_version is None:
        raise CorruptChunkError("a required field is missing: its params set or cache version")
    try:
        if not isinstance(body, dict):
            raise TypeError(f"the body is a {type(body).__name__}, not a dict")
        record = ChunkRecord(
            set_id=meta.set_id,
            cache_version=meta.cache_version,
            chunk_key=read_key(body["chunk_key"]),
            axes=meta.axes,
            points=body["points"],
            outputs=body["outputs"],
            partial=meta.partial,
            code=meta.code,
            info=meta.info,
            key_digest=meta.key_digest,
            checksum=header.checksum,
            stored_bytes=len(data),
            point_codes=meta.point_codes,
            enumerator=meta.enumerator,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptChunkError(f"a required field is missing or malformed: {exc!r}") from exc
    if record.points is not None and len(record.points) != len(record.outputs):
        raise CorruptChunkError("points and outputs differ in length")
    return record
