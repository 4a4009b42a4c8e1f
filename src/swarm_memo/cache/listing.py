"""Read-only inspection of a cache: its params sets, chunk files and axes, via its store.

Everything here works on the files alone, never on a :class:`SwarmMemo`, and through the
cache's :class:`~swarm_memo.stores.base.Store`, so a local folder, ``s3://`` and ``memory://``
caches are inspected alike. Checking every chunk file and cleaning up live in
:mod:`swarm_memo.inspection.maintenance`, the formatting helpers in :mod:`swarm_memo.core.textfmt`.

Inspection never modifies a cache and never runs code from it: params come from the
plain-JSON ``params.json``, chunk facts from the JSON meta block of each chunk file
(``_codec.peek_meta``); no pickle (chunk body, index segment, old ``params.pkl``) is
ever loaded.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from swarm_memo.cache.chunk_meta import ChunkMeta
from swarm_memo.cache.codec import peek_meta as codec_peek_meta
from swarm_memo.cache.layout import CHUNK_SUFFIX, OLD_PARAMS_FILE, PARAMS_FILE, SetPaths
from swarm_memo.cache.meta_points import PointCounter, axis_values
from swarm_memo.core.textfmt import iso_time, short_repr, sort_values, to_jsonable
from swarm_memo.errors import CorruptChunkError, InspectError, SpecError, UnreadableChunkError
from swarm_memo.stores.base import Store
from swarm_memo.stores.local import LocalStore
from swarm_memo.stores.registry import open_store

SHORT_DIGEST = 12
# A set folder is named by a hex digest; requiring it keeps gc away from foreign folders.
_SET_ID = re.compile(r"[0-9a-f]{16,128}")
"""Bytes of meta read along with the header; a longer meta costs a second read."""


@dataclass(frozen=True)
class FileEntry:
    """A file found in the cache: its key in the store, its location, size and mtime."""

    key: str
    path: str
    size: int
    mtime: float

    @property
    def key_name(self) -> str:
        """The file name (last part of the key)."""
        return self.key.rsplit("/", 1)[-1]

    def to_json(self, now: float | None = None) -> dict[str, object]:
        out: dict[str, object] = {"path": self.path, "bytes": self.size}
        out["mtime"] = iso_time(self.mtime)
        if now is not None:
            out["age_seconds"] = round(now - self.mtime, 3)
        return out


def open_cache(cache_root: str, storage_options: dict[str, object] | None = None) -> Store:
    """The store of an existing cache, for reading; :class:`InspectError` if there is none.

    Nothing is created: a missing local folder is an error, not an empty cache.
    """
    try:
        store = open_store(cache_root, storage_options)
    except SpecError as exc:
        raise InspectError(str(exc).replace("exists and is not", "is not")) from None
    if isinstance(store, LocalStore) and not store.root.is_dir():
        raise InspectError(f"cache root {str(store.root)!r} does not exist")
    return store


def _entry(store: Store, key: str) -> FileEntry | None:
    st = store.stat(key)
    if st is None:
        return None
    return FileEntry(key, store.url(key), st.size, st.mtime_ns / 1e9)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def visible_files(store: Store, prefix: str, suffix: str = "") -> list[FileEntry]:
    """The files the library lists under ``prefix`` (ending in ``suffix``), by name."""
    found = (_entry(store, _join(prefix, n)) for n in sorted(store.names(prefix, suffix)))
    return [e for e in found if e is not None]


def temp_entries(store: Store, prefix: str) -> list[FileEntry]:
    """Temp files that killed writers left directly under ``prefix``."""
    return [
        FileEntry(_join(prefix, name), store.url(_join(prefix, name)), st.size, st.mtime_ns / 1e9)
        for name, st in sorted(store.temp_files(prefix).items())
    ]


def walk_files(store: Store, prefix: str) -> Iterator[FileEntry]:
    """Every visible and temp file at and below ``prefix`` (symlinked folders skipped)."""
    yield from visible_files(store, prefix)
    yield from temp_entries(store, prefix)
    for folder in sorted(store.folders(prefix)):
        yield from walk_files(store, _join(prefix, folder))


def set_ids(store: Store) -> list[str]:
    """The params-set folders of a cache, sorted."""
    found = []
    for name in store.folders(""):
        if _SET_ID.fullmatch(name) and (
            store.exists(SetPaths(name).params)
            or store.exists(SetPaths(name).old_params)
            or "chunks" in store.folders(name)
        ):
            found.append(name)
    return sorted(found)


def read_params(store: Store, set_id: str) -> tuple[object, str | None, str | None]:
    """``(params, cache_version, error)`` from ``params.json``; ``error`` says what failed.

    The params are their JSON description (values JSON cannot hold are reprs).
    """
    paths = SetPaths(set_id)
    data = store.read(paths.params)
    if data is None:
        if store.exists(paths.old_params):
            return (
                None,
                None,
                (
                    f"params of an older swarm-memo ({OLD_PARAMS_FILE}, a pickle: not loaded, "
                    "inspection never runs code)"
                ),
            )
        return None, None, f"{PARAMS_FILE} is missing"
    try:
        description = json.loads(data)
        params, version = description["params"], description["cache_version"]
    except (ValueError, KeyError, TypeError) as exc:
        return None, None, f"{PARAMS_FILE} is not a params description: {exc!r}"
    return params, str(version), None


def chunk_files(store: Store, set_id: str) -> list[FileEntry]:
    """The chunk files of a params set, sorted by name."""
    return visible_files(store, SetPaths(set_id).chunks, CHUNK_SUFFIX)


def peek_meta(store: Store, entry: FileEntry) -> ChunkMeta:
    """The meta of a chunk file, its header and size checked (not its checksum).

    Raises
    ------
    CorruptChunkError
        Bad magic, truncated, unreadable meta, or the file vanished meanwhile.
    UnreadableChunkError
        A format this swarm-memo does not know.
    """
    try:
        return codec_peek_meta(functools.partial(store.read_prefix, entry.key), entry.size)
    except FileNotFoundError as exc:
        raise CorruptChunkError(str(exc)) from exc


@dataclass
class ChunkFacts:
    """The chunk files of one params set with their metas (or why each is unreadable)."""

    files: list[FileEntry]
    metas: list[ChunkMeta] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def read(cls, store: Store, set_id: str) -> ChunkFacts:
        facts = cls(chunk_files(store, set_id))
        for entry in facts.files:
            try:
                facts.metas.append(peek_meta(store, entry))
            except (CorruptChunkError, UnreadableChunkError) as exc:
                facts.bad.append((entry.path, str(exc)))
        return facts

    def points(self) -> tuple[int, bool]:
        """``(distinct points, exact)``: see :mod:`swarm_memo.cache.meta_points`."""
        counter = PointCounter()
        for meta in self.metas:
            counter.add(meta)
        return counter.total(), counter.exact


@dataclass
class SetSummary:
    """One params set of a cache: what ``swarm-memo ls`` prints."""

    set_id: str
    path: str
    params: object
    cache_version: str | None
    params_error: str | None
    chunks: int
    points: int
    points_exact: bool
    unreadable_chunks: int
    bytes: int
    last_written: float | None
    params_mtime: float | None

    @property
    def short(self) -> str:
        return self.set_id[:SHORT_DIGEST]

    @property
    def last_activity(self) -> float:
        """Newest chunk mtime, or when the set was created if it has no chunk yet."""
        if self.last_written is not None:
            return self.last_written
        return self.params_mtime if self.params_mtime is not None else 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "digest": self.set_id,
            "short": self.short,
            "path": self.path,
            "params": to_jsonable(self.params),
            "params_repr": short_repr(self.params, 1000),
            "params_error": self.params_error,
            "cache_version": self.cache_version,
            "chunks": self.chunks,
            "points": self.points,
            "points_exact": self.points_exact,
            "unreadable_chunks": self.unreadable_chunks,
            "bytes": self.bytes,
            "last_written": iso_time(self.last_written),
            "last_written_ts": self.last_written,
        }


def summarize_set(store: Store, set_id: str, facts: ChunkFacts | None = None) -> SetSummary:
    """Counts of one params set, from ``params.json`` and the chunk files' metas."""
    params, version, error = read_params(store, set_id)
    facts = facts or ChunkFacts.read(store, set_id)
    points, exact = facts.points()
    params_stat = store.stat(SetPaths(set_id).params)
    return SetSummary(
        set_id=set_id,
        path=store.url(set_id),
        params=params,
        cache_version=version,
        params_error=error,
        chunks=len(facts.files),
        points=points,
        points_exact=exact,
        unreadable_chunks=len(facts.bad),
        bytes=sum(f.size for f in walk_files(store, set_id)),
        last_written=max((c.mtime for c in facts.files), default=None),
        params_mtime=None if params_stat is None else params_stat.mtime_ns / 1e9,
    )


