"""The one engine behind ``run`` and ``run_streaming``.

Missing points are taken in memo-chunk order and cut into exec chunks of
``exec_chunk_size`` points (an exec chunk may span memo chunks). A bounded window of exec
chunks is in flight, so workers never wait for the driver and memo chunks complete
roughly in order (:mod:`swarm_memo.execution.window` sizes it: it grows while workers wait for
work, and a memo's next run starts where its last one ended). Each memo chunk is yielded
the moment its last point returns; the caller writes it while the window keeps the
workers busy. Nothing beyond the window and the unfinished chunks is held, so memory
does not grow with the grid.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import TypeVar

from swarm_memo.core.diagnostics import Diagnostics
from swarm_memo.core.jobs import ChunkJob, PointFailure
from swarm_memo.core.serial import DEFAULT_CODEC, Codec
from swarm_memo.core.types import ExecFn, Params
from swarm_memo.errors import ExecError, WorkerDiedError
from swarm_memo.execution.backends import Backend
from swarm_memo.execution.tracebacks import with_real_files
from swarm_memo.execution.window import Completions, Window
from swarm_memo.execution.worker import BatchResult, TaskResult
from swarm_memo.identity.hashing import short_description

POLL_SECONDS = 0.05
"""How often a run waiting on another process's claim looks again."""
T = TypeVar("T")


class _Signal(enum.Enum):
    END = "end"
    """The job source is exhausted."""
    READY = "ready"
    """A job needing nothing executed is ready to be handed on."""


MAX_TRACEBACK = 8000
"""Characters of a worker's traceback kept in an ExecError's message (its end)."""
WAKE_SECONDS = 0.25
"""Longest wait for a completion, so a stop request is noticed while workers compute."""


Segment = tuple[ChunkJob, list[int]]
Batch = list[Segment]
"""An exec chunk: runs of missing positions of consecutive jobs."""


@dataclass
class ExecPlan:
    """What the engine needs to know about one run."""

    exec_fn: ExecFn
    params: Params
    exec_chunk_size: int
    skip_errors: bool
    on_progress: Callable[[int], None] = lambda n: None
    stop: Callable[[], bool] = lambda: False
    """True once the run must stop (a signal, its deadline): submit nothing more."""
    grace_seconds: float = 0.0
    """How long exec chunks in flight may finish once the run must stop."""
    hurry: Callable[[], bool] = lambda: False
    """True once the run must give up the points still running (a second signal)."""
    on_stop: Callable[[int], None] = lambda running: None
    """Called once the engine notices the stop, with the number of points running."""
    codec: Codec = DEFAULT_CODEC
    """Encodes the run's function and params for workers, decodes their outputs."""


class StopRequested(Exception):
    """The engine stopped early on request; every finished job was yielded first."""


@dataclass
class _Flight:
    """One run's exec chunks in flight and how the run stands."""

    pending: dict[Future[TaskResult], Batch] = field(default_factory=dict)
    completions: Completions = field(default_factory=Completions)
    error: BaseException | None = None
    lost: list[object] = field(default_factory=list)
    """Points of exec chunks that were on a pool when a worker died."""
    state: str = "full"
    """What the last fill found: "full", "stalled", "ready" or "exhausted"."""
    grace_end: float | None = None
    """When the grace period ends, once a stop was requested."""


