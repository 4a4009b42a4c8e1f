"""The cache layout: params sets, chunk files, quarantine. Built on a byte store.

::

    cache_root/
      .gitignore                      "*": a cache is never committed by mistake
      <set-id>/                       one folder per (params, cache_version)
        params.json                   a plain-text description of the params, for humans
                                      and the CLI (never read back by runs)
        chunks/<chunk-name>.chunk     one file per memo chunk (see _codec)
        index/<uuid>.idx              which points each chunk file holds (see _index)
        claims.lock                   chunk claims between processes (see _claims)
      .quarantine/<set-id>/...        damaged or foreign files, moved aside, never deleted

``<set-id>`` is a digest of (params, cache_version); ``<chunk-name>`` is what
``chunk_hash_fn(params, chunk_key, cache_version)`` returns (by default a digest of the
three). Chunk files are the only truth; everything else can be rebuilt from them.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from swarm_memo._version import __version__
from swarm_memo.cache.chunk_meta import ChunkMeta
from swarm_memo.cache.codec import (
    FORMAT_VERSION,
    ChunkRecord,
    decode_chunk,
    encode_chunk,
    peek_meta,
    read_header,
    read_meta,
)
from swarm_memo.cache.layout import CHUNK_SUFFIX, SetPaths, quarantine_key
from swarm_memo.cache.segments import IndexLog, IndexRecord
from swarm_memo.core.serial import DEFAULT_CODEC, PICKLE_ERRORS, Codec
from swarm_memo.core.textfmt import JSONValue
from swarm_memo.core.userwarn import warn_user
from swarm_memo.errors import CacheWarning, CorruptChunkError, UnreadableChunkError
from swarm_memo.identity.bindigest import sequence_digest
from swarm_memo.identity.grid import Chunk
from swarm_memo.identity.hashing import digest_bytes, digest_parts, encode
from swarm_memo.stores.base import FileStat, Store

logger = logging.getLogger("swarm_memo")

TIMING_SAMPLE = 64
"""Chunk files whose stored timings estimate the compute time of missing points."""
PEEK_BYTES = 4096
"""Bytes read to check a chunk file without loading it (header + usual meta)."""
_SAFE_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,200}")


def _warn(message: str) -> None:
    # One report: a CacheWarning, never also a log line (with no logging set up, that
    # went through logging's last-resort handler to stderr, even at verbose=0).
    warn_user(message, CacheWarning)


def check_chunk_name(name: object) -> str:
    """Validate what ``chunk_hash_fn`` returned: it becomes a file name."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
        raise ValueError(
            "chunk_hash_fn must return a non-empty str of letters, digits, '_', '-' and '.' "
            f"(it names a file), not starting with '.'; got {name!r}"
        )
    return name


