"""Serving stored points to a chunk whose own file is missing (or partial).

When a grid changes (a value inserted mid-axis, another bin size, a subset, another order)
most requested chunks have no file of their own, yet their points sit in other chunk
files of the same params. This module finds them through the point index and copies
their outputs, loading each needed file once while it stays in an LRU bounded in bytes
(``LRU_BYTES``, estimated from each file's size on disk, never by deep-sizing outputs).

Nothing is served on the index's word alone: a loaded file must be the one its record
describes (same checksum; a product file the same axes and bins), else its record is
rebuilt from the file and the chunk looked up again; a point found by digest is served
only when the file's own point at that position has the requested digest.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Final

from swarm_memo.cache.chunk_meta import MIXED_CODE
from swarm_memo.cache.codec import ChunkRecord
from swarm_memo.cache.index import Found, IndexRecord, PointIndex
from swarm_memo.cache.keydefaults import locate_defaulted, same_order
from swarm_memo.cache.params_set import ParamsSet
from swarm_memo.cache.serving import ServePolicy
from swarm_memo.core.diagnostics import Diagnostics
from swarm_memo.core.jobs import MISSING
from swarm_memo.identity.grid import Chunk, strides
from swarm_memo.identity.hashing import point_digest

LRU_BYTES = 256 * 2**20
"""What the chunk files whose outputs are kept loaded may weigh, together (estimated)."""
OUTPUT_BYTES = 64
"""Added per output to a file's size: a tiny pickled output takes more room unpickled."""

MAX_LOOKUPS = 4
"""Lookups of one chunk when files turn out stale or unusable (each drops or fixes one)."""


class _Stale(enum.Enum):
    """The one-member type of ``_STALE`` (so ``x is _STALE`` narrows)."""

    STALE = "STALE"


_STALE: Final = _Stale.STALE
"""What ``_record`` returns for a file whose index record described an older version."""


def _product_places(points: Sequence[object], bins: Sequence[Sequence[object]]) -> dict[int, int]:
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


def _same_points(
    file_points: Sequence[object],
    file_positions: Sequence[int],
    digests: Callable[[], Sequence[bytes]],
    req_positions: Sequence[int],
) -> bool:
    """Whether each listed point of a file has the digest of the requested point it is
    about to serve (compared by canonical encoding)."""
    wanted = digests()
    return all(
        f < len(file_points) and point_digest(file_points[f]) == wanted[r]
        for r, f in zip(req_positions, file_positions, strict=True)
    )


def read_point_index(pset: ParamsSet, names: set[str]) -> PointIndex:
    """The index records of ``names``, rebuilding missing ones from their chunk files."""
    stored = pset.read_index()
    records: dict[str, IndexRecord] = {}
    for name in sorted(names):
        record = stored.get(name) or pset.index_record(name)
        if record is not None:
            records[name] = record
    return PointIndex(records)


def _mark_run(outputs: list[object], positions: Sequence[int], marker: object) -> bool:
    """Set ``marker`` at ``positions`` at once (in C) when they are one run of positions
    all still ``MISSING`` (a stored bin overlapping a requested one); False, changing
    nothing, otherwise. ``outputs`` holds only markers here: counted by identity."""
    if not positions:
        return False
    first, stop = positions[0], positions[-1] + 1
    if stop - first != len(positions) or outputs[first:stop].count(MISSING) != len(positions):
        return False
    if not isinstance(positions, range) and list(positions) != list(range(first, stop)):
        return False  # a range of this length and ends is the run itself
    outputs[first:stop] = [marker] * len(positions)
    return True


