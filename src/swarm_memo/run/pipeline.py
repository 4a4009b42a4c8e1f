"""The one path through the engine: plan -> serve stored chunks -> reuse points -> execute
-> store -> sink. ``run``, ``run_streaming``, ``load``, ``status``, the decorators and the
frames all call :func:`execute`; they differ only in their sink and in ``compute``.

1. Chunks whose own file is intact, complete and holds exactly the requested points are
   exact hits: read (when the sink wants outputs) or only checked (header, size, meta).
2. Every other chunk becomes a job, in the order the chunk order decides, lazily (memory
   stays bounded): its points are enumerated and filled from other chunk files through the
   point index. Points are compared by canonical encoding, never ``==``.
3. With ``compute``, jobs with points left are claimed (other runs then compute other
   chunks) and executed by the engine; a chunk claimed elsewhere is put off to the end and
   usually loaded by then. Each chunk is written as soon as it is complete. Without
   ``compute`` (reads), nothing is claimed, executed or written.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Final

from swarm_memo.cache.codec import ChunkRecord
from swarm_memo.cache.params_set import logger
from swarm_memo.cache.reuse import Reuse
from swarm_memo.cache.serving import ServePolicy
from swarm_memo.core.diagnostics import Diagnostics
from swarm_memo.core.jobs import MISSING, ChunkJob
from swarm_memo.errors import RunInterrupted, SpecError
from swarm_memo.execution.progress import Progress
from swarm_memo.execution.scheduler import Engine, ExecPlan, StopRequested
from swarm_memo.execution.stop import StopRequest, stop_on_signals
from swarm_memo.execution.writer import ChunkWriter
from swarm_memo.identity.grid import Chunk
from swarm_memo.run.cells import run_claims
from swarm_memo.run.hits import ExactHits
from swarm_memo.run.plan import ChunkPoints, RunPlan
from swarm_memo.run.records import chunk_record, computed_positions, unpicklable_error
from swarm_memo.run.requests_log import RequestLog
from swarm_memo.run.sinks import Sink

CLAIMS_AHEAD = 256
"""Chunks a run may hold claimed but unwritten at once (at least four exec chunks' worth):
a process's record locks slow down as it holds more, and tiny chunks would otherwise
claim the whole window."""
FOUND: Final = object()
"""Placeholder for a point found in the cache whose output is not loaded (status,
streaming: no sink wants it)."""


def execute(plan: RunPlan, sink: Sink, *, started: float | None = None) -> Diagnostics:
    """Serve every chunk of ``plan`` to ``sink``; with ``compute``, execute what is missing.

    ``started`` is when the call began (planning included in ``wall_time``).
    """
    return _Run(plan, sink, plan.access.computes, started).execute()


class _Run:
    def __init__(self, plan: RunPlan, sink: Sink, compute: bool, started: float | None) -> None:
        self.started = time.perf_counter() if started is None else started
        self.plan = plan
        self.config = plan.config
        self.sink = sink
        self.compute = compute
        self.diag = Diagnostics(total_chunks=len(plan.named_chunks))
        self.claims = run_claims(plan)
        self.stored: set[str] = set()
        self._next_refresh = 0.0  # when _refresh may list the chunk files again
        self._written: set[str] = set()  # chunk files this run wrote
        self.policy = ServePolicy(
            plan.code, self.config.on_code_change, plan.function_name, plan.grid.axis_names
        )
        self.hits = ExactHits(plan, sink, self.policy, self.diag)
        store = self.config.store
        self.writer = ChunkWriter(background=store.background_writes) if compute else None
        self.request_log = RequestLog(plan)  # written only once a point is computed

    # ------------------------------------------------------------------ the call

    def execute(self) -> Diagnostics:
        diag, plan = self.diag, self.plan
        self.stored = plan.pset.stored_names()
        named = plan.named_chunks
        order = self.config.chunk_order.order(plan.shape, lambda: [c.split_spec for c, _ in named])
        if self.compute and self.config.share is not None:  # a launch's task: its share first
            order = self.config.share.arrange(order, helping=self.claims.between_processes)
        missing = [named[i] for i in order if not self._exact_hit(*named[i])]
        expected = sum(chunk.product_size for chunk, _ in missing)
        verbose = self.config.verbose if self.compute else 0
        reuse = Reuse(plan.pset, self.stored, diag, self.policy, self.config.key_defaults)
        self.bar = bar = Progress(verbose, diag.cached_points, expected)
        try:
            with bar:
                jobs = self._jobs(missing, reuse, bar)
                if self.compute:
                    self._execute_jobs(jobs, bool(missing), bar)
                else:
                    self._collect(jobs)
        except BaseException as exc:
            if self.writer is not None:
                self.writer.finish(raising=False)  # finished chunks still reach the disk
            self.request_log.end(diag, exc)
            raise
        finally:
            self.claims.release_all()
            plan.pset.close()
        self.request_log.end(diag, None)
        diag.total_points = diag.cached_points + diag.executed_points + diag.missing_points
        diag.quarantined_files = len(plan.pset.quarantined)
        diag.wall_time = time.perf_counter() - self.started
        self.policy.warn(diag.total_points)
        bar.finish(diag.summary())
        return diag

    # ------------------------------------------------------------------ exact hits

    def _exact_hit(self, chunk: Chunk, name: str) -> bool:
        """Serve a chunk from its own file if it is intact, complete and exact."""
        if name not in self.stored:
            return False
        count = self.hits.serve(chunk, name)
        if count is None:
            return False
        self.diag.cached_chunks += 1
        self.diag.cached_points += count
        return True

    # ------------------------------------------------------------------ jobs

    def _jobs(
        self, missing: list[tuple[Chunk, str]], reuse: Reuse, bar: Progress
    ) -> Iterator[ChunkJob | None]:
        """Jobs in chunk order; chunks claimed by another run come last.

        None means "only chunks claimed elsewhere are left: ask again soon"; it never
        blocks, so this run keeps finishing (and releasing) its own claimed chunks. After
        ``claim_timeout`` seconds a chunk still claimed elsewhere is computed here.
        """
        deferred: deque[tuple[Chunk, str, float]] = deque()
        ahead = max(CLAIMS_AHEAD, 4 * self.config.exec_chunk_size)
        for chunk, name in missing:
            while self.compute and self.claims.held > ahead:
                yield None  # let written chunks release their claims first
            job = self._job(chunk, name, reuse, bar)
            if job is None:
                deferred.append((chunk, name, time.monotonic()))
            else:
                yield job
        timeout = self.config.claim_timeout
        while deferred:
            bar.waiting(len(deferred))
            chunk, name, since = deferred.popleft()
            overdue = timeout is not None and time.monotonic() - since > timeout
            job = self._job(chunk, name, reuse, bar, force=overdue, refresh=True)
            if job is None:
                deferred.append((chunk, name, since))
                yield None  # another run is computing it
            else:
                if overdue:
                    text = (
                        f"chunk {name} was claimed by another run for more than {timeout} s "
                        "without being written; computing it here"
                    )
                    logger.info("swarm-memo: %s", text)
                    bar.note(text)  # the logger has only a NullHandler unless configured
                yield job
        bar.waiting(0)

    def _job(
        self,
        chunk: Chunk,
        name: str,
        reuse: Reuse,
        bar: Progress,
        force: bool = False,
        refresh: bool = False,
    ) -> ChunkJob | None:
        """A chunk to complete, or None while another run holds its claim."""
        if self.compute:
            if not self.claims.try_claim(name) and not force:
                return None
            if name not in self.stored and self.plan.pset.has_chunk(name):
                job = self._finished_elsewhere(chunk, name, bar)
                if job is not None:
                    return job
            self._refresh(reuse, refresh)
        return self._found_job(chunk, name, reuse, bar)

    def _found_job(self, chunk: Chunk, name: str, reuse: Reuse, bar: Progress) -> ChunkJob:
        """A chunk's job: its points, with those stored in other files found (their
        outputs filled in when the sink wants them)."""
        plan = self.plan
        listed, product = self.hits.chunk_points(chunk)
        points: ChunkPoints | None = listed  # default points: built only when needed
        digests: list[bytes] | None = None

        def all_points() -> ChunkPoints:
            nonlocal points
            if points is None:
                points = plan.points(chunk)
            return points

        def point_digests() -> list[bytes]:
            nonlocal digests
            if digests is None:
                digests = plan.point_digests(chunk, all_points())
            return digests

        if not product:
            point_digests()
        count = chunk.product_size if listed is None else len(listed)
        bar.adjust_total(count - chunk.product_size)
        outputs: list[object] = [MISSING] * count
        given = () if listed is None else listed  # a product chunk is found by its bins
        if self.sink.wants_outputs:
            reused = reuse.fill(chunk, point_digests, product, outputs, given)
        else:  # streaming, status: stored points are found, their outputs never loaded
            reused = reuse.mark(chunk, point_digests, product, outputs, given, FOUND)
        bar.skip(reused)
        todo = None if not reused else [] if reused == count else _missing(outputs)
        return ChunkJob(
            chunk.index,
            name,
            all_points() if todo != [] else points or [],  # a job all found executes nothing
            outputs,
            list(range(count)) if todo is None else todo,
            reused,
            digests,
            product=product,
        )

    def _refresh(self, reuse: Reuse, waited: bool) -> None:
        """Let reuse serve points other runs (maybe with other bins) stored since the cache
        was listed: list it again before building a claimed chunk's job, always once
        another run has held a chunk this run wanted, else at most so often that listing
        takes a twentieth of the time (the index is read again only when other runs'
        files appeared)."""
        now = time.monotonic()
        if not waited and not self.claims.contended and now < self._next_refresh:
            return
        reuse.refresh(self.plan.pset.stored_names() - self._written)
        self._next_refresh = now + 20 * (time.monotonic() - now)

    def _finished_elsewhere(self, chunk: Chunk, name: str, bar: Progress) -> ChunkJob | None:
        """Another run wrote this chunk after we listed the cache: use its file."""
        self.stored.add(name)
        cached = self.diag.cached_points
        if not self._exact_hit(chunk, name):
            return None
        self.diag.cached_chunks -= 1  # counted again when the job is counted
        count = self.diag.cached_points - cached
        self.diag.cached_points = cached
        self.claims.release(name)
        bar.stored_elsewhere(chunk.product_size, count)
        return ChunkJob(chunk.index, name, [], [], [], cached=count)

    # ------------------------------------------------------------------ reads

    def _collect(self, jobs: Iterator[ChunkJob | None]) -> None:
        """Reads: serve whatever points are stored; count the rest as missing."""
        diag = self.diag
        chunks = self.plan.named_chunks
        for job in jobs:
            if job is None:  # pragma: no cover - reads take no claims, so never wait
                continue
            chunk = chunks[job.index][0]
            diag.reused_points += job.reused
            diag.cached_points += job.reused
            if job.missing:
                diag.missing_chunks += 1
                diag.missing_points += len(job.missing)
                self.sink.missing(chunk, len(job.missing))
            else:
                diag.cached_chunks += 1
            if job.reused and self.sink.wants_outputs:
                self.sink.take(chunk, self._points_for_sink(job), job.outputs, bool(job.missing))

    def _points_for_sink(self, job: ChunkJob) -> Sequence[object] | None:
        return None if self.plan.product else job.points

    # ------------------------------------------------------------------ execute + store

    def _check_can_execute(self) -> None:
        """Before the first point is sent: an exec_fn exists and the cache is writable."""
        if self.plan.exec_fn is None:
            raise SpecError(
                "points are missing from the cache but this SwarmMemo has no exec_fn; pass "
                "exec_fn=... or call it through run_wrap()/streaming_wrap()"
            )
        self.config.store.init_root()
        self.plan.pset.prepare()
        self.request_log.start()  # `swarm-memo progress` and `show` read it

    def _execute_jobs(
        self, jobs: Iterator[ChunkJob | None], any_missing: bool, bar: Progress
    ) -> None:
        """Execute what the jobs miss; write each chunk as it completes, then serve it."""
        if not any_missing:
            return
        assert self.writer is not None
        self.plan.pset.clean_temp()
        exec_plan = ExecPlan(
            self.plan.exec_fn,  # type: ignore[arg-type]  # checked before the first submit
            self.plan.exec_params,
            self.config.exec_chunk_size,
            skip_errors=self.config.on_error == "skip",
            on_progress=bar.advance,
            stop=(stop := StopRequest(self.config.deadline)),
            grace_seconds=(grace := self.config.grace_seconds),
            hurry=stop.hurry,
            on_stop=lambda running: bar.note(stop.stopping_line(running, grace)),
            codec=self.config.codec,
        )
        backends = self.config.backends
        engine = Engine(
            backends.backend, exec_plan, self.diag, self._check_can_execute, backends.learn_window
        )
        with stop_on_signals(stop), _gc_paused(not self.config.backends.in_process):
            running = engine.run(jobs)
            written = 0
            try:
                for job in running:
                    with stop.storing():  # a second signal waits until it is stored
                        written += self._take(job)
            except BaseException as exc:
                with stop.storing():  # a second signal from here on waits for the storing
                    running.close()  # whatever was in flight is given up (workers killed)
                    self._stopped(engine, stop, exc, written)
                raise
            with stop.storing():
                self.writer.finish()

    def _take(self, job: ChunkJob) -> int:
        """Count, store and serve a job the engine finished; the points it writes."""
        self._count(job)
        if job.cached:
            return 0  # another run wrote it; it was served when found
        written = self._store(job)
        if self.sink.wants_outputs:
            # A copy: the writer may still be pickling the list.
            chunk = self.plan.named_chunks[job.index][0]
            points = self._points_for_sink(job)
            self.sink.take(chunk, points, list(job.outputs), partial=False)
        return written

    def _stopped(self, engine: Engine, stop: StopRequest, exc: BaseException, written: int) -> None:
        """Stopped, interrupted or failed: store the finished points of incomplete chunks
        as partial chunks and wait for every write (signals wait meanwhile); on a stop,
        say how many points are stored and raise the stop's error."""
        assert self.writer is not None
        with stop.storing():
            if not stop.forced:  # a third signal: stop at once
                written += sum(self._store(job) for job in engine.unfinished())
            signalled = isinstance(exc, (KeyboardInterrupt, RunInterrupted)) and stop.signals
            self.writer.finish(raising=isinstance(exc, StopRequested))
        if isinstance(exc, StopRequested) or signalled:
            before, total = self.bar.counts()
            error = stop.error(before + written, total)
            self.bar.close()  # its last status line first: the count ends the output
            self.bar.note(str(error).removeprefix("swarm-memo: "))
            raise error from None

    def _count(self, job: ChunkJob) -> None:
        diag = self.diag
        diag.reused_points += job.reused
        diag.cached_points += job.reused + job.cached
        if job.missing:
            diag.executed_chunks += 1
            diag.executed_points += len(job.missing)
        else:
            diag.cached_chunks += 1

    def _store(self, job: ChunkJob) -> int:
        """Hand a finished (or, stopping, an unfinished) chunk's computed points to the
        writer; its claim is released once they are on disk. Returns how many points this
        run computed in it (those it stores)."""
        assert self.writer is not None
        computed = len(computed_positions(job))
        if not computed:
            self.claims.release(job.name)
            return 0
        plan, claims, diag, bar = self.plan, self.claims, self.diag, self.bar
        replaces = job.name in self.stored

        def write() -> float:
            started = time.perf_counter()
            try:
                record = self._write(job, replaces)
                if record.partial:
                    # Before the claim goes: the run that completes this chunk next must
                    # write its index record after this one, never before.
                    plan.pset.index_log.flush()
            finally:
                # Released here, not in the driver: a driver waiting on another run's
                # claim must not hold back the claims of its own written chunks.
                claims.release(job.name)
            return time.perf_counter() - started

        def written(seconds: float) -> None:
            diag.write_time += seconds
            diag.stream_flushes += 1
            bar.chunk_written(job.index, computed, job.name)

        self.writer.submit(write, written)
        return computed

    def _write(self, job: ChunkJob, replaces: bool) -> ChunkRecord:
        """Write a job's chunk file (on a writer thread): its computed points and the
        points of the file it replaces, which is read again now (its latest version)."""
        pset = self.plan.pset
        chunk = self.plan.named_chunks[job.index][0]
        replaced = pset.load(job.name, chunk) if replaces else None
        if replaced is not None and replaced.points is None and replaced.axes != chunk.axes:
            # Outputs of another point layout: kept under a name of their own (served
            # again with axis_order as stored), never merged into this order's file.
            pset.set_aside_other_order(job.name, replaced)
            replaced = None
        self._written.add(job.name)
        prepared = chunk_record(self.plan, job, replaced)
        assert prepared is not None  # the job computed points
        record, digests = prepared
        pset.save(job.name, record, digests, on_unpicklable=unpicklable_error(record, pset.codec))
        return record


def _missing(outputs: list[object]) -> list[int]:
    """Positions of a job's outputs still ``MISSING``."""
    return [i for i, o in enumerate(outputs) if o is MISSING]


@contextmanager
def _gc_paused(pause: bool) -> Iterator[None]:
    """Pause cyclic garbage collection while workers compute: the driver then only
    allocates acyclic outputs and bookkeeping, and collections cost 15-20% of its CPU.
    ``exec_fn`` running in this process (serial, thread) keeps it on."""
    if not pause or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
