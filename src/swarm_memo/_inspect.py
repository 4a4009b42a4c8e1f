"""Read-only inspection and garbage collection of a cache directory (the CLI's logic).

Everything here works on the files alone, never on a :class:`SwarmMemo`: it lists the
params sets of a cache root, describes one, verifies every chunk file and plans (then
performs) a clean-up. The command-line tool (``swarm_memo.cli``) is a thin layer that
formats what these functions return, so all of it is testable without click.

Nothing here modifies a cache except :func:`run_gc`; in particular :func:`verify_cache`
reports damaged files but does not move them to the quarantine (a run does that).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import enum
import math
import os
import pathlib
import pickle
import re
import reprlib
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._cache import CHUNK_SUFFIX, INDEX_SUFFIX, PARAMS_FILE, QUARANTINE, params_set_id
from ._codec import HEADER_SIZE, MAGIC, ChunkRecord, checksum_of, decode_chunk
from ._hashing import encode
from ._index import IndexRecord
from ._store import TEMP_GRACE_SECONDS
from .errors import CorruptChunkError

SHORT_DIGEST = 12
# A set folder is named by a hex digest; requiring it keeps gc away from foreign folders.
_SET_ID = re.compile(r"[0-9a-f]{16,128}")
# ``.<name>.<uuid12>.<pid>.tmp``: what ``_store.atomic_write`` leaves when its writer dies.
_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{12}\.[0-9]+\.tmp")
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([smhdw])\s*", re.IGNORECASE)
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


class InspectError(Exception):
    """A user error: missing cache root, unknown or ambiguous digest, bad duration."""


# --------------------------------------------------------------------------- formatting


def _make_repr() -> reprlib.Repr:
    r = reprlib.Repr()
    r.maxlevel = 4
    r.maxdict = r.maxlist = r.maxtuple = r.maxset = r.maxfrozenset = 12
    r.maxstring = 60
    r.maxother = 60
    r.maxlong = 40
    return r


_REPR = _make_repr()


def abbreviate(text: str, width: int = 60) -> str:
    """``text`` on one line, cut to ``width`` characters with a trailing ``...``."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    return text[: max(width - 3, 1)] + "..."


def short_repr(value: Any, width: int = 60) -> str:
    """A one-line repr of ``value`` of at most ``width`` characters (never raises)."""
    try:
        text = _REPR.repr(value)
    except Exception:  # a broken __repr__ must not break a listing
        text = f"<{type(value).__name__}>"
    return abbreviate(text, width)


def format_bytes(n: int) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def iso_time(timestamp: float | None) -> str | None:
    """A local ISO 8601 time with its UTC offset, to the second; ``None`` stays ``None``."""
    if timestamp is None:
        return None
    moment = _dt.datetime.fromtimestamp(timestamp, tz=_dt.timezone.utc).astimezone()
    return moment.isoformat(timespec="seconds")


def format_age(seconds: float) -> str:
    """``5400`` -> ``'1.5h'``."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{max(seconds, 0.0):.0f}s"


def parse_duration(text: str) -> float:
    """``'30d'`` -> seconds. Units: ``s``, ``m``, ``h``, ``d`` (and ``w``); a unit is required."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise InspectError(
            f"bad duration {text!r}: use a number and a unit s, m, h or d (e.g. 30d, 12h, 90m)"
        )
    return float(match.group(1)) * _UNITS[match.group(2).lower()]


def to_jsonable(value: Any, _depth: int = 0) -> Any:
    """Convert params and axis values to JSON types; anything unknown becomes its repr.

    Tuples and sets become lists (sets sorted when possible), paths strings, numpy values
    their ``tolist()``, dataclasses dicts, non-finite floats the strings ``"nan"``,
    ``"inf"`` and ``"-inf"``. Never raises.
    """
    try:
        return _jsonable(value, _depth)
    except Exception:
        return short_repr(value, 200)


