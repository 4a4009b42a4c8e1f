"""Code that runs inside workers: evaluate ``exec_fn`` over one exec chunk of points.

The function and params travel as one cloudpickled blob tagged with a per-run token;
each worker unpickles a blob once and keeps the last few, so params and the function are
deserialized once per worker per run, not once per exec chunk.
"""

from __future__ import annotations

import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

_RESOLVED: OrderedDict[str, tuple[Callable[[Any, Any], Any], Any]] = OrderedDict()
_KEEP_RESOLVED = 4


@dataclass(frozen=True)
class PointFailure:
    """Stands in for the output of a point whose ``exec_fn`` raised (``on_error="skip"``).

    ``index`` is the point's position in its exec chunk; ``exc_type``, ``message`` and
    ``traceback`` describe the exception as raised in the worker.
    """

    index: int
    exc_type: str
    message: str
    traceback: str


@dataclass(frozen=True)
class BlobFile:
    """A run payload too big to travel with every task: workers on this machine read it
    from a file once per run instead."""

    path: str


def _resolve(token: str, blob: bytes | BlobFile) -> tuple[Callable[[Any, Any], Any], Any]:
    resolved = _RESOLVED.get(token)
    if resolved is None:
        import cloudpickle

        if isinstance(blob, BlobFile):
            with open(blob.path, "rb") as fh:
                blob = fh.read()
        resolved = cloudpickle.loads(blob)
        _RESOLVED[token] = resolved
        while len(_RESOLVED) > _KEEP_RESOLVED:
            _RESOLVED.popitem(last=False)
    return resolved


def evaluate(
    exec_fn: Callable[[Any, Any], Any], params: Any, points: Sequence[Any], skip_errors: bool
) -> tuple[list[Any], list[int]]:
    """Evaluate ``exec_fn(params, point)`` for each point, in order.

    Returns the outputs and the indices of the points that raised. A raising point's
    output is a :class:`PointFailure`; unless ``skip_errors``, evaluation stops there.
    """
    outputs: list[Any] = []
    failed: list[int] = []
    for index, point in enumerate(points):
        try:
            outputs.append(exec_fn(params, point))
        except Exception as exc:
            outputs.append(
                PointFailure(index, type(exc).__qualname__, str(exc), traceback.format_exc())
            )
            failed.append(index)
            if not skip_errors:
                break
    return outputs, failed


def run_batch(
    token: str, blob: bytes | BlobFile, points: Sequence[Any], skip_errors: bool
) -> tuple[list[Any], list[int]]:
    """Task entry point shipped to process, thread and Dask workers."""
    exec_fn, params = _resolve(token, blob)
    return evaluate(exec_fn, params, points, skip_errors)
