"""Browse a cache from Python: ``swarm_memo.open_cache(cache_root)``.

Without the ``SwarmMemo`` that wrote it (no params, split_spec or exec_fn): the params
sets come from ``params.json`` and the chunk files' JSON meta (as ``swarm-memo ls``), the
points and outputs from the chunk files themselves. It never executes and never writes;
unlike the CLI it unpickles outputs, which is only as safe as the cache (see the README's
trust boundary).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from swarm_memo.cache.codec import decode_chunk
from swarm_memo.cache.listing import (
    ChunkFacts,
    chunk_files,
    compute_facts,
    resolve_set,
    set_ids,
    summarize_set,
)
from swarm_memo.cache.listing import open_cache as _open_store
from swarm_memo.core.userwarn import warn_user
from swarm_memo.errors import (
    CacheWarning,
    CorruptChunkError,
    SpecTypeError,
    UnhashableValueError,
    UnreadableChunkError,
)
from swarm_memo.identity.hashing import point_digest
from swarm_memo.stores.base import Store

if TYPE_CHECKING:
    import pandas as pd

SET_COLUMN = "set_id"

Labelled = tuple[tuple[str, object], ...]
"""A stored point as ``((axis, value), ...)``, or ``(("point", point),)`` for a custom one."""


def _param_cell(value: object) -> object:
    """A params value as a cell: nested values (lists, dicts) as their JSON text."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


def _check_set_id(set_id: object) -> str:
    if not isinstance(set_id, str):
        raise SpecTypeError(f"set_id must be a str (a digest or its prefix); got {set_id!r:.80}")
    return set_id


class Cache:
    """A read-only view of a cache's params sets and stored points (see :func:`open_cache`)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __repr__(self) -> str:
        return f"open_cache({self._store.url('')!r})"

    def sets(self) -> pd.DataFrame:
        """One row per params set: ``set_id``, ``cache_version``, one column per top-level
        params key (nested values as JSON text; NaN where a set lacks the key), then
        ``points``, ``chunks``, ``bytes``, ``compute_seconds``, ``hosts`` (comma-separated)
        and ``last_write`` (UTC), most recently written first."""
        import pandas as pd  # type: ignore[import-untyped,unused-ignore]

        rows = [self._set_row(set_id) for set_id in set_ids(self._store)]
        keys: dict[str, None] = {}
        for row, _ in rows:
            keys.update(dict.fromkeys(row))
        tail = ["points", "chunks", "bytes", "compute_seconds", "hosts", "last_write"]
        columns = [SET_COLUMN, "cache_version", *keys, *tail]
        frame = pd.DataFrame([{**params, **facts} for params, facts in rows], columns=columns)
        frame["last_write"] = pd.to_datetime(frame["last_write"], unit="s", utc=True)
        return frame.sort_values("last_write", ascending=False, na_position="last").reset_index(
            drop=True
        )

    def _set_row(self, set_id: str) -> tuple[dict[str, object], dict[str, object]]:
        facts = ChunkFacts.read(self._store, set_id)
        summary = summarize_set(self._store, set_id, facts)
        seconds, hosts = compute_facts(facts.metas)
        params = summary.params if isinstance(summary.params, dict) else {}
        return {k: _param_cell(v) for k, v in params.items()}, {
            SET_COLUMN: set_id,
            "cache_version": summary.cache_version,
            "points": summary.points,
            "chunks": summary.chunks,
            "bytes": summary.bytes,
            "compute_seconds": seconds,
            "hosts": ", ".join(sorted(hosts)),
            "last_write": summary.last_written,
        }

    def load(self, set_id: str) -> pd.DataFrame:
        """Every stored point of one params set (``set_id`` or a unique prefix of it): one
        column per axis (NaN where a file was stored without that axis), then the output's
        fields as ``SwarmMemo.to_dataframe`` gives them. Rows are sorted by point when the
        values allow it. Damaged or unreadable files are skipped with a ``CacheWarning``."""
        from swarm_memo.frames.frames import require_pandas, to_dataframe

        require_pandas()
        pairs, axes = self._pairs(resolve_set(self._store, _check_set_id(set_id)))
        return to_dataframe(pairs, {}, (), default_points=False, point_to_dict=_as_dict(axes))

    def _pairs(self, set_id: str) -> tuple[list[tuple[Labelled, object]], list[str]]:
        """``(point, output)`` of every stored point (each once) and the axes seen."""
        seen: set[bytes] = set()
        pairs: list[tuple[Labelled, object]] = []
        axes: dict[str, None] = {}
        for entry in chunk_files(self._store, set_id):
            data = self._store.read(entry.key)
            try:
                record = decode_chunk(data or b"")
            except (CorruptChunkError, UnreadableChunkError) as exc:
                warn_user(f"swarm-memo: skipped {entry.path}: {exc}", CacheWarning)
                continue
            points = record.resolved_points()
            for point, output in zip(points, record.outputs, strict=True):
                labelled = _labelled(record.axes, point)
                if labelled[0][0] != "point":
                    axes.update(dict.fromkeys(record.axes))
                digest = _digest(labelled)
                if digest not in seen:
                    seen.add(digest)
                    pairs.append((labelled, output))
        return _sorted(pairs, list(axes)), list(axes)

    def to_dataframe(self, set_ids: Iterable[str] | str) -> pd.DataFrame:
        """Several params sets in one frame: ``set_id``, one column per params key whose
        value differs between them, then the rows of :meth:`load`. ``set_ids`` may be a
        column of :meth:`sets` after a filter (``sets[sets.alpha < 0.5].set_id``)."""
        import pandas as pd

        if isinstance(set_ids, str):
            set_ids = [set_ids]
        ids = [resolve_set(self._store, _check_set_id(s)) for s in set_ids]
        table = self.sets().set_index(SET_COLUMN)
        params = [c for c in table.columns[1 : table.columns.get_loc("points")]]
        chosen = table.loc[ids, params]
        varying = [c for c in params if chosen[c].astype(str).nunique(dropna=False) > 1]
        frames = []
        for set_id in ids:
            frame = self.load(set_id)
            for position, column in enumerate([SET_COLUMN, *varying]):
                value = set_id if column == SET_COLUMN else chosen.at[set_id, column]
                frame.insert(position, column, [value] * len(frame))
            frames.append(frame)
        if not frames:
            return pd.DataFrame(columns=[SET_COLUMN])
        return pd.concat(frames, ignore_index=True)


def _labelled(axes: Sequence[str], point: object) -> Labelled:
    """A point as ``((axis, value), ...)`` when it is a tuple of the file's axis values."""
    if isinstance(point, tuple) and len(point) == len(axes):
        return tuple(zip(axes, point, strict=True))
    return (("point", point),)


