"""Type aliases shared across swarm-memo's modules."""

from __future__ import annotations

from typing import Any

Point = Any
"""One combination of split values, as produced by ``enumerate_points``."""

ChunkKey = tuple[tuple[str, tuple[Any, ...]], ...]
"""A memo chunk's identity: ``((axis, bin values), ...)`` sorted by axis name."""

Params = dict[str, Any]
"""The fixed parameters of a sweep."""

SplitSpec = dict[str, list[Any]]
"""Axis name -> the list of values to sweep."""
