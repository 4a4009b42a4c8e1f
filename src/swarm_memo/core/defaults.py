"""The default ``collate_fn`` and ``merge_fn``."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def default_collate(outputs: list[T]) -> list[T]:
    """The default ``collate_fn``: a chunk's outputs as a list, in point order."""
    return outputs if type(outputs) is list else list(outputs)


def default_merge(chunks: Iterable[Iterable[T]]) -> list[T]:
    """The default ``merge_fn``: concatenate the chunks' lists in chunk order."""
    return list(itertools.chain.from_iterable(chunks))
