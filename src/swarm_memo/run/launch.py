"""Fan a sweep out as N tasks of one job array (submitit: Slurm, or local processes).

Each task receives the memo (it pickles as its constructor arguments), rebuilds it in its
own process and runs ``run_streaming`` on the shared cache. Task ``i`` of ``N`` computes
its own share of the chunks first (:class:`~swarm_memo.identity.order.Share`, known from the sweep
alone), then helps with the others' shares; claims (record locks, or leases on S3) keep
two tasks off one chunk, and where there are none the shares alone keep them apart. The
submitter keeps a :class:`Launch` handle: ``status()`` reads the cache, ``result()`` waits
for the tasks and loads the sweep.

Nothing here waits on a job to answer ``status()``, and nothing depends on the submitter
staying alive: a later ``launch`` or ``run`` of the same sweep computes only what is missing.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from swarm_memo.cache.params_set import logger
from swarm_memo.core.diagnostics import Diagnostics, Status
from swarm_memo.errors import (
    CacheMissError,
    RunInterrupted,
    SpecError,
    SpecTypeError,
    TaskFailedError,
)
from swarm_memo.identity.hashing import encode
from swarm_memo.identity.order import Share
from swarm_memo.run.budget import (
    Estimate,
    LaunchStatus,
    check_task_seconds,
    launch_status,
    plan_tasks,
)
from swarm_memo.run.config import MemoConfig

if TYPE_CHECKING:
    from swarm_memo.run.requests import Requests

_FIRST_POLL_SECONDS = 0.05
_LAST_POLL_SECONDS = 1.0


class SweepMemo(Protocol):
    """What launch needs of a memo (the facade): its calls and its ``exec_fn``."""

    def run_streaming(self, params: Any, split_spec: Any) -> Diagnostics: ...

    def load(
        self, params: Any, split_spec: Any, strict: bool = False
    ) -> tuple[Any, Diagnostics]: ...

    def status(self, params: Any, split_spec: Any) -> Status: ...

    @property
    def exec_fn(self) -> Any: ...

    @property
    def config(self) -> MemoConfig: ...

    def _with_options(self, **options: Any) -> SweepMemo: ...

    def _with_config(self, **changes: Any) -> SweepMemo: ...

    def _requests(self) -> Requests: ...


def task_failed(
    *,
    task: int,
    tasks: int,
    job_id: str | None,
    original: BaseException,
    also_failed: Sequence[int] = (),
) -> TaskFailedError:
    """The :class:`TaskFailedError` of ``task`` (of ``tasks``), which raised ``original``."""
    exc_type, exc_message = _describe(original)
    where = f"task {task} of {tasks}" + (f" (job {job_id})" if job_id else "")
    others = f" (tasks {', '.join(map(str, also_failed))} failed too)" if also_failed else ""
    return TaskFailedError(
        f"{where} failed: {exc_type}: {exc_message}{others}",
        task=task,
        job_id=job_id,
        also_failed=also_failed,
        point=getattr(original, "point", None),
        params=getattr(original, "params", None),
        exc_type=exc_type,
        exc_message=exc_message,
        worker_traceback=getattr(original, "worker_traceback", "") or str(original),
    )


class TaskException(RuntimeError):
    """Raised by a task whose sweep failed; its message is one line, ``Type: message`` of
    the original error (the cause), so the submitter can read it from the traceback text,
    the only thing submitit hands back."""


class LaunchTask:
    """The body of every task: compute and store what is missing, claims permitting.

    It runs in the task's process on a memo rebuilt from its constructor arguments, so
    ``max_workers=None`` resolves to the CPUs this task was allocated. It is checkpointable
    the way submitit understands: when the scheduler's time limit approaches (submitit's
    USR2), the task stops, its finished chunks stay stored and submitit requeues it (up to
    ``slurm_max_num_timeout`` times); the requeued task computes only what is missing.
    """

    def __call__(
        self, memo: SweepMemo, params: Any, split_spec: Any, share: Share | None = None
    ) -> Diagnostics:
        backends = memo.config.backends
        if backends.spec in ("process", "serial") and backends.max_workers == 1:
            # exec_fn would run on the main thread, where the scheduler's signals (submitit's
            # time-limit USR2) land: they must stop the task, not fail a point.
            memo = memo._with_options(executor="thread")
        if share is not None:  # after _with_options, which rebuilds the config
            memo = memo._with_config(share=share)
        try:
            return memo.run_streaming(params, split_spec)
        except RunInterrupted as exc:
            if exc.signum is not None or memo.config.deadline is None:
                raise TaskException(f"{type(exc).__name__}: {exc}") from exc
            # The launch's deadline (task_seconds): a graceful end, everything is stored.
            logger.info("swarm-memo launch task: %s", exc)
            return Diagnostics()
        except Exception as exc:
            lines = str(exc).strip().splitlines()
            raise TaskException(f"{type(exc).__name__}: {lines[0] if lines else ''}") from exc

    def checkpoint(
        self, memo: SweepMemo, params: Any, split_spec: Any, share: Share | None = None
    ) -> Any:
        """What submitit resubmits when the task is stopped: the same call (the cache is
        the checkpoint)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, memo, params, split_spec, share)