@dataclass
class ParamsSet:
    """The chunk files of one (params, cache_version) in a store.

    A read-only set (``writable=False``: ``load``, ``status``) never creates, moves or
    rewrites anything: damaged files are reported, not quarantined, and index records
    rebuilt on the way stay in memory.
    """

    store: Store
    set_id: str
    params: dict[str, Any]
    cache_version: str
    writable: bool = True
    codec: Codec = DEFAULT_CODEC
    """Pickles chunk bodies and index segments (any codec reads what another wrote)."""
    quarantined: set[str] = field(default_factory=set)
    """Chunk files found damaged and moved aside during this call."""
    unusable: set[str] = field(default_factory=set)
    """Chunk files this process cannot use (damaged or unreadable here)."""
    unreadable: set[str] = field(default_factory=set)
    """Intact chunk files this swarm-memo cannot read (a newer format, an output class
    not importable here): never overwritten; their points go to :func:`side_name`."""
    _params_written: bool = False

    def __post_init__(self) -> None:
        self.paths = SetPaths(self.set_id)
        self.index_log = IndexLog(self.store, self.paths.index, self.codec)

    def chunk_key(self, name: str) -> str:
        return self.paths.chunk(name)

    def has_chunk(self, name: str) -> bool:
        return self.store.stat(self.chunk_key(name)) is not None

    def stored_names(self) -> set[str]:
        """Names of the chunk files present (one listing, no reads)."""
        listed = self.store.names(self.paths.chunks, CHUNK_SUFFIX)
        return {n[: -len(CHUNK_SUFFIX)] for n in listed}

    def load(self, name: str, expected: Chunk | None = None) -> ChunkRecord | None:
        """Read and check one chunk file; ``None`` if absent or unusable here."""
        key = self.chunk_key(name)
        data = self.store.read(key)
        if data is None:
            return None
        try:
            record = decode_chunk(data, self.codec)
            self._check_belongs(record.set_id, record.cache_version)
            # Keys compare by canonical encoding, never ==: NaN != NaN, 1 == 1.0 == True.
            if expected is not None and not _holds(record, expected):
                raise CorruptChunkError("the file holds another chunk than its name says")
        except (CorruptChunkError, UnreadableChunkError) as exc:
            self._set_aside(name, key, exc, lambda: self._still_the_file_read(key, data))
            if name in self.unreadable and expected is not None:
                return self.load(side_name(name), expected)  # this version's own copy
            return None
        return record

    def _still_the_file_read(self, key: str, data: bytes) -> FileStat | None:
        """The stat of the file at ``key`` if it still holds ``data`` (taken before
        reading it again); None when another process replaced it meanwhile. Only the
        error path pays for it: an intact read costs no ``stat``."""
        before = self.store.stat(key)
        if before is None or self.store.read(key) != data:
            return None
        return before

    def peek(self, name: str) -> ChunkMeta | None:
        """The meta of a chunk file whose header, size and ownership check out (the body
        is not read or verified); ``None`` if absent or unusable."""
        key = self.chunk_key(name)
        stat = self.store.stat(key)
        if stat is None:
            return None
        try:
            meta = peek_meta(functools.partial(self.store.read_prefix, key), stat.size)
            self._check_belongs(meta.set_id, meta.cache_version)
        except FileNotFoundError:
            return None
        except (CorruptChunkError, UnreadableChunkError) as exc:
            self._set_aside(name, key, exc, lambda: stat)
            return self.peek(side_name(name)) if name in self.unreadable else None
        return meta

    def check(self, name: str, expected: Chunk) -> ChunkMeta | None:
        """The meta of a chunk file that a run reading it would accept: intact (the whole
        file is read and its checksum verified; nothing is unpickled), of this params set
        and holding ``expected`` (its key digest); ``None`` if absent or unusable, set
        aside as :meth:`load` does."""
        checked = self._read_checked(name, expected)
        if checked is None and name in self.unreadable:
            return self.check(side_name(name), expected)  # this version's own copy
        return None if checked is None else checked[1]

    def intact(self, name: str) -> bytes | None:
        """The checksum of a chunk file of this set that is intact (read whole, nothing
        unpickled); ``None`` if absent or unusable, set aside as :meth:`load` does."""
        checked = self._read_checked(name, None)
        return None if checked is None else checked[0]

    def _read_checked(self, name: str, expected: Chunk | None) -> tuple[bytes, ChunkMeta] | None:
        key = self.chunk_key(name)
        data = self.store.read(key)
        if data is None:
            return None
        try:
            header, meta = read_meta(data)
            self._check_belongs(meta.set_id, meta.cache_version)
            digest = meta.key_digest
            if expected is not None and digest is None:  # no key digest: check the key
                return None if self.load(name, expected) is None else (header.checksum, meta)
            if expected is not None and digest != expected.key_digest().hex():
                raise CorruptChunkError("the file holds another chunk than its name says")
        except (CorruptChunkError, UnreadableChunkError) as exc:
            self._set_aside(name, key, exc, lambda: self._still_the_file_read(key, data))
            return None
        return header.checksum, meta

    def seconds_per_point(self, sample: int = TIMING_SAMPLE) -> float | None:
        """Mean compute seconds per point from the timings stored with (a sample of) this
        set's chunk files; None when none has timings. Reads only headers and meta."""
        seconds, points = 0.0, 0
        for name in sorted(self.stored_names())[:sample]:
            key = self.chunk_key(name)
            stat = self.store.stat(key)
            if stat is None:
                continue
            try:
                meta = peek_meta(functools.partial(self.store.read_prefix, key), stat.size)
            except (OSError, CorruptChunkError, UnreadableChunkError):
                continue  # gone, damaged or another format
            if meta.compute_seconds is not None and meta.computed_points is not None:
                seconds += meta.compute_seconds
                points += meta.computed_points
        return seconds / points if points else None

    def _check_belongs(self, set_id: str | None, cache_version: str | None) -> None:
        if set_id != self.set_id or cache_version != self.cache_version:
            raise CorruptChunkError("the file belongs to other params or another cache_version")

    def _set_aside(
        self, name: str, key: str, exc: Exception, file_read: Callable[[], FileStat | None]
    ) -> None:
        """Report an unusable file; a writable set quarantines it if it is damaged and
        ``file_read()`` says it is still the file that was read."""
        self.unusable.add(name)
        url = self.store.url(key)
        if isinstance(exc, UnreadableChunkError):
            self.unreadable.add(name)
            side = self.store.url(self.chunk_key(side_name(name)))
            _warn(
                f"swarm-memo: cannot read cache file {url} here: {exc}; it is left in place "
                f"and never overwritten: this version stores and reads its own points of "
                f"that chunk in {side}"
            )
            return
        if not self.writable:
            _warn(
                f"swarm-memo: ignoring damaged cache file {url} here: {exc}; it is left in "
                "place and its points count as missing in this process"
            )
            return
        self._quarantine(key, str(exc), file_read())
        self.quarantined.add(name)

    def prepare(self) -> None:
        """Before the first point of a run is computed: check that the set's folder can be
        written and describe the set once, so no point is computed that cannot be stored
        (a new set's description is a real write; a full disk then raises here too)."""
        if not self._params_written:
            self.store.check_writable(self.set_id)
            # No fsync: a description for people and the CLI, never trusted, and the
            # run's first chunk waited for it (one fsync per new params set per call).
            self.store.write_if_absent(
                self.paths.params,
                describe_params(self.params, self.cache_version),
                durable=False,
            )
            self._params_written = True

    def save(
        self,
        name: str,
        record: ChunkRecord,
        point_digests: list[bytes] | None,
        on_unpicklable: Callable[[Exception], Exception] | None = None,
    ) -> None:
        """Write one chunk file atomically, then its index record. A file this version
        cannot read is never overwritten: the chunk goes to its :func:`side_name`."""
        while name in self.unreadable:
            name = side_name(name)
        self.prepare()
        try:
            data = encode_chunk(record, name, self.codec)
        except PICKLE_ERRORS as exc:
            if on_unpicklable is None:
                raise
            raise on_unpicklable(exc) from exc
        self.store.write(self.chunk_key(name), data)
        # The index record goes second: it never describes a chunk file that is not there.
        checksum = read_header(data).checksum
        self.index_log.add(name, IndexRecord.of(record, point_digests, checksum))

    def set_aside_other_order(self, name: str, record: ChunkRecord) -> str:
        """Move the chunk file ``name``, whose product points follow another axis order
        than the run about to replace it, to a name of its own in the same folder: its
        outputs stay stored (and are served again under that axis order). Returns the new
        name."""
        while name in self.unreadable:  # ``record`` is this version's copy of the chunk
            name = side_name(name)
        tag = digest_bytes(encode(record.axes) + record.checksum).hex()[:16]
        new_name = f"{name}.order-{tag}"
        self.store.move(self.chunk_key(name), self.chunk_key(new_name))
        return new_name

    def index_record(self, name: str) -> IndexRecord | None:
        """Rebuild a missing or stale index record from its chunk file (kept on disk only
        by a writable set)."""
        record = self.load(name)
        return None if record is None else self.describe(name, record)

    def describe(self, name: str, record: ChunkRecord) -> IndexRecord:
        """The index record of a chunk file just read (written down by a writable set)."""
        index_record = IndexRecord.of(record)
        if self.writable:
            logger.info("swarm-memo: rebuilt index record of chunk %s", name)
            self.index_log.add(name, index_record)
        return index_record

    def read_index(self) -> dict[str, IndexRecord]:
        """The stored index records (segments are folded only by a writable set)."""
        return self.index_log.read(fold=self.writable)

    def close(self) -> None:
        """Write the index records still pending (call once a run is over)."""
        if self.writable:
            self.index_log.flush()

    def _quarantine(self, key: str, reason: str, before: FileStat | None) -> None:
        """Move a damaged file aside, unless another process replaced it meanwhile (its
        new content may well be intact: a run racing us just wrote it). ``before`` is the
        file's stat when it was known to hold what was read (None: it did not)."""
        now = self.store.stat(key)
        if now is None or before is None or now.token != before.token:
            logger.info("swarm-memo: %s changed while being read; not quarantined", key)
            return
        target = f"{quarantine_key(key)}.{time.time_ns()}"
        message = (
            f"swarm-memo: ignoring cache file {self.store.url(key)}: {reason}; "
            f"moved to {self.store.url(target)} and its points will be recomputed"
        )
        try:
            self.store.move(key, target)
        except OSError as exc:  # another process moved it first, or a read-only cache
            message += f" (could not move it: {exc})"
        _warn(message)

    def clean_temp(self) -> int:
        """Remove temp files that killed writers left (older than a grace period)."""
        prefixes = (self.set_id, self.paths.chunks, self.paths.index)
        return sum(self.store.clean_temp(prefix) for prefix in prefixes)