class Reuse:
    """Fills a chunk's outputs from points stored in a params set's other chunk files.

    With a :class:`ServePolicy`, only outputs it allows are served (the code that computed
    them, the axis order of product files) and what is served is counted for its warning;
    without one (``compact``), every stored output is found, with its code.
    """

    def __init__(
        self,
        pset: ParamsSet,
        names: set[str],
        diag: Diagnostics | None = None,
        policy: ServePolicy | None = None,
        axis_defaults: dict[str, bytes] | None = None,
    ) -> None:
        self._axis_defaults = axis_defaults or {}
        """Points at an axis default are also looked up stored without that axis."""
        self._pset = pset
        self._diag = diag
        self._names = names
        self._policy = policy
        self._index: PointIndex | None = None
        self._other_order: PointIndex | None = None
        self._loaded: OrderedDict[str, tuple[ChunkRecord | None, int]] = OrderedDict()
        self._loaded_bytes = 0
        self._peeked: dict[str, tuple[str | None, ...] | None] = {}
        self._intact: set[str] = set()
        """Files found intact and described by their records without being loaded."""

    def refresh(self, names: set[str]) -> None:
        """Look points up in ``names`` from now on (the chunk files stored now, some by
        other runs since the index was read): the index is read again if they are new."""
        if self._index is not None and not names <= self._names:
            self._index = self._other_order = None
        self._names = names

    @property
    def index(self) -> PointIndex:
        if self._index is None:
            index = read_point_index(self._pset, self._names - self._pset.unusable)
            self._index, self._other_order = self._split(index)
        return self._index

    def _split(self, index: PointIndex) -> tuple[PointIndex, PointIndex | None]:
        """The records this call may serve from, and the product records of another axis
        order (never served; looked up only to say how many points they hold)."""
        policy = self._policy
        if policy is None:
            return index, None
        usable: dict[str, IndexRecord] = {}
        other_order: dict[str, IndexRecord] = {}
        for name, record in index.records.items():
            if record.code != MIXED_CODE and not policy.code_allowed(record.code):
                continue  # per-point codes of mixed files are checked when served
            if record.digests is None and not same_order(
                record.axes, policy.axes, self._axis_defaults
            ):
                other_order[name] = record
            else:
                usable[name] = record
        if len(usable) == len(index.records):
            return index, None
        return PointIndex(usable), (PointIndex(other_order) if other_order else None)

    def locate(
        self,
        chunk: Chunk,
        digests: Callable[[], Sequence[bytes]],
        product: bool,
        points: Sequence[object] = (),
    ) -> list[Found]:
        """Where each point of the chunk is stored, if anywhere (no outputs loaded).

        A product chunk is looked up by its bins first; points still unfound (and every
        point of an enumerated chunk) are looked up by ``digests()``, the digests of the
        chunk's points, computed only when some stored file lists points by digest.
        Points of mixed-code files whose code may not serve are left out.
        """
        if not self._names:
            return []
        found = self._locate_in(self.index, chunk, digests, product, points)
        if product and self._other_order is not None:
            self._count_other_order(chunk, found)
        return self._served_or_elsewhere(found, chunk, digests, product, points)

    def _locate_in(
        self,
        index: PointIndex,
        chunk: Chunk,
        digests: Callable[[], Sequence[bytes]],
        product: bool,
        points: Sequence[object],
    ) -> list[Found]:
        found: list[Found] = []
        if product:
            found = index.locate_product(chunk.axes, chunk.bins)
            if self._axis_defaults:  # points at an axis default may be stored without it
                taken = {pos for _, req, _ in found for pos in req}
                found += locate_defaulted(index, chunk, taken, self._axis_defaults)
        elif index.has_products:
            found = self._enumerated_in_products(index, chunk, points)
        if index.has_digests:
            taken = {pos for _, req, _ in found for pos in req}
            wanted = digests()
            if len(taken) < len(wanted):
                rest = [i for i in range(len(wanted)) if i not in taken]
                for name, req, files in index.locate_points([wanted[i] for i in rest]):
                    found.append((name, [rest[i] for i in req], files))
        return found

    def _served_or_elsewhere(
        self,
        found: list[Found],
        chunk: Chunk,
        digests: Callable[[], Sequence[bytes]],
        product: bool,
        points: Sequence[object],
    ) -> list[Found]:
        """``found`` without the points a mixed-code file may not serve; those points are
        looked up again in the other files (the index names one file per point, and
        another file may hold an output this call may serve)."""
        result: list[Found] = []
        excluded: set[str] = set()
        for _attempt in range(MAX_LOOKUPS):
            refused: set[int] = set()
            for entry in found:
                kept = self._allowed(entry)
                if kept[1]:
                    result.append(kept)
                if len(kept[1]) < len(entry[1]):
                    excluded.add(entry[0])
                    refused.update(set(entry[1]) - set(kept[1]))
            if not refused:
                break
            others = {n: r for n, r in self.index.records.items() if n not in excluded}
            found = []
            for name, req, files in self._locate_in(
                PointIndex(others), chunk, digests, product, points
            ):
                pairs = [(r, f) for r, f in zip(req, files, strict=True) if r in refused]
                if pairs:
                    found.append((name, [r for r, _ in pairs], [f for _, f in pairs]))
        return result

    def _count_other_order(self, chunk: Chunk, found: list[Found]) -> None:
        """Tell the policy how many points not found here are stored in another order."""
        assert self._other_order is not None
        assert self._policy is not None
        taken = {pos for _, req, _ in found for pos in req}
        for name, req, _ in self._other_order.locate_product(chunk.axes, chunk.bins):
            count = sum(1 for pos in req if pos not in taken)
            if count:
                self._policy.refused_order(self._other_order.records[name].axes, count)

    def _allowed(self, entry: Found) -> Found:
        """``entry`` without the points its file's code may not serve."""
        name, req, files = entry
        if self._policy is None or self.index.records[name].code != MIXED_CODE:
            return entry
        codes = self._codes(name)
        if codes is None:
            return entry
        pairs = [(r, f) for r, f in zip(req, files, strict=True) if self._code_ok(codes[f])]
        return name, [r for r, _ in pairs], [f for _, f in pairs]

    def mark(
        self,
        chunk: Chunk,
        digests: Callable[[], Sequence[bytes]],
        product: bool,
        outputs: list[object],
        points: Sequence[object],
        found_marker: object,
    ) -> int:
        """Like :meth:`fill` without loading outputs (``status``): set ``found_marker`` where
        a point is stored and may serve; count them for the policy as :meth:`fill` does.
        Each file is checked as :meth:`fill` would find it (read whole, checksum verified
        and matching its record, nothing unpickled), so both count the same points."""
        count = 0
        for _attempt in range(MAX_LOOKUPS):
            retry = False
            for name, req_positions, file_positions in self.locate(chunk, digests, product, points):
                usable = self._usable(name)
                if usable is _STALE or usable is None:
                    retry = usable is _STALE or self._forget(name) or retry
                    continue
                count += self._mark_file(name, req_positions, file_positions, outputs, found_marker)
            if not retry:
                break
        return count

    def _usable(self, name: str) -> ChunkRecord | bool | _Stale | None:
        """Whether a file would serve its points: truthy if so, None if unusable, ``_STALE``
        if its record was out of date (then rebuilt). Loads it only when its checksum is
        not its record's."""
        if name in self._loaded:
            return self._loaded[name][0]
        if name not in self._intact:
            checksum = self._pset.intact(name)
            if checksum is None:
                return None
            if checksum != self.index.records[name].checksum:
                return self._record(name)
            self._intact.add(name)
        return True

    def _mark_file(
        self,
        name: str,
        req_positions: Sequence[int],
        file_positions: Sequence[int],
        outputs: list[object],
        found_marker: object,
    ) -> int:
        """Mark a file's points not found yet; count them for the policy."""
        code = self.index.records[name].code
        codes = self._codes(name) if code == MIXED_CODE else None
        policy = self._policy
        if codes is None and _mark_run(outputs, req_positions, found_marker):
            if policy is not None and code is not None and code != policy.code:
                policy.served([code] * len(req_positions))  # else it counts nothing
            return len(req_positions)  # the usual case: one run, one code
        served = []
        for req_pos, file_pos in zip(req_positions, file_positions, strict=True):
            if outputs[req_pos] is MISSING:
                outputs[req_pos] = found_marker
                served.append(code if codes is None else codes[file_pos])
        if policy is not None:
            policy.served(served)
        return len(served)

    def _code_ok(self, code: str | None) -> bool:
        return self._policy is None or self._policy.code_allowed(code)

    def _codes(self, name: str) -> tuple[str | None, ...] | None:
        """Per-point codes of a mixed-code file, from its loaded record or its meta."""
        if name in self._loaded:
            record = self._loaded[name][0]
            return None if record is None else record.point_codes
        if name not in self._peeked:
            meta = self._pset.peek(name)
            self._peeked[name] = None if meta is None else meta.point_codes
        return self._peeked[name]

    def _enumerated_in_products(
        self, index: PointIndex, chunk: Chunk, points: Sequence[object]
    ) -> list[Found]:
        """Enumerated points that are tuples of the chunk's own bin values (the very same
        objects), looked up in product files by their place in the product of the bins."""
        places = _product_places(points, chunk.bins)
        if not places:
            return []
        found: list[Found] = []
        for name, req, files in index.locate_product(chunk.axes, chunk.bins):
            pairs = [(places[r], f) for r, f in zip(req, files, strict=True) if r in places]
            if pairs:
                found.append((name, [p for p, _ in pairs], [f for _, f in pairs]))
        return found

    def fill(
        self,
        chunk: Chunk,
        digests: Callable[[], Sequence[bytes]],
        product: bool,
        outputs: list[object],
        points: Sequence[object] = (),
        codes: list[str | None] | None = None,
    ) -> int:
        """Copy stored outputs into ``outputs`` (positions still ``MISSING``); return how
        many points were filled. ``codes``, when given, receives at each filled position
        the fingerprint of the code that computed that output.

        When a file turns out to have been rewritten since its index record was made (a
        partial chunk completed by another run), its record is rebuilt from the file and
        the chunk is looked up once more; when a file turns out damaged or unreadable, its
        points are looked up in the other files that hold them.
        """
        filled = 0
        for _attempt in range(MAX_LOOKUPS):
            retry = False
            for name, req_positions, file_positions in self.locate(chunk, digests, product, points):
                record = self._record(name)
                if record is _STALE:  # its record was rebuilt: look again
                    retry = True
                    continue
                if record is None:  # damaged or unreadable: its points may be elsewhere
                    retry = self._forget(name) or retry
                    continue
                if not self._confirmed(record, chunk, file_positions, digests, req_positions):
                    # The index record lists other points than the file: describe the file.
                    self._rebuild(name)
                    retry = True
                    continue
                filled += self._copy(record, req_positions, file_positions, outputs, codes)
            if not retry:
                break
        return filled

    def _confirmed(
        self,
        record: ChunkRecord,
        chunk: Chunk,
        file_positions: Sequence[int],
        digests: Callable[[], Sequence[bytes]],
        req_positions: Sequence[int],
    ) -> bool:
        """Whether a file's listed points are the requested ones it is about to serve. A
        file stored without some axes (an axis at its default) holds them without those
        axes' values: compared with the requested points so reduced."""
        if record.points is None:
            return True  # a product file: its bins were checked against its record
        if len(record.axes) == len(chunk.axes) or not record.axes:
            return _same_points(record.points, file_positions, digests, req_positions)
        kept = [chunk.axes.index(axis) for axis in record.axes if axis in chunk.axes]
        steps = strides([len(values) for values in chunk.bins])
        for r, f in zip(req_positions, file_positions, strict=True):
            bins = zip(steps, chunk.bins, strict=True)
            place = [(r // step) % len(values) for step, values in bins]
            reduced = tuple(chunk.bins[k][place[k]] for k in kept)
            if f >= len(record.points) or point_digest(record.points[f]) != point_digest(reduced):
                return False
        return True

    def _copy(
        self,
        record: ChunkRecord,
        req_positions: Sequence[int],
        file_positions: Sequence[int],
        outputs: list[object],
        codes: list[str | None] | None,
    ) -> int:
        """Copy the outputs this call may serve; count them for the policy."""
        served: list[str | None] = []
        stored = record.outputs
        for req_pos, file_pos in zip(req_positions, file_positions, strict=True):
            if outputs[req_pos] is not MISSING:
                continue
            code = record.code_at(file_pos)
            if not self._code_ok(code):
                continue
            outputs[req_pos] = stored[file_pos]
            served.append(code)
            if codes is not None:
                codes[req_pos] = code
        if self._policy is not None:
            self._policy.served(served)
        return len(served)

    def _record(self, name: str) -> ChunkRecord | _Stale | None:
        """A stored file's record (None if unusable, ``_STALE`` if its index record was
        out of date), kept in an LRU bounded in bytes."""
        if name in self._loaded:
            self._loaded.move_to_end(name)
            return self._loaded[name][0]
        started = time.perf_counter()
        record = self._pset.load(name)
        if self._diag is not None:
            self._diag.load_time += time.perf_counter() - started
        weight = 0
        if record is not None:
            if not self.index.records[name].describes(record):
                # Replaced after its index record was written, or the record is wrong:
                # describe the file as it is.
                self._replace_record(name, self._pset.describe(name, record))
                return _STALE
            weight = record.stored_bytes + OUTPUT_BYTES * len(record.outputs)
        self._loaded[name] = (record, weight)
        self._loaded_bytes += weight
        while self._loaded_bytes > LRU_BYTES and len(self._loaded) > 1:
            _, (_, dropped) = self._loaded.popitem(last=False)
            self._loaded_bytes -= dropped
        return record

    def _forget(self, name: str) -> bool:
        """Drop an unusable file from the index (its points are looked up elsewhere);
        False when it was not there."""
        if name not in self.index.records:
            return False
        records = dict(self.index.records)
        del records[name]
        self._index = PointIndex(records)
        return True

    def _rebuild(self, name: str) -> None:
        """Replace a record found wrong while serving by the description of its file."""
        _, weight = self._loaded.pop(name, (None, 0))
        self._loaded_bytes -= weight
        record = self._pset.load(name)
        if record is None:
            self._forget(name)
        else:
            self._replace_record(name, self._pset.describe(name, record))

    def _replace_record(self, name: str, record: IndexRecord) -> None:
        records = dict(self.index.records)
        if (
            record.code == MIXED_CODE
            or self._policy is None
            or self._policy.code_allowed(record.code)
        ):
            records[name] = record
        else:
            records.pop(name, None)  # rewritten by other code: not served here
        self._index = PointIndex(records)