def _jsonable(value: Any, depth: int) -> Any:
    if depth > 40:
        return short_repr(value, 200)
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else repr(float(value))
    if isinstance(value, dict):
        return {
            (k if isinstance(k, str) else short_repr(k, 200)): _jsonable(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        return [_jsonable(v, depth + 1) for v in sort_values(value)]
    if isinstance(value, pathlib.PurePath):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return repr(bytes(value))
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return {f.name: _jsonable(getattr(value, f.name), depth + 1) for f in fields}
    if type(value).__module__.split(".")[0] == "numpy" and hasattr(value, "tolist"):
        if getattr(value, "size", 1) > 10_000:
            return short_repr(value, 200)
        return _jsonable(value.tolist(), depth + 1)
    return short_repr(value, 200)


def sort_values(values: Iterable[Any]) -> list[Any]:
    """Values sorted naturally when they compare, else by (type name, repr)."""
    items = list(values)
    try:
        return sorted(items)
    except Exception:
        return sorted(items, key=lambda v: (type(v).__name__, short_repr(v, 1000)))


# --------------------------------------------------------------------------- reading a cache


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


def _files(folder: Path, suffix: str) -> list[FileEntry]:
    """Visible files of ``folder`` ending in ``suffix`` (what the library lists)."""
    out = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for e in entries:
        if e.name.startswith(".") or not e.name.endswith(suffix):
            continue
        with contextlib.suppress(OSError):
            if e.is_file():
                st = e.stat()
                out.append(FileEntry(Path(e.path), st.st_size, st.st_mtime))
    return sorted(out, key=lambda f: f.path.name)


def chunk_files(set_dir: Path) -> list[FileEntry]:
    """The chunk files of a params set, sorted by name."""
    return _files(set_dir / "chunks", CHUNK_SUFFIX)


def _walk(base: Path) -> Iterator[FileEntry]:
    for dirpath, _dirs, files in os.walk(base):
        for name in files:
            full = Path(dirpath) / name
            with contextlib.suppress(OSError):
                st = full.lstat()
                yield FileEntry(full, st.st_size, st.st_mtime)


def tree_bytes(base: Path) -> int:
    """Bytes of every file below ``base``, hidden ones included."""
    return sum(f.size for f in _walk(base))


def _index_points(set_dir: Path, chunk: FileEntry) -> int | None:
    """Points of a chunk file from its index record, if the record describes that file."""
    name = chunk.path.name[: -len(CHUNK_SUFFIX)]
    try:
        data = (set_dir / "index" / f"{name}{INDEX_SUFFIX}").read_bytes()
        with open(chunk.path, "rb") as fh:
            header = fh.read(HEADER_SIZE)
    except OSError:
        return None
    record = IndexRecord.from_bytes(data)
    if record is None or not header.startswith(MAGIC) or len(header) < HEADER_SIZE:
        return None
    if record.checksum != checksum_of(header):  # the chunk file was replaced since
        return None
    if record.digests is not None:
        return len(record.digests) // 16
    return math.prod(len(e) for e in record.encodings)


def _decode(path: Path) -> ChunkRecord:
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
    for chunk in chunks:
        n = _index_points(set_dir, chunk)
        if n is None:
            try:
                n = len(_decode(chunk.path).outputs)
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
            record = _decode(chunk.path)
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


# --------------------------------------------------------------------------- verify


@dataclass
class Problem:
    """A file that is wrong, and why."""

    path: Path
    reason: str
    set_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "reason": self.reason, "set": self.set_id}


@dataclass
class VerifyReport:
    """What ``swarm-memo verify`` found. ``ok`` is false iff there is a problem."""

    root: Path
    sets: int = 0
    chunks_checked: int = 0
    chunks_ok: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    quarantined: list[FileEntry] = field(default_factory=list)
    temp_files: list[FileEntry] = field(default_factory=list)
    checked_at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "ok": self.ok,
            "sets": self.sets,
            "chunks_checked": self.chunks_checked,
            "chunks_ok": self.chunks_ok,
            "problems": [p.to_json() for p in self.problems],
            "notes": [p.to_json() for p in self.notes],
            "quarantined": [f.to_json() for f in self.quarantined],
            "temp_files": [f.to_json(self.checked_at) for f in self.temp_files],
        }