def list_sets(store: Store) -> list[SetSummary]:
    """Every params set of the cache, most recently written first."""
    summaries = [summarize_set(store, s) for s in set_ids(store)]
    summaries.sort(key=lambda s: s.set_id)
    summaries.sort(key=lambda s: s.last_activity, reverse=True)
    return summaries


def resolve_set(store: Store, digest: str) -> str:
    """The id of the params set that starts with ``digest`` (a unique prefix)."""
    prefix = digest.strip().lower()
    if not prefix:
        raise InspectError("empty digest: give a params set digest as printed by `ls`")
    names = set_ids(store)
    if prefix in names:
        return prefix
    matches = [n for n in names if n.startswith(prefix)]
    if not matches:
        raise InspectError(f"no params set matches digest {digest!r} in {store.url('')!r}")
    if len(matches) > 1:
        shown = ", ".join(m[: max(len(prefix) + 4, SHORT_DIGEST)] for m in matches[:5])
        more = f" and {len(matches) - 5} more" if len(matches) > 5 else ""
        raise InspectError(
            f"digest {digest!r} is ambiguous: it matches {len(matches)} params sets "
            f"({shown}{more}); give more characters"
        )
    return matches[0]


# --------------------------------------------------------------------------- info


@dataclass
class AxisValues:
    """The distinct values stored on one axis of a params set."""

    name: str
    values: list[object]

    @property
    def count(self) -> int:
        return len(self.values)

    def preview(self, head: int = 8, tail: int = 3, width: int = 30) -> str:
        """The values on one line, the middle elided when there are many."""
        shown = [short_repr(v, width) for v in self.values]
        if len(shown) > head + tail + 1:
            shown = [*shown[:head], "...", *shown[-tail:]]
        return ", ".join(shown)


