"""Values nested deeper than the encoder of :mod:`swarm_memo.identity.hashing` can recurse: the
encoder lets Python's ``RecursionError`` happen (no depth counting on the hot path), then
:func:`too_deep` walks the value without recursion to say how deep it is and where.
"""

from __future__ import annotations

import dataclasses
import enum
import sys

from swarm_memo.errors import UnhashableValueError


def too_deep(value: object, where: str) -> UnhashableValueError:
    """The error for a value nested deeper than the encoder's recursion can go: how deep
    and where, found by a walk without recursion (a value holding itself is named so)."""
    segments, depth, cycle = _deepest(value)
    shown = "".join(segments)
    if len(segments) > 8:
        hidden = len(segments) - 6
        shown = f"{''.join(segments[:4])}...({hidden} more levels)...{''.join(segments[-2:])}"
    location = where + shown
    if cycle:
        message = f"{location} contains itself (a reference cycle), which swarm-memo cannot hash"
    else:
        message = (
            f"{where} is nested {depth} levels deep, at {location}: deeper than swarm-memo "
            f"can hash within Python's recursion limit ({sys.getrecursionlimit()}); flatten "
            "it or pass a digest of it"
        )
    return UnhashableValueError(message, where=location, value_type=type(value))


def _children(value: object) -> list[tuple[str, object]] | None:
    """The parts of a container as ``(location segment, part)``; None for a leaf."""
    if isinstance(value, dict):
        keys: list[tuple[str, object]] = [
            (f" key {k!r}", k) for k in value if isinstance(k, (tuple, frozenset))
        ]
        return keys + [(f"[{k!r}]", v) for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        return [(f"[{i}]", item) for i, item in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        return [(" element", item) for item in value]
    if isinstance(value, enum.Enum):
        return [(".value", value.value)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [(f".{f.name}", getattr(value, f.name)) for f in dataclasses.fields(value)]
    return None


def _deepest(value: object) -> tuple[list[str], int, bool]:
    """``(segments, depth, cycle)``: the path to the deepest container in ``value`` and
    its depth, or to the first container found inside itself (``cycle``)."""
    nodes: list[tuple[int, str]] = [(-1, "")]  # (parent node, segment) of each node
    on_path: set[int] = set()
    deepest = (0, 0)
    stack: list[tuple[object, int, int]] = [(value, 1, 0)]
    while stack:
        item, depth, node = stack.pop()
        if depth == 0:  # leaving ``node``: ``item`` is the id of its container
            on_path.discard(item)
            continue
        children = _children(item)
        if children is None:
            continue
        if id(item) in on_path:
            return _segments(nodes, node), depth, True
        deepest = max(deepest, (depth, node))
        on_path.add(id(item))
        stack.append((id(item), 0, node))
        for segment, child in reversed(children):
            nodes.append((node, segment))
            stack.append((child, depth + 1, len(nodes) - 1))
    return _segments(nodes, deepest[1]), deepest[0], False


def _segments(nodes: list[tuple[int, str]], node: int) -> list[str]:
    segments = []
    while node > 0:
        node, segment = nodes[node][0], nodes[node][1]
        segments.append(segment)
    return segments[::-1]