def quarantined_files(root: Path) -> list[FileEntry]:
    """Files moved aside to ``.quarantine`` (by runs that found them damaged)."""
    return sorted(_walk(root / QUARANTINE), key=lambda f: f.path)


def temp_files(root: Path, *, exclude: Sequence[Path] = ()) -> list[FileEntry]:
    """Temp files left by killed writers anywhere in the cache (not in the quarantine)."""
    skip = {root / QUARANTINE, *exclude}
    found = []
    for dirpath, dirs, files in os.walk(root):
        here = Path(dirpath)
        dirs[:] = [d for d in dirs if here / d not in skip]
        for name in files:
            if _TEMP_NAME.fullmatch(name):
                with contextlib.suppress(OSError):
                    st = (here / name).lstat()
                    found.append(FileEntry(here / name, st.st_size, st.st_mtime))
    return sorted(found, key=lambda f: f.path)


def _verify_set(set_dir: Path, report: VerifyReport) -> None:
    set_id = set_dir.name
    params, version, error = read_params(set_dir)
    if error is not None:
        report.problems.append(Problem(set_dir / PARAMS_FILE, error, set_id))
        expected: bytes | None = None
    else:
        try:
            expected = encode(params, "params")
            if set_id_of(params, version) != set_id:
                report.problems.append(
                    Problem(
                        set_dir / PARAMS_FILE,
                        "params and cache_version in params.pkl do not match the folder name",
                        set_id,
                    )
                )
        except Exception as exc:
            report.problems.append(
                Problem(set_dir / PARAMS_FILE, f"params cannot be encoded: {exc}", set_id)
            )
            expected = None
    for chunk in chunk_files(set_dir):
        report.chunks_checked += 1
        try:
            record = _decode(chunk.path)
            if expected is not None:
                same = record.cache_version == version and encode(record.params) == expected
                where = "params.pkl"
            else:  # no usable params.pkl: check the chunk against the folder name
                same = set_id_of(record.params, record.cache_version) == set_id
                where = "the params set (folder name)"
            if not same:
                raise CorruptChunkError(f"its params or cache_version differ from {where}")
        except CorruptChunkError as exc:
            report.problems.append(Problem(chunk.path, str(exc), set_id))
            continue
        except Exception as exc:  # e.g. params that no longer encode
            report.problems.append(Problem(chunk.path, f"cannot be checked: {exc!r}", set_id))
            continue
        report.chunks_ok += 1
    stored = {c.path.name[: -len(CHUNK_SUFFIX)] for c in chunk_files(set_dir)}
    for idx in _files(set_dir / "index", INDEX_SUFFIX):
        if idx.path.name[: -len(INDEX_SUFFIX)] not in stored:
            report.notes.append(
                Problem(idx.path, "index record without a chunk file (ignored by runs)", set_id)
            )


def verify_cache(root: str | os.PathLike[str]) -> VerifyReport:
    """Check every chunk file: readable, magic, format version, checksum, decodes, params."""
    base = check_root(root)
    report = VerifyReport(base)
    for set_dir in set_dirs(base):
        report.sets += 1
        _verify_set(set_dir, report)
    report.quarantined = quarantined_files(base)
    report.temp_files = temp_files(base)
    return report


# --------------------------------------------------------------------------- gc


