"""The one pipeline behind ``run``, ``run_streaming`` and ``load``: plan -> load -> execute
-> store -> merge.

1. Chunks whose own file exists are exact hits: ``run`` and ``load`` read them (nothing
   else is read; the point index is untouched), ``run_streaming`` only counts them.
2. Every other chunk becomes a job, in chunk order and lazily (memory stays bounded):
   its points are enumerated and filled from other chunk files through the point index.
3. Jobs with points left are claimed (other processes then compute other chunks) and
   executed by the engine; a chunk claimed elsewhere is put off to the end and usually
   loaded by then. Each chunk is written as soon as it is complete, then collated.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ._cache import logger
from ._claims import Claims
from ._codec import ChunkRecord
from ._defaults import default_merge
from ._diagnostics import Diagnostics, Status
from ._grid import Chunk, reorder_product
from ._plan import RunPlan
from ._progress import Progress
from ._reuse import Reuse
from ._scheduler import MISSING, ChunkJob, Engine, ExecPlan
from ._worker import PointFailure
from ._writer import ChunkWriter
from .errors import SpecError

if TYPE_CHECKING:
    from ._memo import SwarmMemo

RELIST_SECONDS = 0.1
"""How stale the listing may be that tells whether another process wrote a chunk."""


class Pipeline:
    """Runs one request in one of three modes: "run", "stream" or "load"."""

    def __init__(
        self,
        memo: SwarmMemo,
        plan: RunPlan,
        mode: str,
        pairs: bool = False,
        started: float | None = None,
    ) -> None:
        self.started = time.perf_counter() if started is None else started  # planning included
        self.memo = memo
        self.plan = plan
        self.mode = mode
        self.pairs = pairs  # collect (point, output) pairs instead of collate/merge
        self.diag = Diagnostics(total_chunks=len(plan.named_chunks))
        self.values: dict[int, Any] = {}
        self.claims = Claims(memo.store.lock_path(f"{plan.pset.set_id}/claims.lock"))
        self._stored: set[str] = set()
        self._listed: set[str] = set()
        self._listed_at = 0.0
        self.writer = ChunkWriter()

    def execute(self) -> tuple[Any, Diagnostics]:
        diag, plan = self.diag, self.plan
        self._stored = plan.pset.stored_names()
        self._listed, self._listed_at = self._stored, time.monotonic()
        missing = [(c, n) for c, n in plan.named_chunks if not self._exact_hit(c, n)]
        expected = sum(chunk.product_size for chunk, _ in missing)
        verbose = self.memo.verbose if self.mode != "load" else 0
        try:
            with Progress(verbose, diag.cached_points, expected) as bar:
                jobs = self._jobs(missing, Reuse(plan.pset, self._stored, diag), bar)
                if self.mode == "load":
                    self._collect_stored(jobs)
                else:
                    for job in self._executed(jobs, bool(missing), bar):
                        if self.mode == "run":  # a copy: the writer may still be pickling
                            self._keep(job.index, list(job.outputs), job.points)
        except BaseException:
            self.writer.finish(raising=False)  # finished chunks still reach the disk
            raise
        finally:
            self.claims.release_all()
            plan.pset.close()
        diag.total_points = diag.cached_points + diag.executed_points + diag.missing_points
        diag.quarantined_files = len(plan.pset.quarantined)
        output = None
        if self.mode != "stream":
            merge = default_merge if self.pairs else self.memo.merge_fn
            output = merge([self.values[i] for i in sorted(self.values)])
        diag.wall_time = time.perf_counter() - self.started
        if verbose:
            print(f"swarm-memo: {diag.summary()}", file=sys.stderr)
        return output, diag

    # ------------------------------------------------------------------ exact hits

    def _exact_hit(self, chunk: Chunk, name: str) -> bool:
        """Serve a chunk from its own file if it has a usable one."""
        if name not in self._stored:
            return False
        if self.mode == "stream":
            count = self.plan.point_count(chunk)
        else:
            outputs = self._load_exact(chunk, name)
            if outputs is None:
                return False
            self._keep(chunk.index, outputs)
            count = len(outputs)
        self.diag.cached_chunks += 1
        self.diag.cached_points += count
        return True

    def _load_exact(self, chunk: Chunk, name: str) -> list[Any] | None:
        """Outputs of a chunk's own file in request order, or None when unusable."""
        load_started = time.perf_counter()
        record = self.plan.pset.load(name, chunk.key)
        self.diag.load_time += time.perf_counter() - load_started
        if record is None:
            return None
        if record.points is None and self.plan.product:
            lengths = {axis: len(values) for axis, values in chunk.key}
            return reorder_product(record.outputs, lengths, record.axes, chunk.axes)
        if record.resolved_points() == self.plan.points(chunk):
            return record.outputs
        return None  # stored for other points (enumerate_points changed): reassemble

    # ------------------------------------------------------------------ jobs

    def _jobs(
        self, missing: list[tuple[Chunk, str]], reuse: Reuse, bar: Progress
    ) -> Iterator[ChunkJob | None]:
        """Jobs in chunk order; chunks claimed by another process come last.

        None means "only chunks claimed elsewhere are left: ask again soon"; it never
        blocks, so this run keeps finishing (and releasing) its own claimed chunks.
        """
        deferred: deque[tuple[Chunk, str]] = deque()
        for chunk, name in missing:
            job = self._job(chunk, name, reuse, bar)
            if job is None:
                deferred.append((chunk, name))
            else:
                yield job
        while deferred:
            chunk, name = deferred.popleft()
            job = self._job(chunk, name, reuse, bar)
            if job is None:
                deferred.append((chunk, name))
                yield None  # another process is computing it
            else:
                yield job

    def _job(self, chunk: Chunk, name: str, reuse: Reuse, bar: Progress) -> ChunkJob | None:
        """A chunk to complete, or None while another process holds its claim."""
        if self.mode != "load":
            if not self.claims.try_claim(name):
                return None
            if name not in self._stored and self._written_elsewhere(name):
                job = self._finished_elsewhere(chunk, name, bar)
                if job is not None:
                    return job
        points = self.plan.points(chunk)
        digests = self.plan.point_digests(chunk, points)
        bar.adjust_total(len(points) - chunk.product_size)
        outputs = [MISSING] * len(points)
        reused = reuse.fill(chunk, digests, outputs)
        bar.skip(reused)
        if reused:
            todo = [i for i, output in enumerate(outputs) if output is MISSING]
        else:
            todo = list(range(len(points)))
        return ChunkJob(chunk.index, name, points, outputs, todo, reused, digests)

    def _written_elsewhere(self, name: str) -> bool:
        """Whether another process wrote this chunk since the run listed the cache.

        Once another process's claims were seen, ask the file system for each chunk;
        before that, a listing at most ``RELIST_SECONDS`` old answers (a process that ran
        ahead of this one leaves finished chunks and no claims to see).
        """
        if self.claims.contended:
            return self.plan.pset.has_chunk(name)
        now = time.monotonic()
        if now - self._listed_at > RELIST_SECONDS:
            self._listed = self.plan.pset.stored_names()
            self._listed_at = now
        return name in self._listed

    def _finished_elsewhere(self, chunk: Chunk, name: str, bar: Progress) -> ChunkJob | None:
        """Another process wrote this chunk after we listed the cache: use its file."""
        self.claims.release(name)
        self._stored.add(name)
        if self.mode == "stream":
            outputs: list[Any] = []
            count = self.plan.point_count(chunk)
        else:
            loaded = self._load_exact(chunk, name)
            if loaded is None:
                return None
            outputs, count = loaded, len(loaded)
        bar.adjust_total(-chunk.product_size)
        bar.skip(count)
        return ChunkJob(chunk.index, name, [], outputs, [], cached=count)

    # ------------------------------------------------------------------ load

    def _collect_stored(self, jobs: Iterator[ChunkJob | None]) -> None:
        """``load``: keep whatever points are stored; count the rest as missing."""
        diag = self.diag
        for job in jobs:
            if job is None:  # pragma: no cover - load takes no claims, so never waits
                continue
            diag.reused_points += job.reused
            diag.cached_points += job.reused
            if job.missing:
                diag.missing_chunks += 1
                diag.missing_points += len(job.missing)
                if job.reused:
                    self._keep(job.index, job.outputs, job.points, partial=True)
            else:
                diag.cached_chunks += 1
                self._keep(job.index, job.outputs, job.points)

    def _keep(
        self,
        index: int,
        outputs: list[Any],
        points: list[Any] | None = None,
        partial: bool = False,
    ) -> None:
        """Collate a finished chunk (points missing from a partial one are left out)."""
        if not self.pairs:
            if partial:
                outputs = [o for o in outputs if o is not MISSING]
            self.values[index] = self.memo.collate_fn(outputs)
            return
        if not points:  # exact hit or a chunk another process wrote: enumerate its points
            points = self.plan.points(self.plan.named_chunks[index][0])
        self.values[index] = [
            (p, o)
            for p, o in zip(points, outputs)
            if o is not MISSING and not isinstance(o, PointFailure)
        ]

    # ------------------------------------------------------------------ execute + store

    def _check_can_execute(self) -> None:
        if self.plan.exec_fn is None:
            raise SpecError(
                "points are missing from the cache but this SwarmMemo has no exec_fn; pass "
                "exec_fn=... or call it through run_wrap()/streaming_wrap()"
            )

    def _executed(
        self, jobs: Iterator[ChunkJob | None], any_missing: bool, bar: Progress
    ) -> Iterator[ChunkJob]:
        """Execute what the jobs miss; write each chunk as it completes, then yield it."""
        if not any_missing:
            return
        memo = self.memo
        memo.store.init_root()
        self.plan.pset.clean_temp()
        exec_plan = ExecPlan(
            self.plan.exec_fn,  # type: ignore[arg-type]  # checked before the first submit
            self.plan.exec_params,
            memo.exec_chunk_size,
            skip_errors=memo.on_error == "skip",
            on_progress=bar.advance,
        )
        engine = Engine(memo._executors.backend, exec_plan, self.diag, self._check_can_execute)
        for job in engine.run(jobs):
            self._count(job)
            if not job.cached:
                self._store(job)
            yield job
        self.writer.finish()

    def _count(self, job: ChunkJob) -> None:
        diag = self.diag
        diag.reused_points += job.reused
        diag.cached_points += job.reused + job.cached
        if job.missing:
            diag.executed_chunks += 1
            diag.executed_points += len(job.missing)
        else:
            diag.cached_chunks += 1

    def _store(self, job: ChunkJob) -> None:
        """Hand a finished chunk to the writer; its claim is released once it is on disk."""
        if job.failed:
            logger.warning("swarm-memo: chunk %s has failed points; not stored", job.name)
            self.claims.release(job.name)
            return
        plan = self.plan
        chunk = plan.named_chunks[job.index][0]
        points = None if plan.product else job.points
        record = ChunkRecord(
            plan.pset.set_id,
            plan.pset.cache_version,
            chunk.key,
            plan.grid.axis_names,
            points,
            job.outputs,
        )

        def write() -> float:
            started = time.perf_counter()
            try:
                plan.pset.save(job.name, record, job.digests)
            finally:
                # Released here, not in the driver: a driver waiting on another
                # process's claim must not hold back the claims of its own written chunks.
                self.claims.release(job.name)
            return time.perf_counter() - started

        def written(seconds: float) -> None:
            self.diag.write_time += seconds
            self.diag.stream_flushes += 1
            if self.memo.verbose >= 2:
                logger.info(
                    "swarm-memo: wrote chunk %d (%d points) as %s",
                    job.index,
                    len(job.outputs),
                    job.name,
                )

        self.writer.submit(write, written)


def compute_status(plan: RunPlan) -> Status:
    """Count stored and missing points without executing or loading any output."""
    status = Status(total_chunks=len(plan.named_chunks))
    stored = plan.pset.stored_names()
    reuse = Reuse(plan.pset, stored)
    for chunk, name in plan.named_chunks:
        if name in stored:
            count = found = plan.point_count(chunk)
        elif plan.product:
            count = chunk.product_size
            found = sum(len(req) for _, req, _ in reuse.locate(chunk, None))
        else:
            points = plan.points(chunk)
            count = len(points)
            digests = plan.point_digests(chunk, points)
            found = sum(len(req) for _, req, _ in reuse.locate(chunk, digests))
        status.total_points += count
        status.cached_points += found
        if found == count:
            status.cached_chunks += 1
        else:
            status.missing_chunks += 1
            status.missing.append(chunk.split_spec)
    status.missing_points = status.total_points - status.cached_points
    plan.pset.close()  # keep index records rebuilt on the way
    return status