def side_name(name: str) -> str:
    """Where this version stores a chunk whose own file it cannot read (written by a newer
    swarm-memo): next to it, in this version's format (no ``chunk_hash_fn`` name holds a
    ``~``, so it names no other chunk)."""
    return f"{name}~format{FORMAT_VERSION}"


def _holds(record: ChunkRecord, chunk: Chunk) -> bool:
    """Whether a chunk file's key is ``chunk``'s, compared by canonical encoding (never
    ``==``: NaN != NaN, 1 == 1.0): through the key digest the writer stored (covered by
    the checksum), else through bin digests."""
    if record.key_digest is not None:
        return record.key_digest == chunk.key_digest().hex()
    stored = dict(record.chunk_key)
    if set(stored) != set(chunk.axes):
        return False
    for axis, values, digest in zip(chunk.axes, chunk.bins, chunk.bin_digests, strict=True):
        found = stored[axis]
        # For values that are all ints or strs, == is encoding equality: a quick exact test.
        if found == values and set(map(type, found)) | set(map(type, values)) <= _PLAIN:
            continue
        if sequence_digest(found) != digest:
            return False
    return True


_PLAIN = frozenset({int, str})


def _jsonable(value: object) -> JSONValue:
    """``value`` as JSON where it maps exactly, else its (shortened) repr."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _jsonable(v) for k, v in value.items()}
    text = repr(value)
    return text if len(text) <= 2000 else text[:2000] + "..."


def describe_params(params: Mapping[str, object], cache_version: str) -> bytes:
    """The text of ``params.json``: for people and the CLI, never unpickled or trusted."""
    description = {
        "params": _jsonable(params),
        "cache_version": cache_version,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "swarm_memo": __version__,
    }
    return json.dumps(description, indent=1, sort_keys=True).encode() + b"\n"


def params_set_id(params_encoding: bytes, cache_version: str) -> str:
    """The folder name of a (params, cache_version): a digest of both."""
    hasher = digest_parts(b"swarm-memo-params-set", params_encoding, encode(cache_version))
    return str(hasher.hexdigest())
