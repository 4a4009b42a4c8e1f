"""The data a run passes between its layers: memo chunks being completed, the sentinel
for outputs not known yet, and the stand-in for a failed point.

Planning, serving (reuse, records, sinks) and executing (scheduler, workers) all use
these; this module imports none of them, so serving never depends on the engine.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Final


class Missing(enum.Enum):
    """The one-member type of :data:`MISSING` (so ``x is MISSING`` narrows)."""

    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = Missing.MISSING
"""Placeholder for an output not computed (or not found) yet."""


@dataclass(frozen=True)
class PointFailure:
    """Stands in for the output of a point that failed (``on_error="skip"``).

    ``index`` is the point's position in its exec chunk; ``exc_type``, ``message`` and
    ``traceback`` describe the exception as raised in the worker. ``stage`` says what
    failed: ``"exec_fn"`` (it raised) or ``"pickle"`` (its output cannot be pickled, so
    it can neither travel back from a worker nor be stored).
    """

    index: int
    exc_type: str
    message: str
    traceback: str
    stage: str = "exec_fn"


@dataclass
class ChunkJob:
    """A memo chunk being completed: its points, the outputs known so far, what is missing."""

    index: int
    name: str
    points: list[Any]
    outputs: list[Any]
    missing: list[int]
    reused: int = 0
    digests: list[bytes] | None = None
    failed: int = 0
    cached: int = 0
    """Points of a chunk another process wrote meanwhile (its outputs came from its file)."""
    seconds: float = 0.0
    """Compute seconds of its executed points (each exec chunk's time, divided evenly)."""
    product: bool = False
    """Its points are the product of its bins in axis order (stored as a product)."""
    remaining: int = field(init=False)

    def __post_init__(self) -> None:
        self.remaining = len(self.missing)
