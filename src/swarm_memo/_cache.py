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

import json
import logging
import math
import re
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ._codec import ChunkRecord, decode_chunk, encode_chunk, read_header
from ._hashing import digest_bytes, encode
from ._index import IndexLog, IndexRecord
from .errors import CacheWarning, CorruptChunkError, UnreadableChunkError

logger = logging.getLogger("swarm_memo")

CHUNK_SUFFIX = ".chunk"
PARAMS_FILE = "params.json"
QUARANTINE = ".quarantine"
_SAFE_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,200}")


class ByteStore(Protocol):
    """What the cache needs from a store (see ``_store.LocalStore``)."""

    def read(self, key: str) -> bytes | None: ...
    def write(self, key: str, data: bytes, *, durable: bool = True) -> None: ...
    def write_if_absent(self, key: str, data: bytes) -> None: ...
    def names(self, prefix: str, suffix: str = "") -> list[str]: ...
    def move(self, src: str, dst: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def url(self, key: str) -> str: ...
    def clean_temp(self, prefix: str, grace_seconds: float = ...) -> int: ...


def _warn(message: str) -> None:
    logger.warning(message)
    warnings.warn(message, CacheWarning, stacklevel=5)


def check_chunk_name(name: Any) -> str:
    """Validate what ``chunk_hash_fn`` returned: it becomes a file name."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
        raise ValueError(
            "chunk_hash_fn must return a non-empty str of letters, digits, '_', '-' and '.' "
            f"(it names a file), not starting with '.'; got {name!r}"
        )
    return name


@dataclass
class ParamsSet:
    """The chunk files of one (params, cache_version) in a store."""

    store: ByteStore
    set_id: str
    params: dict[str, Any]
    cache_version: str
    quarantined: set[str] = field(default_factory=set)
    """Chunk files found damaged and moved aside during this call."""
    unusable: set[str] = field(default_factory=set)
    """Chunk files this process cannot use (damaged or unreadable here)."""
    _params_written: bool = False

    def __post_init__(self) -> None:
        self.index_log = IndexLog(self.store, f"{self.set_id}/index")

    def chunk_key(self, name: str) -> str:
        return f"{self.set_id}/chunks/{name}{CHUNK_SUFFIX}"

    def has_chunk(self, name: str) -> bool:
        return self.store.exists(self.chunk_key(name))

    def stored_names(self) -> set[str]:
        """Names of the chunk files present (one listing, no reads)."""
        listed = self.store.names(f"{self.set_id}/chunks", CHUNK_SUFFIX)
        return {n[: -len(CHUNK_SUFFIX)] for n in listed}

    def load(self, name: str, expected_key: Any = None) -> ChunkRecord | None:
        """Read and check one chunk file; ``None`` if absent or unusable (quarantined)."""
        key = self.chunk_key(name)
        data = self.store.read(key)
        if data is None:
            return None
        try:
            record = decode_chunk(data)
            self._check_belongs(record, expected_key)
        except UnreadableChunkError as exc:
            _warn(
                f"swarm-memo: cannot read cache file {self.store.url(key)} here: {exc}; "
                "it is left in place and its points count as missing in this process"
            )
            self.unusable.add(name)
            return None
        except CorruptChunkError as exc:
            self._quarantine(key, str(exc))
            self.quarantined.add(name)
            self.unusable.add(name)
            return None
        return record

    def _check_belongs(self, record: ChunkRecord, expected_key: Any) -> None:
        if record.set_id != self.set_id or record.cache_version != self.cache_version:
            raise CorruptChunkError("the file belongs to other params or another cache_version")
        # Keys compare by canonical encoding, never ==: NaN != NaN, 1 == 1.0 == True.
        if expected_key is not None and encode(record.chunk_key) != encode(expected_key):
            raise CorruptChunkError("the file holds another chunk than its name says")

    def save(
        self, name: str, record: ChunkRecord, point_digests: list[bytes] | None = None
    ) -> None:
        """Write one chunk file atomically (and the params file on first use)."""
        if not self._params_written:
            self.store.write_if_absent(
                f"{self.set_id}/{PARAMS_FILE}", describe_params(self.params, self.cache_version)
            )
            self._params_written = True
        data = encode_chunk(record)
        self.store.write(self.chunk_key(name), data)
        # The index record goes second: it never describes a chunk file that is not there.
        record = replace(record, checksum=read_header(data).checksum)
        self.index_log.add(name, IndexRecord.of(record, point_digests))

    def rebuild_index_record(self, name: str) -> IndexRecord | None:
        """Recreate a missing or stale index record from its chunk file."""
        record = self.load(name)
        if record is None:
            return None
        logger.info("swarm-memo: rebuilt index record of chunk %s", name)
        index_record = IndexRecord.of(record)
        self.index_log.add(name, index_record)
        return index_record

    def close(self) -> None:
        """Write the index records still pending (call once a run is over)."""
        self.index_log.flush()

    def _quarantine(self, key: str, reason: str) -> None:
        target = f"{QUARANTINE}/{key}.{time.time_ns()}"
        message = (
            f"swarm-memo: ignoring cache file {self.store.url(key)}: {reason}; "
            f"moved to {self.store.url(target)} and its points will be recomputed"
        )
        try:
            self.store.move(key, target)
        except OSError as exc:  # another process moved it first, or a read-only cache
            message += f" (could not move it: {exc})"
        logger.warning(message)
        warnings.warn(message, CacheWarning, stacklevel=4)

    def clean_temp(self) -> int:
        """Remove temp files that killed writers left (older than a grace period)."""
        prefixes = (self.set_id, f"{self.set_id}/chunks", f"{self.set_id}/index")
        return sum(self.store.clean_temp(prefix) for prefix in prefixes)


def _jsonable(value: Any) -> Any:
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


def describe_params(params: dict[str, Any], cache_version: str) -> bytes:
    """The text of ``params.json``: for people and the CLI, never unpickled or trusted."""
    from . import __version__

    description = {
        "params": _jsonable(params),
        "cache_version": cache_version,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "swarm_memo": __version__,
    }
    return json.dumps(description, indent=1, sort_keys=True).encode() + b"\n"


def params_set_id(params_encoding: bytes, cache_version: str) -> str:
    """The folder name of a (params, cache_version): a digest of both."""
    return digest_bytes(b"swarm-memo-params-set" + params_encoding + encode(cache_version)).hex()
