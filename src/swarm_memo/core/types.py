"""Type aliases shared across swarm-memo's modules."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Point = Any
"""One combination of split values, as produced by ``enumerate_points``."""

ChunkKey = tuple[tuple[str, tuple[Any, ...]], ...]
"""A memo chunk's identity: ``((axis, bin values), ...)`` sorted by axis name."""

Params = dict[str, Any]
"""The fixed parameters of a sweep."""

SplitSpec = dict[str, list[Any]]
"""Axis name -> the list of values to sweep."""

ExecFn = Callable[[Params, Point], Any]
"""``exec_fn(params, point) -> output``."""

EnumerateFn = Callable[[Params, SplitSpec], Sequence[Point]]
"""``enumerate_points(params, chunk_split_spec) -> points of one memo chunk``."""
