"""Exact hits: a chunk served from its own file, when the file is intact, complete, holds
exactly the requested points and outputs this call may serve.

With a custom ``enumerate_points``, a file stamped with the enumerator's current
fingerprint (and written in this call's axis order) lists exactly what it returns for the
file's sub-spec: it is served without calling the enumerator, as a stored output stands
for ``exec_fn`` of the same fingerprint. Any other file is served only once the points
enumerated now equal the file's by canonical encoding.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from swarm_memo.cache.codec import ChunkRecord
from swarm_memo.cache.serving import ServePolicy
from swarm_memo.core.diagnostics import Diagnostics
from swarm_memo.identity.grid import Chunk
from swarm_memo.run.plan import ChunkPoints, RunPlan
from swarm_memo.run.sinks import Sink


class ExactHits:
    """Serves chunks of one call from their own files (see the module docstring)."""

    def __init__(self, plan: RunPlan, sink: Sink, policy: ServePolicy, diag: Diagnostics) -> None:
        self.plan = plan
        self.sink = sink
        self.policy = policy
        self.diag = diag

    def serve(self, chunk: Chunk, name: str) -> int | None:
        """How many points a chunk's own file serves (handed to the sink when it wants
        outputs), or None when it is no exact hit."""
        if self.sink.wants_outputs:
            return self._load(chunk, name)
        return self._peek(chunk, name)

    def chunk_points(self, chunk: Chunk) -> tuple[ChunkPoints | None, bool]:
        """A chunk's points (None for the default points, built only when needed) and
        whether they are the product of its bins."""
        return (None, True) if self.plan.product else self.plan.chunk_points(chunk)

    def _trusted(self, enumerator: str | None, axes: Sequence[str]) -> bool:
        """Whether a file's points are what this call's custom enumerator returns for its
        sub-spec without calling it: the file is stamped with the same enumerator
        fingerprint, and its sub-spec was given in this call's axis order (its key digest
        is checked when the file is read)."""
        code = self.plan.enumerator_code
        return code is not None and enumerator == code and self.policy.same_axes(axes)

    def _peek(self, chunk: Chunk, name: str) -> int | None:
        """How many points a chunk's own file serves when no output is wanted, or None:
        intact, holding this chunk (checksum and key digest checked, nothing unpickled:
        what a run loading it would accept), complete, of code that may serve, holding
        this call's points: a product in this call's axis order, or the points of a
        custom enumerator with the file's fingerprint (not called). Other points a
        custom enumerator lists are compared with the file's after loading it."""
        meta = self.plan.pset.check(name, chunk)
        if meta is None:
            return None
        trusted = self._trusted(meta.enumerator, meta.axes)
        listed = None if trusted else self.chunk_points(chunk)
        if listed is not None and not listed[1]:
            return self._load(chunk, name, listed)  # points to compare with the file's
        count = chunk.product_size if meta.product else meta.points
        if count is None or meta.partial or not (meta.product or trusted):
            return None
        if not self.policy.same_axes(meta.axes) or not self._codes_ok(meta.code, meta.point_codes):
            return None
        self._served(meta.code, meta.point_codes, count)
        return count

    def _load(
        self, chunk: Chunk, name: str, listed: tuple[ChunkPoints | None, bool] | None = None
    ) -> int | None:
        """Serve the outputs of a chunk's own file in request order to the sink (when it
        wants them) and count them; None when the file is unusable, partial, holds other
        points or outputs this call may not serve. ``listed``: the chunk's points, when
        already enumerated."""
        load_started = time.perf_counter()
        record = self.plan.pset.load(name, chunk)
        self.diag.load_time += time.perf_counter() - load_started
        if record is None:
            return None
        if record.partial or not self._codes_ok(record.code, record.point_codes):
            return None
        if self._trusted(record.enumerator, record.axes):
            points: Sequence[object] | None = record.points  # None: the product of its bins
        else:
            same, points = self._same_points(chunk, record, listed)
            if not same:
                return None
        self._served(record.code, record.point_codes, len(record.outputs))
        if self.sink.wants_outputs:
            self.sink.take(chunk, points, record.outputs, partial=False)
        return len(record.outputs)

    def _codes_ok(self, code: str | None, point_codes: Sequence[str | None] | None) -> bool:
        """Whether a file's outputs (computed by ``code``, or per point by ``point_codes``)
        may serve this call."""
        if point_codes is None:
            return self.policy.code_allowed(code)
        return self.policy.codes_allowed(point_codes)

    def _served(
        self, code: str | None, point_codes: Sequence[str | None] | None, count: int
    ) -> None:
        """Count a file's ``count`` outputs as served (one code each): a file of one code,
        the usual one, costs no list of a code per output."""
        if point_codes is not None:
            self.policy.served(point_codes)
        elif code is not None and code != self.policy.code:
            self.policy.served([code] * count)

    def _same_points(
        self,
        chunk: Chunk,
        record: ChunkRecord,
        listed: tuple[ChunkPoints | None, bool] | None = None,
    ) -> tuple[bool, ChunkPoints | None]:
        """Whether a file holds this call's points of ``chunk`` in its order (enumerated
        now, unless ``listed``), and those points (None for the default product)."""
        points, product = self.chunk_points(chunk) if listed is None else listed
        if record.points is None:
            if not self.policy.same_axes(record.axes):
                return False, None  # Reuse counts its points for the warning
            if product:
                return True, points
        if points is None:
            points = self.plan.points(chunk)
        wanted = self.plan.point_digests(chunk, points)
        # other points: stored for another enumerator
        return self.plan.point_digests(chunk, record.resolved_points()) == wanted, points
