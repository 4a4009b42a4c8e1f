"""What a cache holds, read back for the model test (test_property.py): canonical forms
of values, points and outputs; the chunk files decoded; snapshots; file damage."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import chunk_files
from swarm_memo.cache.codec import decode_chunk
from swarm_memo.errors import CorruptChunkError, UnreadableChunkError

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None

Canon = tuple[Any, ...]
"""A point's identity: type-tagged values (numpy alike Python, one NaN, 1 apart from 1.0)."""
Norm = tuple[Canon, Any, Any]
"""An output, comparable whatever numpy/Python type or NaN object it was computed from."""

# ---------------------------------------------------------------------- canonical forms


def canon_value(value: Any) -> tuple[str, Any]:
    """A value's identity as the cache keys it: type-tagged, numpy alike Python."""
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, int) or (np is not None and isinstance(value, np.integer)):
        return ("i", int(value))
    if isinstance(value, float) or (np is not None and isinstance(value, np.floating)):
        return ("f", "nan" if math.isnan(value) else float(value).hex())
    raise TypeError(f"no canonical form for {value!r}")


def canon_point(point: tuple[Any, ...], axes: tuple[str, ...]) -> Canon:
    """A point's identity: the tuple ``exec_fn`` received, value by value (the same grid
    point in another axis order is another tuple, so another point). ``axes`` names the
    order the tuple follows; it does not change the identity."""
    return tuple(canon_value(v) for v in point)


def norm(output: dict[str, Any]) -> Norm:
    """An output, comparable whatever numpy/Python type or NaN object it was computed from,
    with the version of the code that computed it (None when it does not say)."""
    assert output["pid_free"] == repr(output["point"]) + "!"  # one point's output, whole
    point = tuple(canon_value(v) for v in output["point"])
    return point, output["alpha"], output.get("version")


# ---------------------------------------------------------------------- the cache, decoded


@dataclass
class CacheState:
    """What the chunk files hold: intact files' points and outputs, and damaged files."""

    files: dict[Path, dict[Canon, Norm]]
    product_files: set[Path]
    broken: set[Path]

    @property
    def stored(self) -> set[Canon]:
        return set().union(*self.files.values())

    def stored_by(self, version: Any) -> set[Canon]:
        """Points with a stored output computed by code ``version``."""
        return {c for points in self.files.values() for c, n in points.items() if n[2] == version}


def read_cache(root: Path) -> CacheState:
    state = CacheState({}, set(), set())
    for path in chunk_files(root):
        try:
            record = decode_chunk(path.read_bytes())
        except (CorruptChunkError, UnreadableChunkError):
            state.broken.add(path)
            continue
        state.files[path] = {
            canon_point(p, record.axes): norm(o)
            for p, o in zip(record.resolved_points(), record.outputs, strict=True)
        }
        if record.points is None:
            state.product_files.add(path)
    return state


def snapshot(root: Path) -> dict[str, Any] | None:
    """Every file and folder under the cache root: size, mtime and bytes of files."""
    if not root.exists():
        return None
    entries: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        stat = path.stat()
        entries[str(path.relative_to(root))] = (
            None if path.is_dir() else (stat.st_size, stat.st_mtime_ns, path.read_bytes())
        )
    return entries


def damage(path: Path, how: str, where: float) -> None:
    data = bytearray(path.read_bytes())
    position = min(int(where * len(data)), len(data) - 1)
    if how == "truncate":
        path.write_bytes(bytes(data[:position]))
    else:
        data[position] ^= 0xFF
        path.write_bytes(bytes(data))