@dataclass
class GcPlan:
    """What ``swarm-memo gc`` removes: whole params sets, stale temp files, the quarantine."""

    root: Path
    sets: list[SetSummary] = field(default_factory=list)
    temp_files: list[FileEntry] = field(default_factory=list)
    quarantine: list[FileEntry] = field(default_factory=list)
    quarantine_dir: Path | None = None
    planned_at: float = field(default_factory=time.time)

    @property
    def bytes(self) -> int:
        return (
            sum(s.bytes for s in self.sets)
            + sum(f.size for f in self.temp_files)
            + sum(f.size for f in self.quarantine)
        )

    @property
    def empty(self) -> bool:
        return not (self.sets or self.temp_files or self.quarantine_dir)

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "sets": [s.to_json() for s in self.sets],
            "temp_files": [f.to_json(self.planned_at) for f in self.temp_files],
            "quarantine": (
                None
                if self.quarantine_dir is None
                else {
                    "path": str(self.quarantine_dir),
                    "files": len(self.quarantine),
                    "bytes": sum(f.size for f in self.quarantine),
                }
            ),
            "bytes": self.bytes,
        }


@dataclass
class GcResult:
    """What :func:`run_gc` removed, and what it could not."""

    removed_bytes: int = 0
    removed_files: int = 0
    errors: list[str] = field(default_factory=list)


def plan_gc(
    root: str | os.PathLike[str],
    *,
    params: Sequence[str] = (),
    older_than: float | None = None,
    quarantine: bool = False,
    now: float | None = None,
    temp_grace: float = TEMP_GRACE_SECONDS,
) -> GcPlan:
    """Decide what to remove, removing nothing.

    - ``params``: digests (unique prefixes) of params sets to remove;
    - ``older_than``: seconds; remove the sets whose newest chunk is older. With
      ``params`` too, only those of the given sets that are that old;
    - temp files older than ``temp_grace`` are always removed (outside removed sets);
    - ``quarantine``: also remove the ``.quarantine`` folder.
    """
    base = check_root(root)
    now = time.time() if now is None else now
    if older_than is not None and older_than < 0:
        raise InspectError("the age given to --older-than must not be negative")
    chosen = [resolve_set(base, d) for d in params]
    candidates = sorted(set(chosen)) if params else set_dirs(base)
    plan = GcPlan(base, planned_at=now)
    if params or older_than is not None:
        for set_dir in candidates:
            summary = summarize_set(set_dir)
            if older_than is None or summary.last_activity < now - older_than:
                plan.sets.append(summary)
    removed_dirs = [s.path for s in plan.sets]
    plan.temp_files = [
        f for f in temp_files(base, exclude=removed_dirs) if f.mtime < now - temp_grace
    ]
    if quarantine and (base / QUARANTINE).is_dir():
        plan.quarantine_dir = base / QUARANTINE
        plan.quarantine = quarantined_files(base)
    return plan


def _remove_tree(base: Path, result: GcResult) -> None:
    for dirpath, dirs, files in os.walk(base, topdown=False):
        here = Path(dirpath)
        for name in files:
            path = here / name
            try:
                size = path.lstat().st_size
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                result.errors.append(f"could not remove {path}: {exc}")
                continue
            result.removed_bytes += size
            result.removed_files += 1
        for name in dirs:
            with contextlib.suppress(OSError):  # symlinked dirs, or someone wrote meanwhile
                (here / name).rmdir()
    try:
        base.rmdir()
    except FileNotFoundError:
        pass
    except OSError as exc:
        result.errors.append(f"could not remove folder {base}: {exc}")


def run_gc(plan: GcPlan) -> GcResult:
    """Remove what ``plan`` lists; errors (a file in use, permissions) are collected."""
    result = GcResult()
    for summary in plan.sets:
        _remove_tree(summary.path, result)
    for entry in plan.temp_files:
        try:
            entry.path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            result.errors.append(f"could not remove {entry.path}: {exc}")
            continue
        result.removed_bytes += entry.size
        result.removed_files += 1
    if plan.quarantine_dir is not None:
        _remove_tree(plan.quarantine_dir, result)
    return result
