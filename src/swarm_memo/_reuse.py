"""Serving stored points to a chunk whose own file is missing (or partial).

When a grid changes (a value inserted mid-axis, another bin size, a subset, another order)
most requested chunks have no file of their own, yet their points sit in other chunk
files of the same params. This module finds them through the point index and copies
their outputs, loading each needed file once while it stays in an LRU bounded in bytes
(``LRU_BYTES``, estimated from each file's size on disk, never by deep-sizing outputs).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from ._cache import ParamsSet
from ._diagnostics import Diagnostics
from ._grid import Chunk, strides
from ._index import Found, IndexRecord, PointIndex
from ._scheduler import MISSING

LRU_BYTES = 256 * 2**20
"""What the chunk files whose outputs are kept loaded may weigh, together (estimated)."""
OUTPUT_BYTES = 64
"""Added per output to a file's size: a tiny pickled output takes more room unpickled."""

MAX_LOOKUPS = 4
"""Lookups of one chunk when files turn out stale or unusable (each drops or fixes one)."""
_STALE: Any = object()
"""What ``_outputs`` returns for a file whose index record described an older version."""

CodeCheck = Callable[[str | None], bool]
"""Whether outputs computed by code with this fingerprint may be served."""


def _product_places(points: Sequence[Any], bins: Sequence[Sequence[Any]]) -> dict[int, int]:
    """Flat position in the product of ``bins`` -> index in ``points``, for each point
    that is a tuple of bin values (identity, never ``==``)."""
    where = [{id(v): i for i, v in enumerate(values)} for values in bins]
    steps = strides([len(values) for values in bins])
    places: dict[int, int] = {}
    for index, point in enumerate(points):
        if type(point) is not tuple or len(point) != len(bins):
            continue
        flat = 0
        for item, lookup, step in zip(point, where, steps, strict=True):
            at = lookup.get(id(item))
            if at is None:
                break
            flat += at * step
        else:
            places.setdefault(flat, index)
    return places


def read_point_index(pset: ParamsSet, names: set[str]) -> PointIndex:
    """The index records of ``names``, rebuilding missing ones from their chunk files."""
    stored = pset.read_index()
    records: dict[str, IndexRecord] = {}
    for name in sorted(names):
        record = stored.get(name) or pset.index_record(name)
        if record is not None:
            records[name] = record
    return PointIndex(records)