@dataclass
class SetDetail:
    """Everything ``swarm-memo info`` prints about one params set."""

    summary: SetSummary
    axes: list[AxisValues]
    axis_order: tuple[str, ...] | None
    keys_recorded: bool
    """False when some readable chunk file's meta does not record its chunk key."""
    bad_chunks: list[tuple[str, str]] = field(default_factory=list)
    compute_seconds: float = 0.0
    """Total compute time stored with the chunk files (those that record one)."""
    hosts: dict[str, int] = field(default_factory=dict)
    """Chunk files written per host."""

    def to_json(self) -> dict[str, object]:
        out = self.summary.to_json()
        out["axis_order"] = list(self.axis_order) if self.axis_order is not None else None
        out["axes"] = {
            a.name: {"count": a.count, "values": to_jsonable(a.values)} for a in self.axes
        }
        out["keys_recorded"] = self.keys_recorded
        out["compute_seconds"] = self.compute_seconds
        out["hosts"] = self.hosts
        out["bad_chunks"] = [{"path": p, "reason": r} for p, r in self.bad_chunks]
        return out


def describe_set(store: Store, digest: str) -> SetDetail:
    """The params and, per axis, the values stored (from the chunk files' metas)."""
    set_id = resolve_set(store, digest)
    facts = ChunkFacts.read(store, set_id)
    summary = summarize_set(store, set_id, facts)
    per_axis = axis_values(facts.metas)
    axes = [AxisValues(name, sort_values(values)) for name, values in sorted(per_axis.items())]
    orders = [m.axes for m in facts.metas if m.axes]
    recorded = all(m.key is not None for m in facts.metas)
    seconds, hosts = compute_facts(facts.metas)
    order = orders[-1] if orders else None
    return SetDetail(summary, axes, order, recorded, facts.bad, seconds, hosts)


def compute_facts(metas: list[ChunkMeta]) -> tuple[float, dict[str, int]]:
    """Total compute seconds and chunk files per host, from the chunks' provenance."""
    seconds = 0.0
    hosts: dict[str, int] = {}
    for meta in metas:
        seconds += meta.compute_seconds or 0.0
        if meta.host is not None:
            hosts[meta.host] = hosts.get(meta.host, 0) + 1
    return seconds, hosts
