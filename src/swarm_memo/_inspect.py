"""Read-only inspection of a cache directory: its params sets, chunk files and axes.

Everything here works on the files alone, never on a :class:`SwarmMemo`: it lists the
params sets of a cache root and describes one. Checking every chunk file and cleaning up
live in :mod:`swarm_memo._maintenance`, the formatting helpers in
:mod:`swarm_memo._textfmt`. The command-line tool (``swarm_memo.cli``) is a thin layer
that formats what these functions return, so all of it is testable without click.

Nothing here modifies a cache.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._cache import CHUNK_SUFFIX, PARAMS_FILE, params_set_id
from ._codec import HEADER_SIZE, MAGIC, ChunkRecord, checksum_of, decode_chunk
from ._hashing import DIGEST_SIZE, encode
from ._index import IndexLog, IndexRecord
from ._store import LocalStore
from ._textfmt import InspectError, iso_time, short_repr, sort_values, to_jsonable
from .errors import CorruptChunkError

SHORT_DIGEST = 12
# A set folder is named by a hex digest; requiring it keeps gc away from foreign folders.
_SET_ID = re.compile(r"[0-9a-f]{16,128}")


@dataclass(frozen=True)
class FileEntry:
    """A file found in the cache, with its size and modification time."""

    path: Path
    size: int
    mtime: float

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"path": str(self.path), "bytes": self.size}
        out["mtime"] = iso_time(self.mtime)
        if now is not None:
            out["age_seconds"] = round(now - self.mtime, 3)
        return out


@dataclass
class SetSummary:
    """One params set of a cache: what ``swarm-memo ls`` prints."""

    set_id: str
    path: Path
    params: Any
    cache_version: str | None
    params_error: str | None
    chunks: int
    points: int
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
        if self.params_mtime is not None:
            return self.params_mtime
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.set_id,
            "short": self.short,
            "path": str(self.path),
            "params": to_jsonable(self.params),
            "params_repr": short_repr(self.params, 1000),
            "params_error": self.params_error,
            "cache_version": self.cache_version,
            "chunks": self.chunks,
            "points": self.points,
            "unreadable_chunks": self.unreadable_chunks,
            "bytes": self.bytes,
            "last_written": iso_time(self.last_written),
            "last_written_ts": self.last_written,
        }


def check_root(root: str | os.PathLike[str]) -> Path:
    """The cache root as a path; :class:`InspectError` if it is not an existing folder."""
    path = Path(root).expanduser()
    if not path.exists():
        raise InspectError(f"cache root {str(path)!r} does not exist")
    if not path.is_dir():
        raise InspectError(f"cache root {str(path)!r} is not a directory")
    return path


def set_dirs(root: Path) -> list[Path]:
    """The params-set folders of a cache root, sorted by name."""
    found = []
    with os.scandir(root) as entries:
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False) or not _SET_ID.fullmatch(entry.name):
                continue
            p = Path(entry.path)
            if (p / PARAMS_FILE).is_file() or (p / "chunks").is_dir():
                found.append(p)
    return sorted(found)


def set_id_of(params: Any, cache_version: Any) -> str:
    """The folder name the library gives a (params, cache_version)."""
    return params_set_id(encode(params, "params"), cache_version)


def read_params(set_dir: Path) -> tuple[Any, str | None, str | None]:
    """``(params, cache_version, error)`` from ``params.pkl``; ``error`` says what failed."""
    try:
        data = (set_dir / PARAMS_FILE).read_bytes()
    except FileNotFoundError:
        return None, None, f"{PARAMS_FILE} is missing"
    except OSError as exc:
        return None, None, f"{PARAMS_FILE} cannot be read: {exc}"
    try:
        payload = pickle.loads(data)
        params, version = payload["params"], payload["cache_version"]
    except Exception as exc:  # damaged, or a class of the params cannot be imported here
        return None, None, f"{PARAMS_FILE} cannot be unpickled: {exc!r}"
    return params, version, None


def visible_files(base: Path, folder: str, suffix: str) -> list[FileEntry]:
    """Visible files of ``base/folder`` ending in ``suffix`` (what the library lists)."""
    out = []
    for name in sorted(LocalStore(base).names(folder, suffix)):
        path = base / folder / name
        with contextlib.suppress(OSError):
            st = path.stat()
            out.append(FileEntry(path, st.st_size, st.st_mtime))
    return out


def chunk_files(set_dir: Path) -> list[FileEntry]:
    """The chunk files of a params set, sorted by name."""
    return visible_files(set_dir, "chunks", CHUNK_SUFFIX)


def walk_files(base: Path) -> Iterator[FileEntry]:
    """Every file below ``base``, hidden ones included (symlinks not followed)."""
    for dirpath, _dirs, files in os.walk(base):
        for name in files:
            full = Path(dirpath) / name
            with contextlib.suppress(OSError):
                st = full.lstat()
                yield FileEntry(full, st.st_size, st.st_mtime)


def tree_bytes(base: Path) -> int:
    """Bytes of every file below ``base``, hidden ones included."""
    return sum(f.size for f in walk_files(base))


def index_records(set_dir: Path) -> dict[str, IndexRecord]:
    """Every index record of a params set (read-only: segments are never folded here)."""
    return IndexLog(LocalStore(set_dir), "index").read(fold=False)


def _index_points(records: dict[str, IndexRecord], chunk: FileEntry) -> int | None:
    """Points of a chunk file from its index record, if the record describes that file."""
    record = records.get(chunk.path.name[: -len(CHUNK_SUFFIX)])
    if record is None:
        return None
    try:
        with open(chunk.path, "rb") as fh:
            header = fh.read(HEADER_SIZE)
    except OSError:
        return None
    if not header.startswith(MAGIC) or len(header) < HEADER_SIZE:
        return None
    if record.checksum != checksum_of(header):  # the chunk file was replaced since
        return None
    if record.digests is not None:
        return len(record.digests) // DIGEST_SIZE
    return math.prod(len(values) for values in record.bins)


def read_chunk(path: Path) -> ChunkRecord:
    """Decode one chunk file; :class:`CorruptChunkError` if it cannot be read or decoded."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorruptChunkError(f"cannot be read: {exc}") from exc
    return decode_chunk(data)