def _digest(labelled: Labelled) -> bytes:
    try:
        return point_digest(labelled)
    except UnhashableValueError:  # a custom point without a canonical encoding
        return repr(labelled).encode()


def _sorted(pairs: list[tuple[Labelled, object]], axes: list[str]) -> list[tuple[Labelled, object]]:
    """By axis values (first axis slowest); in file order when they do not compare."""

    def key(pair: tuple[Labelled, object]) -> tuple[tuple[bool, object], ...]:
        values = dict(pair[0])
        return tuple((a not in values, values.get(a, 0)) for a in axes)  # absent: last

    try:
        return sorted(pairs, key=key)
    except TypeError:  # values of several types
        return pairs


def _as_dict(axes: Sequence[str]) -> Callable[[Labelled], dict[str, object]]:
    def point_to_dict(labelled: Labelled) -> dict[str, object]:
        values = dict(labelled)
        return {**{axis: values.get(axis) for axis in axes}, **values}

    return point_to_dict


def open_cache(
    cache_root: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
) -> Cache:
    """Browse an existing cache (a folder or an fsspec URL): ``.sets()``, ``.load(set_id)``,
    ``.to_dataframe(set_ids)``. Never executes, never writes; unpickles stored outputs.
    Needs pandas. Raises :class:`~swarm_memo.errors.InspectError` if there is no cache."""
    if not isinstance(cache_root, str) and not hasattr(cache_root, "__fspath__"):
        raise SpecTypeError(f"cache_root must be a str or path; got {cache_root!r:.80}")
    if storage_options is not None and not isinstance(storage_options, dict):
        raise SpecTypeError(f"storage_options must be a dict or None; got {storage_options!r:.80}")
    from swarm_memo.frames.frames import require_pandas

    require_pandas()
    return Cache(_open_store(str(cache_root), storage_options))