class Reuse:
    """Fills a chunk's outputs from points stored in a params set's other chunk files."""

    def __init__(
        self,
        pset: ParamsSet,
        names: set[str],
        diag: Diagnostics | None = None,
        code_allowed: CodeCheck = lambda code: True,
        code_served: CodeCheck = lambda code: True,
    ) -> None:
        self._pset = pset
        self._diag = diag
        self._names = names
        self._code_allowed = code_allowed
        self._code_served = code_served
        self._index: PointIndex | None = None
        self._loaded: OrderedDict[str, tuple[list[Any] | None, int]] = OrderedDict()
        self._loaded_bytes = 0

    @property
    def index(self) -> PointIndex:
        if self._index is None:
            index = read_point_index(self._pset, self._names - self._pset.unusable)
            usable = {n: r for n, r in index.records.items() if self._code_allowed(r.code)}
            self._index = PointIndex(usable) if len(usable) < len(index.records) else index
        return self._index

    def locate(
        self,
        chunk: Chunk,
        digests: Callable[[], Sequence[bytes]],
        product: bool,
        points: Sequence[Any] = (),
    ) -> list[Found]:
        """Where each point of the chunk is stored, if anywhere (no outputs loaded).

        A product chunk is looked up by its bins first; points still unfound (and every
        point of an enumerated chunk) are looked up by ``digests()``, the digests of the
        chunk's points, computed only when some stored file lists points by digest.
        """
        if not self._names:
            return []
        index = self.index
        found: list[Found] = []
        if product:
            found = index.locate_product(chunk.axes, chunk.bins)
        elif index.has_products:
            found = self._enumerated_in_products(chunk, points)
        if not index.has_digests:
            return self._served(found)
        taken = {pos for _, req, _ in found for pos in req}
        wanted = digests()
        if len(taken) == len(wanted):
            return self._served(found)
        rest = [i for i in range(len(wanted)) if i not in taken]
        for name, req, files in index.locate_points([wanted[i] for i in rest]):
            found.append((name, [rest[i] for i in req], files))
        return self._served(found)

    def _enumerated_in_products(self, chunk: Chunk, points: Sequence[Any]) -> list[Found]:
        """Enumerated points that are tuples of the chunk's own bin values (the very same
        objects), looked up in product files by their place in the product of the bins."""
        places = _product_places(points, chunk.bins)
        if not places:
            return []
        found: list[Found] = []
        for name, req, files in self.index.locate_product(chunk.axes, chunk.bins):
            pairs = [(places[r], f) for r, f in zip(req, files, strict=True) if r in places]
            if pairs:
                found.append((name, [p for p, _ in pairs], [f for _, f in pairs]))
        return found

    def _served(self, found: list[Found]) -> list[Found]:
        for name, _, _ in found:
            self._code_served(self.index.records[name].code)
        return found

    def fill(
        self,
        chunk: Chunk,
        digests: Callable[[], Sequence[bytes]],
        product: bool,
        outputs: list[Any],
        points: Sequence[Any] = (),
    ) -> int:
        """Copy stored outputs into ``outputs`` (positions still ``MISSING``); return how
        many points were filled.

        When a file turns out to have been rewritten since its index record was made (a
        partial chunk completed by another run), its record is rebuilt from the file and
        the chunk is looked up once more; when a file turns out damaged or unreadable, its
        points are looked up in the other files that hold them.
        """
        filled = 0
        for _attempt in range(MAX_LOOKUPS):
            retry = False
            found = self.locate(chunk, digests, product, points)
            for name, req_positions, file_positions in found:
                stored = self._outputs(name)
                if stored is _STALE:  # its record was rebuilt: look again
                    retry = True
                    continue
                if stored is None:  # damaged or unreadable: its points may be elsewhere
                    retry = self._forget(name) or retry
                    continue
                for req_pos, file_pos in zip(req_positions, file_positions, strict=True):
                    if outputs[req_pos] is MISSING:
                        outputs[req_pos] = stored[file_pos]
                        filled += 1
            if not retry:
                break
        return filled

    def _outputs(self, name: str) -> Any:
        """A stored file's outputs (None if unusable), kept in an LRU bounded in bytes."""
        if name in self._loaded:
            self._loaded.move_to_end(name)
            return self._loaded[name][0]
        started = time.perf_counter()
        record = self._pset.load(name)
        if self._diag is not None:
            self._diag.load_time += time.perf_counter() - started
        outputs = None
        weight = 0
        if record is not None:
            if record.checksum != self.index.records[name].checksum:
                # Replaced after its index record was written: describe the file as it is.
                self._replace_record(name, self._pset.describe(name, record))
                return _STALE
            outputs = record.outputs
            weight = record.stored_bytes + OUTPUT_BYTES * len(outputs)
        self._loaded[name] = (outputs, weight)
        self._loaded_bytes += weight
        while self._loaded_bytes > LRU_BYTES and len(self._loaded) > 1:
            _, (_, dropped) = self._loaded.popitem(last=False)
            self._loaded_bytes -= dropped
        return outputs

    def _forget(self, name: str) -> bool:
        """Drop an unusable file from the index (its points are looked up elsewhere);
        False when it was not there."""
        if name not in self.index.records:
            return False
        records = dict(self.index.records)
        del records[name]
        self._index = PointIndex(records)
        return True

    def _replace_record(self, name: str, record: IndexRecord) -> None:
        records = dict(self.index.records)
        records[name] = record
        self._index = PointIndex(records)
