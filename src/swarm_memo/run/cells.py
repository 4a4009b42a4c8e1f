"""Claims that cover points: differently-binned runs of one params set keep apart.

Claims used to be per chunk name, and two runs with different ``memo_chunk_spec`` name
their chunks differently: neither saw the other's claims. A run now claims *cells* of a
claim grid recorded with the params set (``<set-id>/claim_grid.json``, ``{axis: bin
size}``), created by the first run that claims anything there, with its own bin sizes.
A chunk's cells are the grid bins its points fall in, by position along each axis of the
request; a run whose bins are the grid's claims one cell per chunk (as cheap as before),
another claims every cell its chunk overlaps (all of them, or none: a chunk claimed in
part waits like a chunk claimed elsewhere). Cells shared by two chunks of one run are
counted, and released with the last of them.

Positions are those of the request's axis lists, so runs sweeping different lists (a
subset, an insert) may cover other points with one cell: like every claim, a cell only
steers work, correctness never depends on it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from typing import TYPE_CHECKING, Any

from swarm_memo.cache.claims import ChunkClaims, claims_for
from swarm_memo.errors import StoreError

if TYPE_CHECKING:
    from swarm_memo.identity.grid import Chunk
    from swarm_memo.run.plan import RunPlan


def run_claims(plan: RunPlan) -> ChunkClaims:
    """The claims of one run of ``plan``: cells of the params set's claim grid."""
    config = plan.config
    inner = claims_for(config.store, plan.pset.set_id, config.claim_timeout)
    return CellClaims(inner, plan)


def chunk_claim_names(plan: RunPlan, name: str) -> list[str]:
    """The claim names chunk ``name`` of ``plan`` takes (records the claim grid if there is
    none): for tools and tests that stand in for another run holding a chunk."""
    from swarm_memo.cache.claims import Claims

    return CellClaims(Claims(None), plan)._cells(name)


class CellClaims:
    """Chunk claims of one run, taken as the claim-grid cells each chunk covers."""

    def __init__(self, inner: ChunkClaims, plan: RunPlan) -> None:
        self._inner = inner
        self._plan = plan
        self._lock = threading.Lock()
        self._chunks: dict[str, Chunk] | None = None
        self._grid: dict[str, int] | None = None
        self._list_ids: dict[str, str] = {}  # axis -> digest of its value list (any bins)
        self._counts: dict[str, int] = {}  # cell -> chunks of this run holding it
        self._holding: dict[str, list[str]] = {}  # chunk name -> its cells

    @property
    def contended(self) -> bool:
        return self._inner.contended

    @contended.setter
    def contended(self, value: bool) -> None:
        self._inner.contended = value

    @property
    def held(self) -> int:
        return len(self._holding)

    @property
    def between_processes(self) -> bool:
        return self._inner.between_processes

    def try_claim(self, name: str) -> bool:
        cells = self._cells(name)
        with self._lock:
            if name in self._holding:
                return True
            taken: list[str] = []
            for cell in cells:
                if self._counts.get(cell):
                    continue  # another chunk of this run holds it
                if not self._inner.try_claim(cell):
                    for other in taken:
                        self._inner.release(other)
                    return False
                taken.append(cell)
            for cell in cells:
                self._counts[cell] = self._counts.get(cell, 0) + 1
            self._holding[name] = cells
        return True

    def release(self, name: str) -> None:
        with self._lock:
            for cell in self._holding.pop(name, []):
                self._counts[cell] -= 1
                if not self._counts[cell]:
                    del self._counts[cell]
                    self._inner.release(cell)

    def release_all(self) -> None:
        with self._lock:
            self._holding.clear()
            self._counts.clear()
        self._inner.release_all()

    # ------------------------------------------------------------------ cells

    def _cells(self, name: str) -> list[str]:
        """The claim-grid cells chunk ``name`` covers (claim names, sorted)."""
        if self._chunks is None:
            self._chunks = {n: chunk for chunk, n in self._plan.named_chunks}
        grid = self._claim_grid()
        chunk = self._chunks[name]
        spans = []
        for axis, i in chunk.origin:
            size = grid.get(axis.name, axis.bin_size)
            first = i * axis.bin_size
            last = min(first + axis.bin_size, len(axis.values)) - 1
            # Cells belong to the axis's whole value list: runs sweeping other lists (a
            # subset, an insert) never share a cell by position alone.
            values = self._list_ids.get(axis.name)
            if values is None:  # from the axis's packed values: no encoding per value
                values = self._list_ids[axis.name] = axis.list_digest[:8].hex()
            spans.append([(axis.name, values, k) for k in range(first // size, last // size + 1)])
        return sorted(_cell_name(cell) for cell in itertools.product(*spans))

    def _claim_grid(self) -> dict[str, int]:
        """The params set's claim grid, recorded with this run's bins if there is none."""
        if self._grid is None:
            own = {axis.name: axis.bin_size for axis in self._plan.grid.axes}
            store, key = self._plan.config.store, self._plan.pset.paths.claim_grid
            try:
                data = store.read(key)
                if data is None:  # the first run to claim here records its bins
                    created = store.write_if_absent(key, _encode(own), durable=False)
                    data = _encode(own) if created else store.read(key)
            except (OSError, StoreError):  # e.g. read-only: the run reports it when it writes
                data = None
            self._grid = {**own, **_decode(data or b"")}
        return self._grid


def _cell_name(cell: tuple[tuple[str, str, int], ...]) -> str:
    text = json.dumps(sorted(cell), separators=(",", ":"))
    return "cell-" + hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _encode(grid: dict[str, int]) -> bytes:
    return json.dumps(grid, sort_keys=True).encode()


def _decode(data: bytes) -> dict[str, int]:
    """A stored claim grid; an unreadable one counts as none (claims only steer work)."""
    try:
        grid: Any = json.loads(data)
    except ValueError:
        return {}
    if not isinstance(grid, dict):
        return {}
    return {k: v for k, v in grid.items() if isinstance(v, int) and v >= 1}
