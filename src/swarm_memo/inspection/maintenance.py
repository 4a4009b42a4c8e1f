"""Checking and cleaning a cache: ``swarm-memo verify`` and ``swarm-memo gc``.

Works on the files alone, through the cache's store, like :mod:`swarm_memo.cache.listing`
(which it reads the cache with). :func:`verify_cache` reports damaged files but neither
moves them to the quarantine (a run does that) nor unpickles anything: it checks each
chunk file's header, size, checksum and JSON meta. Nothing here modifies a cache except
:func:`run_gc`, which deletes through the store: it never follows a symlink out of the
cache root (the store refuses, and the refusal is reported).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from swarm_memo.cache.codec import read_meta
from swarm_memo.cache.layout import CHUNK_SUFFIX, PARAMS_FILE, QUARANTINE, SetPaths
from swarm_memo.cache.listing import (
    FileEntry,
    SetSummary,
    chunk_files,
    read_params,
    resolve_set,
    set_ids,
    summarize_set,
    temp_entries,
    walk_files,
)
from swarm_memo.errors import CorruptChunkError, InspectError, UnreadableChunkError
from swarm_memo.inspection.sizecap import over_cap
from swarm_memo.stores.base import TEMP_GRACE_SECONDS, TEMP_NAME, Store

# --------------------------------------------------------------------------- verify


@dataclass
class Problem:
    """A file that is wrong (or worth a note), and why."""

    path: str
    reason: str
    set_id: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "reason": self.reason, "set": self.set_id}


@dataclass
class VerifyReport:
    """What ``swarm-memo verify`` found. ``ok`` is false iff there is a problem."""

    root: str
    quarantine_path: str
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

    def to_json(self) -> dict[str, object]:
        return {
            "root": self.root,
            "ok": self.ok,
            "sets": self.sets,
            "chunks_checked": self.chunks_checked,
            "chunks_ok": self.chunks_ok,
            "problems": [p.to_json() for p in self.problems],
            "notes": [p.to_json() for p in self.notes],
            "quarantined": [f.to_json() for f in self.quarantined],
            "temp_files": [f.to_json(self.checked_at) for f in self.temp_files],
        }


def quarantined_files(store: Store) -> list[FileEntry]:
    """Files moved aside to ``.quarantine`` (by runs that found them damaged)."""
    return sorted(walk_files(store, QUARANTINE), key=lambda f: f.key)


def all_temp_files(store: Store, *, exclude: Sequence[str] = ()) -> list[FileEntry]:
    """Temp files left by killed writers anywhere in the cache (not in the quarantine)."""
    found: list[FileEntry] = []
    pending = [""]
    while pending:
        prefix = pending.pop()
        found.extend(e for e in temp_entries(store, prefix) if TEMP_NAME.fullmatch(e.key_name))
        for folder in store.folders(prefix):
            key = f"{prefix}/{folder}" if prefix else folder
            if key not in exclude:
                pending.append(key)
    return sorted(found, key=lambda f: f.key)


def _chunk_problem(
    store: Store, entry: FileEntry, set_id: str, version: str | None
) -> tuple[str | None, str | None]:
    """``(problem, note)`` about one chunk file; both None when it is fine."""
    data = store.read(entry.key)
    if data is None:
        return None, "the file vanished while being checked"
    try:
        _header, meta = read_meta(data)
    except UnreadableChunkError as exc:
        return None, f"unreadable here (left in place): {exc}"
    except CorruptChunkError as exc:
        return str(exc), None
    if meta.set_id != set_id:
        return f"it belongs to params set {meta.set_id!r}, not to this folder", None
    written_as = meta.name  # absent from files written before names were recorded
    if written_as is not None and f"{written_as}{CHUNK_SUFFIX}" != entry.key_name:
        return (
            f"it was written as chunk file {written_as!r}, not under this name (a copy or "
            "a rename): its key is not its name's",
            None,
        )
    if version is not None and meta.cache_version != version:
        return (
            f"its cache_version {meta.cache_version!r} differs from {PARAMS_FILE} ({version!r})",
            None,
        )
    return None, None


def _verify_set(store: Store, set_id: str, report: VerifyReport) -> None:
    _params, version, error = read_params(store, set_id)
    if error is not None:
        target = report.notes if "missing" in error or "older" in error else report.problems
        target.append(Problem(store.url(SetPaths(set_id).params), error, set_id))
    for entry in chunk_files(store, set_id):
        report.chunks_checked += 1
        problem, note = _chunk_problem(store, entry, set_id, version)
        if problem is not None:
            report.problems.append(Problem(entry.path, problem, set_id))
            continue
        if note is not None:
            report.notes.append(Problem(entry.path, note, set_id))
        report.chunks_ok += 1


def verify_cache(store: Store) -> VerifyReport:
    """Check every chunk file: header, format, size, checksum, meta, params set."""
    report = VerifyReport(store.url(""), store.url(QUARANTINE))
    for set_id in set_ids(store):
        report.sets += 1
        _verify_set(store, set_id, report)
    report.quarantined = quarantined_files(store)
    report.temp_files = all_temp_files(store, exclude=[QUARANTINE])
    return report


# --------------------------------------------------------------------------- gc


@dataclass
class GcPlan:
    """What ``swarm-memo gc`` removes: whole params sets, stale temp files, the quarantine."""

    root: str
    sets: list[SetSummary] = field(default_factory=list)
    temp_files: list[FileEntry] = field(default_factory=list)
    quarantine: list[FileEntry] = field(default_factory=list)
    quarantine_dir: str | None = None
    planned_at: float = field(default_factory=time.time)
    live: list[SetSummary] = field(default_factory=list)
    """Sets ``--max-bytes`` would have removed but a running process holds claims on."""

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

    def to_json(self) -> dict[str, object]:
        return {
            "root": self.root,
            "sets": [s.to_json() for s in self.sets],
            "temp_files": [f.to_json(self.planned_at) for f in self.temp_files],
            "quarantine": (
                None
                if self.quarantine_dir is None
                else {
                    "path": self.quarantine_dir,
                    "files": len(self.quarantine),
                    "bytes": sum(f.size for f in self.quarantine),
                }
            ),
            "bytes": self.bytes,
            "kept_live": [s.to_json() for s in self.live],
        }


@dataclass
class GcResult:
    """What :func:`run_gc` removed, and what it could not."""

    removed_bytes: int = 0
    removed_files: int = 0
    errors: list[str] = field(default_factory=list)
    removed_sets: list[str] = field(default_factory=list)
    """The params sets whose folder is gone (a set with a symlink in it stays)."""
    removed_temp_files: int = 0
    removed_quarantine: bool = False


def plan_gc(
    store: Store,
    *,
    params: Sequence[str] = (),
    older_than: float | None = None,
    quarantine: bool = False,
    now: float | None = None,
    temp_grace: float = TEMP_GRACE_SECONDS,
    max_bytes: int | None = None,
) -> GcPlan:
    """Decide what to remove, removing nothing.

    - ``params``: digests (unique prefixes) of params sets to remove;
    - ``older_than``: seconds; remove the sets whose newest chunk is older. With
      ``params`` too, only those of the given sets that are that old;
    - temp files older than ``temp_grace`` are always removed (outside removed sets);
    - ``quarantine``: also remove the ``.quarantine`` folder;
    - ``max_bytes``: then remove the least recently written sets until the cache fits,
      never one a running process holds claims on (listed in ``live``).
    """
    now = time.time() if now is None else now
    if older_than is not None and older_than < 0:
        raise InspectError("the age given to --older-than must not be negative")
    chosen = sorted({resolve_set(store, d) for d in params})
    candidates = chosen if params else set_ids(store)
    plan = GcPlan(store.url(""), planned_at=now)
    if params or older_than is not None:
        for set_id in candidates:
            summary = summarize_set(store, set_id)
            if older_than is None or summary.last_activity < now - older_than:
                plan.sets.append(summary)
    removed = [QUARANTINE, *(s.set_id for s in plan.sets)]
    plan.temp_files = [
        f for f in all_temp_files(store, exclude=removed) if f.mtime < now - temp_grace
    ]
    if quarantine:
        plan.quarantine = quarantined_files(store)
        if plan.quarantine:
            plan.quarantine_dir = store.url(QUARANTINE)
    if max_bytes is not None:
        _cap(store, plan, max_bytes)
    return plan


def _cap(store: Store, plan: GcPlan, max_bytes: int) -> None:
    """Add the sets ``--max-bytes`` removes to ``plan`` (see
    :mod:`swarm_memo.inspection.sizecap`)."""
    chosen = {s.set_id for s in plan.sets}
    sets = [s for s in plan.sets] + [
        summarize_set(store, i) for i in set_ids(store) if i not in chosen
    ]
    extra, plan.live = over_cap(store, sets, chosen, max_bytes, plan.bytes)
    plan.sets.extend(extra)
    gone = tuple(f"{s.set_id}/" for s in extra)
    plan.temp_files = [f for f in plan.temp_files if not f.key.startswith(gone)]


def _remove(store: Store, entry: FileEntry, result: GcResult) -> bool:
    try:
        store.delete(entry.key)
    except OSError as exc:  # StoreError (a symlink on the way), permissions
        result.errors.append(f"could not remove {entry.path}: {exc}")
        return False
    result.removed_bytes += entry.size
    result.removed_files += 1
    return True


def _remove_tree(store: Store, prefix: str, result: GcResult) -> bool:
    """Remove the folder ``prefix`` and its files; True when it is gone."""
    errors = len(result.errors)
    for entry in list(walk_files(store, prefix)):
        _remove(store, entry, result)
    return _prune(store, prefix, result, errors)


def _prune(store: Store, prefix: str, result: GcResult, errors: int) -> bool:
    """Remove the empty folders of ``prefix``; True when nothing is left of it and no
    error was reported since there were ``errors``. A symlink left is reported."""
    try:
        store.prune(prefix)
    except OSError as exc:
        result.errors.append(f"could not remove folder {store.url(prefix)}: {exc}")
    symlinks = getattr(store, "symlinks", None)  # a LocalStore names what it left
    for key in symlinks(prefix) if symlinks is not None else []:
        result.errors.append(
            f"could not remove {store.url(key)}: a symlink, which swarm-memo never "
            "follows; the files behind it are left alone (remove them yourself)"
        )
    return len(result.errors) == errors and next(walk_files(store, prefix), None) is None


def run_gc(store: Store, plan: GcPlan) -> GcResult:
    """Remove what ``plan`` lists; errors (a file in use, permissions, a symlink) are
    collected, and only what is gone is counted as removed."""
    result = GcResult()
    for summary in plan.sets:
        if _remove_tree(store, summary.set_id, result):
            result.removed_sets.append(summary.set_id)
    for entry in plan.temp_files:
        result.removed_temp_files += _remove(store, entry, result)
    if plan.quarantine_dir is not None:
        errors = len(result.errors)
        for entry in plan.quarantine:
            _remove(store, entry, result)
        result.removed_quarantine = _prune(store, QUARANTINE, result, errors)
    return result
