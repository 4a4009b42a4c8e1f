"""Chunk order: the one place that decides in which order missing chunks are scheduled.

The order of the *output* never depends on it; only which chunks are computed first.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from swarm_memo.errors import SpecError, SpecTypeError
from swarm_memo.identity.grid import strides

"""Builds the chunks' sub-specs in grid order (only orders that need them call it)."""


class ChunkOrder(Protocol):
    """Decides the order of a request's memo chunks."""

    def order(
        self, shape: Sequence[int], sub_specs: Callable[[], list[dict[str, list[object]]]]
    ) -> list[int]:
        """Chunk indices (grid order, first axis slowest) in the order to compute them.

        ``shape`` is the number of bins per axis; ``sub_specs`` builds the chunks' sub-specs
        (``{axis: values}``) in grid order, only for orders that need them.
        """


@dataclass(frozen=True)
class GridOrder:
    """Grid order: the first axis varies slowest (the default)."""

    def order(
        self, shape: Sequence[int], sub_specs: Callable[[], list[dict[str, list[object]]]]
    ) -> list[int]:
        return list(range(_count(shape)))


def _bit_reversed(n: int) -> list[int]:
    """``range(n)`` in bit-reversed order: 8 -> 0, 4, 2, 6, 1, 5, 3, 7 (works for any n)."""
    bits = max(1, (n - 1).bit_length())
    return sorted(range(n), key=lambda i: int(format(i, f"0{bits}b")[::-1], 2))


@dataclass(frozen=True)
class CoarseToFine:
    """Bit-reversed bin indices per axis: every prefix of the sweep covers the grid evenly,
    so a half-finished sweep is already a coarse picture of the whole."""

    def order(
        self, shape: Sequence[int], sub_specs: Callable[[], list[dict[str, list[object]]]]
    ) -> list[int]:
        steps = strides(shape)
        per_axis = [_bit_reversed(n) for n in shape]
        # Rank each chunk by the bit-reversed rank of its bins, coarsest level first.
        ranks = [{b: r for r, b in enumerate(order)} for order in per_axis]
        combos = itertools.product(*(range(n) for n in shape))
        keyed = [
            (max(rank[b] for rank, b in zip(ranks, combo, strict=True)) if combo else 0, combo)
            for combo in combos
        ]
        keyed.sort(
            key=lambda item: (_level(item[0]), [r[b] for r, b in zip(ranks, item[1], strict=True)])
        )
        return [sum(b * s for b, s in zip(combo, steps, strict=True)) for _, combo in keyed]


def _level(rank: int) -> int:
    return rank.bit_length()


@dataclass(frozen=True)
class CustomOrder:
    """A user's ``chunk_order(sub_specs) -> indices``."""

    fn: Callable[[list[dict[str, list[object]]]], Sequence[int]]

    def order(
        self, shape: Sequence[int], sub_specs: Callable[[], list[dict[str, list[object]]]]
    ) -> list[int]:
        count = _count(shape)
        indices = list(self.fn(sub_specs()))
        if sorted(indices) != list(range(count)) or not all(type(i) is int for i in indices):
            raise SpecError(
                f"chunk_order must return each chunk index 0..{count - 1} exactly once; "
                f"got {indices!r:.200}"
            )
        return indices


def _count(shape: Sequence[int]) -> int:
    total = 1
    for n in shape:
        total *= n
    return total


def parse_chunk_order(value: object) -> ChunkOrder:
    """``chunk_order=`` as given to ``SwarmMemo``: "grid", "coarse-to-fine" or a callable."""
    if value == "grid":
        return GridOrder()
    if value == "coarse-to-fine":
        return CoarseToFine()
    if callable(value):
        return CustomOrder(value)
    if isinstance(value, str):
        raise SpecError(
            f"chunk_order must be 'grid', 'coarse-to-fine' or a callable; got {value!r}"
        )
    raise SpecTypeError(
        f"chunk_order must be 'grid', 'coarse-to-fine' or a callable; got {type(value).__name__}"
    )


@dataclass(frozen=True)
class Share:
    """Task ``index`` of ``count`` tasks of one launch: in which order it takes the chunks.

    The shares interleave the chunk order (task ``i`` owns positions ``i``, ``i + N``,
    ``i + 2N``, ...), so they stay balanced whichever contiguous part of the sweep is
    stored already, and every task knows its own from the sweep alone. Where claims work
    between processes, a task whose own share is done helps with the others', each from
    its end (the owner works from its start), the ``N - 1`` helpers of one share taking
    alternate chunks of it, so that claims are rarely contended. Without claims a task
    computes its own share only: N tasks compute each point once (a share whose task
    died stays missing until a task with that share, a ``run`` or a ``launch`` does it).
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise SpecError(f"a share is task 0..{self.count - 1} of {self.count}; got {self}")

    def arrange(self, order: Sequence[int], helping: bool = True) -> list[int]:
        """``order`` rearranged: this task's share, then (``helping``) its part of the
        others' shares (backwards), then the rest of theirs."""
        count = self.count
        arranged = list(order[self.index :: count])
        if not helping:
            return arranged
        rest: list[int] = []
        for step in range(1, count):
            # This task is helper ``step - 1`` of the share ``step`` tasks after its own.
            backwards = list(reversed(order[(self.index + step) % count :: count]))
            mine = set(range(step - 1, len(backwards), count - 1))
            arranged.extend(backwards[k] for k in sorted(mine))
            rest.extend(c for k, c in enumerate(backwards) if k not in mine)
        return arranged + rest