class Engine:
    """Executes the missing points of a stream of :class:`ChunkJob` on a :class:`Backend`."""

    def __init__(
        self,
        backend_factory: Callable[[], Backend],
        plan: ExecPlan,
        diag: Diagnostics,
        before_first_submit: Callable[[], None] = lambda: None,
        learn_window: Callable[[int], None] = lambda per_worker: None,
    ) -> None:
        self._backend_factory = backend_factory
        self._before_first_submit = before_first_submit
        self._learn_window = learn_window
        self.plan = plan
        self.diag = diag
        self._ready: deque[ChunkJob] = deque()
        self._buffered = 0
        self._backend: Backend | None = None
        self._window: Window | None = None
        self._fed = True  # the job source had more exec chunks than the window holds
        self._started: dict[int, ChunkJob] = {}  # jobs with some points computed, not all

    def unfinished(self) -> list[ChunkJob]:
        """Jobs some of whose missing points were computed but not all (on a stop or an
        error these are stored as partial chunks: a finished point is never lost)."""
        return [job for job in self._started.values() if 0 < job.remaining < len(job.missing)]

    @property
    def window(self) -> int:
        """Exec chunks currently allowed in flight (0 before the backend starts)."""
        return 0 if self._window is None else self._window.size

    @property
    def backend(self) -> Backend:
        """The executor, started only when a point actually needs executing."""
        if self._backend is None:
            self._before_first_submit()
            backend = self._backend_factory()
            plan = self.plan
            backend.start_run(plan.exec_fn, plan.params, plan.stop, plan.codec)
            self._window = Window(backend.workers, backend.in_flight_per_worker)
            self._backend = backend
        return self._backend

    def _batches(self, jobs: Iterable[ChunkJob | None]) -> Iterator[Batch | _Signal | None]:
        """Exec chunks; None while the job source waits (a chunk claimed elsewhere),
        ``_READY`` when a job needing nothing executed is ready to be handed on."""
        batch: Batch = []
        filled = 0
        size = self.plan.exec_chunk_size
        for job in jobs:
            if job is None:
                # Submit what we hold before waiting: another process may be waiting
                # for exactly these points' chunk.
                if batch:
                    yield batch
                    batch, filled = [], 0
                yield None
                continue
            if not job.missing:
                self._ready.append(job)
                yield _Signal.READY  # hand it on now: memory stays flat over fully reused chunks
                continue
            start = 0
            while start < len(job.missing):
                take = size - filled
                batch.append((job, job.missing[start : start + take]))
                filled += len(batch[-1][1])
                start += take
                if filled == size:
                    yield batch
                    batch, filled = [], 0
        if batch:
            yield batch

    def _submit(self, batch: Batch) -> Future[TaskResult]:
        points = _batch_points(batch)
        skip = self.plan.skip_errors
        backend = self.backend
        self.diag.exec_chunks += 1
        try:
            return backend.submit_batch(points, skip)
        except Exception as exc:
            if not backend.is_worker_death(exc):
                raise
            # The pool broke before this exec chunk was sent.
            raise WorkerDiedError(
                f"the worker pool is broken ({exc}); no points were sent; chunks finished "
                "before are stored and the next run starts a new pool",
                points=points,
                params=self.plan.params,
            ) from exc

    def _fill(
        self,
        batches: Iterator[Batch | _Signal | None],
        pending: dict[Future[TaskResult], Batch],
        completions: Completions,
    ) -> str:
        """Submit exec chunks until the window is full: "full", "stalled", "ready" (a job
        needing no execution is ready) or "exhausted"."""
        while len(pending) < max(1, self.window):
            if self.plan.stop():
                return "exhausted"
            batch = next(batches, _Signal.END)
            if batch is _Signal.END:
                self._fed = False
                return "exhausted"
            if batch is None:
                self._fed = False
                return "stalled"
            if batch is _Signal.READY:
                return "ready"
            future = self._submit(batch)
            pending[future] = batch
            completions.watch(future)
            self.diag.max_in_flight = max(self.diag.max_in_flight, len(pending))
        self._fed = True
        return "full"

    def run(self, jobs: Iterable[ChunkJob | None]) -> Generator[ChunkJob, None, None]:
        """Yield every job once all its points have outputs, roughly in job order.

        ``jobs`` may yield None to say "nothing ready yet, ask again soon": the engine
        then keeps absorbing results instead of blocking on the source.
        """
        batches = self._batches(jobs)
        flight = _Flight()
        try:
            while True:
                self._advance(batches, flight)
                while self._ready:
                    yield self._ready.popleft()
                action = self._next_action(flight)
                if action == "stop":
                    break
                if action == "wait":
                    self._wait_and_absorb(flight)
            if flight.grace_end is not None and (
                flight.error is None or isinstance(flight.error, WorkerDiedError)
            ):
                # A worker that dies while the job is being stopped (the scheduler signals
                # every process) is part of the stop, not a failure of a point.
                if self._backend is not None:
                    self._backend.close_after_stop()
                raise StopRequested
        except BaseException:
            for future in flight.pending:
                future.cancel()
            if flight.pending and self._backend is not None:
                self._backend.abort()
            raise
        finally:
            self._end_run()
        self._raise_failure(flight)

    def _advance(self, batches: Iterator[Batch | _Signal | None], flight: _Flight) -> None:
        """Notice a stop request; otherwise submit exec chunks until the window is full."""
        if flight.grace_end is None and self.plan.stop():
            flight.grace_end = time.monotonic() + self.plan.grace_seconds
            flight.state = "exhausted"
            self._stop_starting(flight.pending)
        if flight.state != "exhausted" and flight.error is None:
            try:
                flight.state = self._fill(batches, flight.pending, flight.completions)
            except WorkerDiedError as exc:  # the pool broke at submit: drain the rest
                flight.lost.extend(exc.points)
                flight.error, flight.state = exc, "exhausted"

    def _next_action(self, flight: _Flight) -> str:
        """ "again" (more to submit or hand on now), "wait" (for results) or "stop"."""
        if flight.state == "ready":
            return "again"
        if not flight.pending:
            if flight.state != "stalled" or flight.error is not None:
                return "stop"
            time.sleep(POLL_SECONDS)  # only chunks claimed elsewhere are left
            return "again"
        if flight.grace_end is not None and (
            time.monotonic() >= flight.grace_end or self.plan.hurry()
        ):
            self._give_up(flight.pending)
            return "stop"
        return "wait"

    def _wait_and_absorb(self, flight: _Flight) -> None:
        """Wait a little for exec chunks, then absorb the finished ones in submission
        order, so chunks complete (and are written) in order. An error is kept while the
        rest in flight drains: finished chunks still get written."""
        started = time.perf_counter()
        done = flight.completions.wait(POLL_SECONDS if flight.state == "stalled" else WAKE_SECONDS)
        self.diag.exec_time += time.perf_counter() - started
        for future in [f for f in flight.pending if f in done]:
            batch = flight.pending.pop(future)
            try:
                self._absorb(batch, self._result(future, batch))
            except WorkerDiedError as exc:
                flight.lost.extend(exc.points)
                flight.error = flight.error or exc
            except ExecError as exc:
                flight.error = flight.error or exc

    def _end_run(self) -> None:
        """Free the run's backend resources; remember the window the run needed."""
        if self._backend is None:
            return
        self._backend.release()
        if self._window is not None:
            # Exec chunks per worker this run needed in flight: the next run starts there.
            self._learn_window(-(-self._window.size // max(1, self._backend.workers)))

    def _raise_failure(self, flight: _Flight) -> None:
        error = flight.error
        if isinstance(error, WorkerDiedError):
            if self._backend is not None:
                self._backend.abort()  # so the next run gets a fresh pool, not a broken one
            # A dead worker breaks the whole pool: which in-flight exec chunk it ran is
            # unknowable, so name every point that was lost with the pool.
            lost = flight.lost
            raise WorkerDiedError(
                f"a worker process died ({error.__cause__!r:.300}) while evaluating these "
                f"{len(lost)} points of the in-flight exec chunks: {lost!r:.1000}; every chunk "
                "finished before is stored and the next run starts a new pool",
                points=lost,
                params=self.plan.params,
            ) from error.__cause__
        if error is not None:
            raise error

    def _stop_starting(self, pending: dict[Future[TaskResult], Batch]) -> None:
        """The run must stop: start no new point and say how many points still run.

        Exec chunks not sent yet are cancelled; workers drop those queued to them and
        start no further point of the chunks they run (in-process tasks check the stop
        request between points)."""
        for future in [f for f in pending if f.cancel()]:
            del pending[future]  # never started: nothing to wait for
        running = 0
        if self._backend is not None:
            self._backend.stop_starting()
            running = min(self._backend.workers, sum(not f.done() for f in pending))
        self.plan.on_stop(running)

    def _give_up(self, pending: dict[Future[TaskResult], Batch]) -> None:
        """The grace period is over: drop the exec chunks still in flight."""
        for future in pending:
            future.cancel()
        pending.clear()
        if self._backend is not None:
            self._backend.abort()

    def _result(self, future: Future[TaskResult], batch: Batch) -> BatchResult:
        """The outputs, failed indices and compute seconds of a finished exec chunk."""
        backend = self.backend
        raw = result_or_death(future, batch, self.plan.params, backend.is_worker_death)
        result = backend.batch_result(raw)
        if result.timing is not None and self._window is not None:
            self._window.observe(*result.timing, self._fed)
        return result

    def _absorb(self, batch: Batch, result: BatchResult) -> None:
        """Place an exec chunk's outputs in their jobs. Under ``on_error="raise"`` the
        points finished before the failure are placed first (their jobs are then stored,
        whole or partial), then the error is raised; the failed point stays missing."""
        outputs, failed, seconds = result.outputs, result.failed, result.seconds
        per_point = seconds / max(1, len(outputs))
        error = self._record_failures(batch, outputs, failed) if failed else None
        if error is not None:
            outputs = outputs[: failed[0]]
        self.plan.on_progress(len(outputs))
        offset = 0
        for job, positions in batch:
            count = min(len(positions), len(outputs) - offset)
            if count <= 0:
                break
            job.seconds += per_point * count
            self._place(job, positions[:count], outputs[offset : offset + count])
            offset += count
        if error is None and offset < sum(len(p) for _, p in batch) and not self.plan.stop():
            error = self._stopped_early(batch, offset)
        if error is not None:
            raise error

    def _stopped_early(self, batch: Batch, done: int) -> WorkerDiedError:
        """A worker stopped an exec chunk early (it was sent a stop signal) although this
        run goes on: its remaining points are lost like those of a dead worker."""
        rest = _batch_points(batch)[done:]
        return WorkerDiedError(
            f"a worker stopped before these {len(rest)} points (it was sent SIGUSR1 "
            f"while the run goes on): {rest!r:.500}; chunks finished before are stored",
            points=rest,
            params=self.plan.params,
        )

    def _place(self, job: ChunkJob, positions: list[int], values: list[object]) -> None:
        count = len(positions)
        first = positions[0]
        if positions[-1] - first + 1 == count:  # a contiguous run: one slice copy
            job.outputs[first : first + count] = values
        else:
            for position, value in zip(positions, values, strict=True):
                job.outputs[position] = value
        job.remaining -= count
        self._buffered += count
        self.diag.max_stream_buffer = max(self.diag.max_stream_buffer, self._buffered)
        if job.remaining == 0:
            self._buffered -= len(job.missing)
            self._started.pop(id(job), None)
            self._ready.append(job)
        else:
            self._started[id(job)] = job

    def _record_failures(
        self, batch: Batch, outputs: list[object], failed: list[int]
    ) -> ExecError | None:
        """The error of the first failure (``on_error="raise"``), or None once every
        failed point is listed (``on_error="skip"``)."""
        where = [(job, pos) for job, positions in batch for pos in positions]
        for index in failed:
            job, position = where[index]
            failure = outputs[index]
            assert isinstance(failure, PointFailure)  # a failed point's output
            if not self.plan.skip_errors:
                return self._exec_error(job.points[position], failure)
            job.failed += 1
            self.diag.failed_points.append(job.points[position])
            self.diag.failures.append(
                (job.points[position], f"{failure.exc_type}: {failure.message}"[:500])
            )
        return None

    def _exec_error(self, point: object, failure: PointFailure) -> ExecError:
        trace = with_real_files(failure.traceback, self.plan.exec_fn)  # not "<dynamic-code>"
        return point_error(point, self.plan.params, replace(failure, traceback=trace))


def point_error(point: object, params: Params, failure: PointFailure) -> ExecError:
    """The :class:`ExecError` for ``point``'s failure (exec_fn raised, or its output
    cannot be pickled)."""
    what = (
        f"exec_fn raised {failure.exc_type}"
        if failure.stage == "exec_fn"
        else f"the output of exec_fn cannot be pickled ({failure.exc_type})"
    )
    message = failure.message if len(failure.message) <= 2000 else failure.message[:2000] + "..."
    trace = failure.traceback[-MAX_TRACEBACK:]
    return ExecError(
        f"{what} at point {short_description(point)} with params "
        f"{short_description(params)}: {message}\n\nWorker traceback:\n{trace}",
        point=point,
        params=params,
        exc_type=failure.exc_type,
        exc_message=failure.message,
        worker_traceback=failure.traceback,
    )


def result_or_death(
    future: Future[T],
    batch: Batch,
    params: Params,
    is_worker_death: Callable[[BaseException], bool],
) -> T:
    """``future.result()``, turning a dead worker into :class:`WorkerDiedError`."""
    try:
        return future.result()
    except BaseException as exc:
        if not is_worker_death(exc):
            raise
        points = [job.points[pos] for job, positions in batch for pos in positions]
        raise WorkerDiedError(
            f"a worker died ({type(exc).__name__}: {exc}) while evaluating an exec chunk of "
            f"{len(points)} points: {points!r:.500}; chunks finished before it are stored",
            points=points,
            params=params,
        ) from exc


def _batch_points(batch: Batch) -> list[object]:
    """The points of an exec chunk, a slice copy per contiguous run of positions."""
    points: list[object] = []
    for job, positions in batch:
        first, count = positions[0], len(positions)
        if positions[-1] - first + 1 == count:
            points += job.points[first : first + count]
        else:
            points += [job.points[position] for position in positions]
    return points
