"""Serving stored points to a chunk whose own file is missing.

When a grid changes (a value inserted mid-axis, another bin size, a subset, another order)
most requested chunks have no file of their own, yet their points sit in other chunk
files of the same params. This module finds them through the point index and copies
their outputs, loading each needed file once while it stays in a small LRU.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from ._cache import ParamsSet
from ._diagnostics import Diagnostics
from ._grid import Chunk
from ._index import Found, PointIndex

_LRU_POINTS = 1_000_000


class Reuse:
    """Fills a chunk's outputs from points stored in a params set's other chunk files."""

    def __init__(self, pset: ParamsSet, names: set[str], diag: Diagnostics | None = None) -> None:
        self._pset = pset
        self._diag = diag
        self._names = names
        self._index: PointIndex | None = None
        self._loaded: OrderedDict[str, list[Any] | None] = OrderedDict()
        self._loaded_points = 0

    @property
    def index(self) -> PointIndex:
        if self._index is None:
            self._index = PointIndex.read(self._pset, self._names - self._pset.unusable)
        return self._index

    def locate(self, chunk: Chunk, digests: Sequence[bytes] | None) -> list[Found]:
        """Where each point of the chunk is stored, if anywhere (no outputs loaded).

        ``digests`` are the point digests of an enumerated chunk, or None for a product
        chunk (its points are found from its bins).
        """
        if not self._names:
            return []
        if digests is None:
            return self.index.locate_product(chunk.axes, chunk.bin_encodings)
        return self.index.locate_points(digests)

    def fill(self, chunk: Chunk, digests: Sequence[bytes] | None, outputs: list[Any]) -> int:
        """Copy stored outputs into ``outputs``; return how many points were filled."""
        filled = 0
        for name, req_positions, file_positions in self.locate(chunk, digests):
            stored = self._outputs(name)
            if stored is None:
                continue
            for req_pos, file_pos in zip(req_positions, file_positions):
                outputs[req_pos] = stored[file_pos]
            filled += len(req_positions)
        return filled

    def _outputs(self, name: str) -> list[Any] | None:
        if name in self._loaded:
            self._loaded.move_to_end(name)
            return self._loaded[name]
        started = time.perf_counter()
        record = self._pset.load(name)
        if self._diag is not None:
            self._diag.load_time += time.perf_counter() - started
        outputs = None
        if record is not None:
            if record.checksum == self.index.records[name].checksum:
                outputs = record.outputs
            else:  # the file was replaced after its index record was written: trust the file
                self._pset.rebuild_index_record(name)
        self._loaded[name] = outputs
        self._loaded_points += len(outputs or ())
        while self._loaded_points > _LRU_POINTS and len(self._loaded) > 1:
            _, dropped = self._loaded.popitem(last=False)
            self._loaded_points -= len(dropped or ())
        return outputs