class Launch:
    """The handle of a launched sweep.

    Attributes
    ----------
    jobs
        The submitted tasks (submitit jobs), in array order; empty when nothing was missing.
    task_diagnostics
        The ``Diagnostics`` of every task once :meth:`result` has collected them.
    estimate
        How the tasks were sized (:class:`~swarm_memo.run.budget.Estimate`): the stored
        seconds per point, the tasks' ``deadline`` with ``task_seconds``, and a note.
    """

    def __init__(
        self,
        memo: SweepMemo,
        params: Any,
        split_spec: Any,
        jobs: list[Any],
        estimate: Estimate | None = None,
    ) -> None:
        self._memo = memo
        self._params = params
        self._split_spec = split_spec
        self.jobs = jobs
        self.estimate = estimate
        self.task_diagnostics: list[Diagnostics] = []

    def __repr__(self) -> str:
        running = sum(not job.done() for job in self.jobs)
        return f"Launch({len(self.jobs)} tasks, {running} running)"

    def status(self) -> LaunchStatus:
        """What is stored and missing now, read from the cache; never waits on a task.

        A :class:`~swarm_memo.core.diagnostics.Status` with ``tasks`` (per task: the chunks of
        its share, how many and how many points are still missing) and ``estimate``;
        ``summary()`` prints them."""
        requests = self._memo._requests()
        return launch_status(
            requests, self._params, self._split_spec, len(self.jobs), self.estimate
        )

    def done(self) -> bool:
        """True once every task has finished (succeeded or failed)."""
        return all(job.done() for job in self.jobs)

    def wait(self, timeout: float | None = None) -> None:
        """Wait until every task has finished.

        Raises
        ------
        TimeoutError
            When tasks are still running after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = _FIRST_POLL_SECONDS
        while not self.done():
            if deadline is not None and time.monotonic() >= deadline:
                running = sum(not job.done() for job in self.jobs)
                raise TimeoutError(
                    f"{running} of {len(self.jobs)} tasks still running after {timeout} s"
                )
            time.sleep(pause)
            # Short sweeps return promptly; long ones ask the scheduler about once a second.
            pause = min(pause * 1.5, _LAST_POLL_SECONDS)

    def cancel(self) -> None:
        """Cancel every task still running; their finished chunks stay stored."""
        for job in self.jobs:
            if not job.done():
                with contextlib.suppress(Exception):  # a job that finished meanwhile
                    _cancel(job)

    def result(self, timeout: float | None = None) -> tuple[Any, Diagnostics]:
        """Wait for the tasks, then return ``(output, Diagnostics)`` loaded from the cache.

        The output is what ``memo.run(params, split_spec)`` returns. With
        ``on_error="skip"`` the points that failed in any task are listed in
        ``Diagnostics.failed_points`` (and left out of the output, as ``run`` does).

        Raises
        ------
        TaskFailedError
            When a task failed, naming the first failed task and its error (every task is
            waited for first; what the others finished stays stored).
        CacheMissError
            When points are still missing after every task succeeded (e.g. a task lost its
            claim to a run elsewhere that has not finished).
        TimeoutError
            When tasks are still running after ``timeout`` seconds.
        """
        self.wait(timeout)
        self.task_diagnostics = self._collect()
        failed = _distinct(p for diag in self.task_diagnostics for p in diag.failed_points)
        try:
            output, diag = self._memo.load(self._params, self._split_spec, strict=not failed)
        except CacheMissError as exc:
            if self.estimate is None or self.estimate.deadline is None:
                raise
            raise CacheMissError(
                f"{exc.missing_points} points are not stored: the tasks stop after "
                f"{self.estimate.deadline:g} s (task_seconds); launch again to compute them",
                exc.missing_points,
            ) from exc
        if failed:
            if diag.missing_points > len(failed):
                raise CacheMissError(
                    f"{diag.missing_points} points are not stored after the launch, "
                    f"{len(failed)} of them failed; run() computes the others",
                    diag.missing_points,
                )
            diag.failed_points = failed
        return output, diag

    def _collect(self) -> list[Diagnostics]:
        results: list[Diagnostics] = []
        failures: list[tuple[int, Any, Exception]] = []
        for task, job in enumerate(self.jobs):
            try:
                results.append(job.result())
            except Exception as exc:
                failures.append((task, job, exc))
        if failures:
            task, job, error = failures[0]
            job_id = getattr(job, "job_id", None)
            cause = error.__cause__ if isinstance(error, TaskException) else None
            raise task_failed(
                task=task,
                tasks=len(self.jobs),
                job_id=None if job_id is None else str(job_id),
                original=cause or error,
                also_failed=[t for t, _, _ in failures[1:]],
            ) from error
        return results


def _distinct(points: Iterable[Any]) -> list[Any]:
    """Points without repeats (compared by canonical encoding): a point that failed in one
    task is tried again, and fails again, in the task that takes its chunk over."""
    seen: set[bytes] = set()
    distinct = []
    for point in points:
        key = encode(point, "failed point")
        if key not in seen:
            seen.add(key)
            distinct.append(point)
    return distinct


def _cancel(job: Any) -> None:
    try:
        job.cancel(check=False)  # submitit
    except TypeError:
        job.cancel()  # concurrent.futures


def _describe(exc: BaseException) -> tuple[str, str]:
    """``(type name, message)`` of the error a task raised.

    A future hands back the task's :class:`TaskException` (its cause is the original
    error); submitit hands back the traceback text, whose last line is the
    ``TaskException``'s one-line ``Type: message``.
    """
    if isinstance(exc, TaskException) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, TaskException) or type(exc).__name__ == "FailedJobError":
        marker = f"{TaskException.__module__}.{TaskException.__qualname__}: "
        for line in reversed(str(exc).splitlines()):
            if line.startswith(marker):
                name, _, message = line[len(marker) :].partition(": ")
                return name, message
    lines = str(exc).strip().splitlines()
    return type(exc).__name__, lines[0] if lines else ""


# ---------------------------------------------------------------------------- submission


def check_tasks(tasks: Any) -> int | None:
    """``tasks`` must be None or an int >= 1."""
    if tasks is None:
        return None
    if isinstance(tasks, bool) or not isinstance(tasks, int):
        raise SpecTypeError(f"tasks must be None or an int >= 1; got {tasks!r}")
    if tasks < 1:
        raise SpecError(f"tasks must be None or an int >= 1; got {tasks!r}")
    return tasks


def check_executor(executor: Any) -> None:
    """``executor`` must look like a submitit executor: ``map_array`` or ``submit``."""
    if not (
        callable(getattr(executor, "map_array", None))
        or callable(getattr(executor, "submit", None))
    ):
        raise SpecTypeError(
            "executor must be a submitit executor (e.g. submitit.AutoExecutor(folder=...)) "
            f"with map_array() or submit(); got {type(executor).__name__}"
        )


def _check_picklable(memo: SweepMemo) -> None:
    """Tasks receive the memo pickled: fail here, before submitting anything."""
    import cloudpickle

    try:
        cloudpickle.dumps(memo)
    except Exception as exc:
        raise SpecTypeError(
            "this SwarmMemo cannot be sent to the tasks (pickling it failed: "
            f"{type(exc).__name__}: {exc}); build it with executor='process', 'thread' or "
            "'serial' and a picklable exec_fn"
        ) from exc


def submit(executor: Any, memo: SweepMemo, params: Any, split_spec: Any, tasks: int) -> list[Any]:
    """Submit ``tasks`` :class:`LaunchTask` calls as one job array, task ``i`` with share
    ``i`` of ``tasks``."""
    memos = [memo] * tasks
    all_params = [params] * tasks
    all_specs = [split_spec] * tasks
    shares = [Share(i, tasks) for i in range(tasks)]
    task = LaunchTask()
    if callable(getattr(executor, "map_array", None)):
        return list(executor.map_array(task, memos, all_params, all_specs, shares))
    batch = getattr(executor, "batch", None)
    with batch() if callable(batch) else contextlib.nullcontext():
        return [executor.submit(task, memo, params, split_spec, share) for share in shares]


def launch(
    memo: SweepMemo,
    params: Any,
    split_spec: Any,
    executor: Any,
    tasks: Any = None,
    task_seconds: Any = None,
) -> Launch:
    """Validate, size the tasks (:func:`~swarm_memo.run.budget.plan_tasks`), then submit one
    task per share, at most one per missing chunk."""
    asked = check_tasks(tasks)
    seconds = check_task_seconds(task_seconds)
    check_executor(executor)
    status = memo.status(params, split_spec)  # also validates params and split_spec
    if status.complete:
        return Launch(memo, params, split_spec, [])
    if memo.exec_fn is None:
        raise SpecError(
            f"{status.missing_points} points are missing but this SwarmMemo has no exec_fn "
            "for the tasks to run; pass exec_fn=..."
        )
    _check_picklable(memo)
    config = memo.config
    workers = _workers_per_task(config, executor)
    estimate = plan_tasks(status, asked, seconds, workers, config.grace_seconds)
    if estimate.note:
        logger.info("swarm-memo launch: %s", estimate.note)
        if config.verbose:
            print(f"swarm-memo launch: {estimate.note}", file=sys.stderr)
    sent = memo if estimate.deadline is None else memo._with_options(deadline=estimate.deadline)
    jobs = submit(executor, sent, params, split_spec, estimate.tasks)
    return Launch(memo, params, split_spec, jobs, estimate)


def _workers_per_task(config: MemoConfig, executor: Any) -> int:
    """The workers a task runs: ``max_workers``, else the executor's ``cpus_per_task``
    (submitit), else 1."""
    asked = config.backends.requested_workers
    if asked is not None:
        return asked
    cpus = (getattr(executor, "parameters", None) or {}).get("cpus_per_task")
    return cpus if isinstance(cpus, int) and cpus >= 1 else 1