def summarize_set(set_dir: Path) -> SetSummary:
    """Counts of one params set; points come from the index, else from the chunk file."""
    params, version, error = read_params(set_dir)
    chunks = chunk_files(set_dir)
    points, unreadable = 0, 0
    records = index_records(set_dir)
    for chunk in chunks:
        n = _index_points(records, chunk)
        if n is None:
            try:
                n = len(read_chunk(chunk.path).outputs)
            except CorruptChunkError:
                unreadable += 1
                n = 0
        points += n
    try:
        params_mtime: float | None = (set_dir / PARAMS_FILE).stat().st_mtime
    except OSError:
        params_mtime = None
    return SetSummary(
        set_id=set_dir.name,
        path=set_dir,
        params=params,
        cache_version=version,
        params_error=error,
        chunks=len(chunks),
        points=points,
        unreadable_chunks=unreadable,
        bytes=tree_bytes(set_dir),
        last_written=max((c.mtime for c in chunks), default=None),
        params_mtime=params_mtime,
    )


def list_sets(root: str | os.PathLike[str]) -> list[SetSummary]:
    """Every params set of the cache, most recently written first."""
    base = check_root(root)
    summaries = [summarize_set(d) for d in set_dirs(base)]
    summaries.sort(key=lambda s: s.set_id)
    summaries.sort(key=lambda s: s.last_activity, reverse=True)
    return summaries


def resolve_set(root: str | os.PathLike[str], digest: str) -> Path:
    """The folder of the params set whose id starts with ``digest`` (a unique prefix)."""
    base = check_root(root)
    prefix = digest.strip().lower()
    if not prefix:
        raise InspectError("empty digest: give a params set digest as printed by `ls`")
    names = [d.name for d in set_dirs(base)]
    if prefix in names:
        return base / prefix
    matches = [n for n in names if n.startswith(prefix)]
    if not matches:
        raise InspectError(f"no params set matches digest {digest!r} in {str(base)!r}")
    if len(matches) > 1:
        shown = ", ".join(m[: max(len(prefix) + 4, SHORT_DIGEST)] for m in matches[:5])
        more = f" and {len(matches) - 5} more" if len(matches) > 5 else ""
        raise InspectError(
            f"digest {digest!r} is ambiguous: it matches {len(matches)} params sets "
            f"({shown}{more}); give more characters"
        )
    return base / matches[0]


# --------------------------------------------------------------------------- info


@dataclass
class AxisValues:
    """The distinct values stored on one axis of a params set."""

    name: str
    values: list[Any]

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
    exact_points: int
    bad_chunks: list[tuple[Path, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = self.summary.to_json()
        out["points"] = self.exact_points
        out["unreadable_chunks"] = len(self.bad_chunks)
        out["axis_order"] = list(self.axis_order) if self.axis_order is not None else None
        out["axes"] = {
            a.name: {"count": a.count, "values": to_jsonable(a.values)} for a in self.axes
        }
        out["bad_chunks"] = [{"path": str(p), "reason": r} for p, r in self.bad_chunks]
        return out


def describe_set(root: str | os.PathLike[str], digest: str) -> SetDetail:
    """The params and, per axis, the values stored (decodes every chunk file of the set)."""
    set_dir = resolve_set(root, digest)
    summary = summarize_set(set_dir)
    per_axis: dict[str, dict[bytes, Any]] = {}
    axis_order: tuple[str, ...] | None = None
    points = 0
    bad: list[tuple[Path, str]] = []
    for chunk in chunk_files(set_dir):
        try:
            record = read_chunk(chunk.path)
        except CorruptChunkError as exc:
            bad.append((chunk.path, str(exc)))
            continue
        points += len(record.outputs)
        axis_order = tuple(record.axes)
        for axis, values in record.chunk_key:
            seen = per_axis.setdefault(axis, {})
            for value in values:
                try:
                    key = encode(value)
                except Exception:
                    key = repr(value).encode()
                seen.setdefault(key, value)
    axes = [AxisValues(name, sort_values(seen.values())) for name, seen in sorted(per_axis.items())]
    return SetDetail(summary, axes, axis_order, points, bad)
