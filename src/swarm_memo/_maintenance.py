"""Checking and cleaning a cache directory: ``swarm-memo verify`` and ``swarm-memo gc``.

Works on the files alone, like :mod:`swarm_memo._inspect` (which it reads the cache
with). :func:`verify_cache` reports damaged files but does not move them to the
quarantine (a run does that); nothing here modifies a cache except :func:`run_gc`.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._cache import CHUNK_SUFFIX, PARAMS_FILE, QUARANTINE
from ._hashing import encode
from ._inspect import (
    FileEntry,
    SetSummary,
    check_root,
    chunk_files,
    index_records,
    read_chunk,
    read_params,
    resolve_set,
    set_dirs,
    set_id_of,
    summarize_set,
    walk_files,
)
from ._store import TEMP_GRACE_SECONDS, TEMP_SUFFIX
from ._textfmt import InspectError
from .errors import CorruptChunkError

# ``.<name>.<uuid12>.<pid>.tmp``: what ``_store.atomic_write`` leaves when its writer dies.
_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{12}\.[0-9]+" + re.escape(TEMP_SUFFIX))

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
    return sorted(walk_files(root / QUARANTINE), key=lambda f: f.path)


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


def _params_encoding(set_dir: Path, report: VerifyReport) -> tuple[bytes | None, Any]:
    """``(encoding of the params, cache_version)`` from ``params.pkl``; reports problems.

    The encoding is ``None`` when ``params.pkl`` is unusable: chunks are then checked
    against the folder name.
    """
    set_id = set_dir.name
    params, version, error = read_params(set_dir)
    if error is not None:
        report.problems.append(Problem(set_dir / PARAMS_FILE, error, set_id))
        return None, version
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
        return None, version
    return expected, version


def _chunk_problem(path: Path, set_id: str, expected: bytes | None, version: Any) -> str | None:
    """Why the chunk file at ``path`` is wrong, or ``None`` when it is fine."""
    try:
        record = read_chunk(path)
        if expected is not None:
            same = record.cache_version == version and encode(record.params) == expected
            where = "params.pkl"
        else:  # no usable params.pkl: check the chunk against the folder name
            same = set_id_of(record.params, record.cache_version) == set_id
            where = "the params set (folder name)"
        if not same:
            raise CorruptChunkError(f"its params or cache_version differ from {where}")
    except CorruptChunkError as exc:
        return str(exc)
    except Exception as exc:  # e.g. params that no longer encode
        return f"cannot be checked: {exc!r}"
    return None


def _verify_set(set_dir: Path, report: VerifyReport) -> None:
    set_id = set_dir.name
    expected, version = _params_encoding(set_dir, report)
    for chunk in chunk_files(set_dir):
        report.chunks_checked += 1
        reason = _chunk_problem(chunk.path, set_id, expected, version)
        if reason is not None:
            report.problems.append(Problem(chunk.path, reason, set_id))
        else:
            report.chunks_ok += 1
    stored = {c.path.name[: -len(CHUNK_SUFFIX)] for c in chunk_files(set_dir)}
    for name in sorted(set(index_records(set_dir)) - stored):
        report.notes.append(
            Problem(
                set_dir / "index", f"index record of {name} without a chunk file (ignored)", set_id
            )
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


def _remove_file(path: Path, size: int | None, result: GcResult) -> None:
    """Unlink ``path`` and count ``size`` (its ``lstat`` size when ``None``) as freed."""
    try:
        if size is None:
            size = path.lstat().st_size
        path.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        result.errors.append(f"could not remove {path}: {exc}")
        return
    result.removed_bytes += size
    result.removed_files += 1


def _remove_tree(base: Path, result: GcResult) -> None:
    for dirpath, dirs, files in os.walk(base, topdown=False):
        here = Path(dirpath)
        for name in files:
            _remove_file(here / name, None, result)
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
        _remove_file(entry.path, entry.size, result)
    if plan.quarantine_dir is not None:
        _remove_tree(plan.quarantine_dir, result)
    return result
