"""Fan a sweep out as N tasks of one job array (submitit: Slurm, or local processes).

Launch works on the memo's :class:`~swarm_memo.run.config.MemoOptions` and
:class:`~swarm_memo.run.config.MemoConfig`, never on the facade. Each task receives the
options (a frozen, picklable record of the constructor's arguments), builds its own
config from them in its own process and streams the sweep into the shared cache. Task
``i`` of ``N`` computes its own share of the chunks first
(:class:`~swarm_memo.identity.order.Share`, known from the sweep alone), then helps with
the others' shares; claims (record locks, or leases on S3) keep two tasks off one chunk,
and where there are none the shares alone keep them apart. The submitter keeps a
:class:`Launch` handle: ``status()`` reads the cache, ``result()`` waits for the tasks and
loads the sweep.

Nothing here waits on a job to answer ``status()``, and nothing depends on the submitter
staying alive: a later ``launch`` or ``run`` of the same sweep computes only what is missing.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

from swarm_memo.cache.params_set import logger
from swarm_memo.core.diagnostics import Diagnostics
from swarm_memo.core.types import Params, SplitSpec
from swarm_memo.errors import (
    CacheMissError,
    RunInterrupted,
    SpecError,
    SpecTypeError,
    TaskFailedError,
)
from swarm_memo.execution.executors import BackendFactory
from swarm_memo.identity.hashing import encode
from swarm_memo.identity.order import Share
from swarm_memo.run.budget import (
    Estimate,
    LaunchStatus,
    check_task_seconds,
    launch_status,
    plan_tasks,
)
from swarm_memo.run.config import MemoConfig, MemoOptions, build_config
from swarm_memo.run.requests import memo_requests

_FIRST_POLL_SECONDS = 0.05
_LAST_POLL_SECONDS = 1.0


@runtime_checkable
class ArrayExecutor(Protocol):
    """A submitit executor that submits a job array in one call."""

    def map_array(self, fn: LaunchTask, /, *columns: Sequence[object]) -> Iterable[Job]: ...


@runtime_checkable
class SubmitExecutor(Protocol):
    """An executor that submits one task at a time (submitit's ``submit``)."""

    def submit(self, fn: LaunchTask, /, *args: object) -> Job: ...


class Job(Protocol):
    """A submitted task as launch sees it: a submitit job or a ``concurrent.futures``
    future of the task's :class:`Diagnostics`."""

    def done(self) -> bool: ...

    def result(self) -> Diagnostics: ...


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


def task_config(options: MemoOptions, share: Share | None) -> MemoConfig:
    """The config a task runs with, built (and validated) in the task's own process from
    the memo's options: ``max_workers=None`` resolves to the CPUs this task was allocated,
    ``exec_fn`` never runs on the main thread, and ``share`` says which chunks go first."""
    config = build_config(options)
    # exec_fn would run on the main thread, where the scheduler's signals (submitit's
    # time-limit USR2) land: they must stop the task, not fail a point.
    backends = BackendFactory(config.backends.spec.off_main_thread())
    return replace(config, backends=backends, share=share)


class LaunchTask:
    """The body of every task: compute and store what is missing, claims permitting.

    It runs in the task's process on a config built there from the memo's options (see
    :func:`task_config`). It is checkpointable the way submitit understands: when the
    scheduler's time limit approaches (submitit's USR2), the task stops, its finished
    chunks stay stored and submitit requeues it (up to ``slurm_max_num_timeout`` times);
    the requeued task computes only what is missing.
    """

    def __call__(
        self,
        options: MemoOptions,
        params: Params,
        split_spec: SplitSpec,
        share: Share | None = None,
    ) -> Diagnostics:
        config = task_config(options, share)
        try:
            return memo_requests(config).stream(params, split_spec)
        except RunInterrupted as exc:
            if exc.signum is not None or config.deadline is None:
                raise TaskException(f"{type(exc).__name__}: {exc}") from exc
            # The launch's deadline (task_seconds): a graceful end, everything is stored.
            logger.info("swarm-memo launch task: %s", exc)
            return Diagnostics()
        except Exception as exc:
            lines = str(exc).strip().splitlines()
            raise TaskException(f"{type(exc).__name__}: {lines[0] if lines else ''}") from exc
        finally:
            config.backends.close()

    def checkpoint(
        self,
        options: MemoOptions,
        params: Params,
        split_spec: SplitSpec,
        share: Share | None = None,
    ) -> object:
        """What submitit resubmits when the task is stopped: the same call (the cache is
        the checkpoint)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, options, params, split_spec, share)


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
        config: MemoConfig,
        params: Params,
        split_spec: SplitSpec,
        jobs: Sequence[Job],
        estimate: Estimate | None = None,
    ) -> None:
        self._config = config
        self._params = params
        self._split_spec = split_spec
        self.jobs = list(jobs)
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
        requests = memo_requests(self._config)
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
            requests = memo_requests(self._config)
            output, diag = requests.load(self._params, self._split_spec, strict=not failed)
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
        failures: list[tuple[int, Job, Exception]] = []
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


def _distinct(points: Iterable[object]) -> list[object]:
    """Points without repeats (compared by canonical encoding): a point that failed in one
    task is tried again, and fails again, in the task that takes its chunk over."""
    seen: set[bytes] = set()
    distinct: list[object] = []
    for point in points:
        key = encode(point, "failed point")
        if key not in seen:
            seen.add(key)
            distinct.append(point)
    return distinct


def _cancel(job: Job) -> None:
    cancel = getattr(job, "cancel", None)  # submitit jobs and futures have one
    if cancel is None:
        return
    try:
        cancel(check=False)  # submitit
    except TypeError:
        cancel()  # concurrent.futures


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


def check_tasks(tasks: object) -> int | None:
    """``tasks`` must be None or an int >= 1."""
    if tasks is None:
        return None
    if isinstance(tasks, bool) or not isinstance(tasks, int):
        raise SpecTypeError(f"tasks must be None or an int >= 1; got {tasks!r}")
    if tasks < 1:
        raise SpecError(f"tasks must be None or an int >= 1; got {tasks!r}")
    return tasks


def check_submitit_executor(executor: object) -> None:
    """``executor`` must look like a submitit executor: ``map_array`` or ``submit``."""
    if not (
        callable(getattr(executor, "map_array", None))
        or callable(getattr(executor, "submit", None))
    ):
        raise SpecTypeError(
            "executor must be a submitit executor (e.g. submitit.AutoExecutor(folder=...)) "
            f"with map_array() or submit(); got {type(executor).__name__}"
        )


def _check_picklable(options: MemoOptions) -> None:
    """Tasks receive the options pickled: fail here, before submitting anything."""
    import cloudpickle

    try:
        cloudpickle.dumps(options)
    except Exception as exc:
        raise SpecTypeError(
            "this SwarmMemo cannot be sent to the tasks (pickling it failed: "
            f"{type(exc).__name__}: {exc}); build it with executor='process', 'thread' or "
            "'serial' and a picklable exec_fn"
        ) from exc


def submit(
    executor: object, options: MemoOptions, params: Params, split_spec: SplitSpec, tasks: int
) -> list[Job]:
    """Submit ``tasks`` :class:`LaunchTask` calls as one job array, task ``i`` with share
    ``i`` of ``tasks``; each receives ``options``, never the memo."""
    shares = [Share(i, tasks) for i in range(tasks)]
    task = LaunchTask()
    if isinstance(executor, ArrayExecutor) and callable(executor.map_array):
        columns = [options] * tasks, [params] * tasks, [split_spec] * tasks, shares
        return list(executor.map_array(task, *columns))
    if not isinstance(executor, SubmitExecutor):
        return []  # refused by check_submitit_executor before any work
    batch = getattr(executor, "batch", None)
    with batch() if callable(batch) else contextlib.nullcontext():
        return [executor.submit(task, options, params, split_spec, share) for share in shares]


def launch(
    options: MemoOptions,
    config: MemoConfig,
    params: Params,
    split_spec: SplitSpec,
    executor: object,
    tasks: object = None,
    task_seconds: object = None,
) -> Launch:
    """Validate, size the tasks (:func:`~swarm_memo.run.budget.plan_tasks`), then submit one
    task per share, at most one per missing chunk. ``config`` is the memo's (its pools and
    store serve the submitter's reads); the tasks receive ``options``."""
    asked = check_tasks(tasks)
    seconds = check_task_seconds(task_seconds)
    check_submitit_executor(executor)
    status = memo_requests(config).status(params, split_spec)  # validates the request too
    if status.complete:
        return Launch(config, params, split_spec, [])
    if config.exec_fn is None:
        raise SpecError(
            f"{status.missing_points} points are missing but this SwarmMemo has no exec_fn "
            "for the tasks to run; pass exec_fn=..."
        )
    _check_picklable(options)
    workers = _workers_per_task(config, executor)
    estimate = plan_tasks(status, asked, seconds, workers, config.grace_seconds)
    if estimate.note:
        logger.info("swarm-memo launch: %s", estimate.note)
        if config.verbose:
            print(f"swarm-memo launch: {estimate.note}", file=sys.stderr)
    if estimate.deadline is not None:
        options = replace(options, deadline=estimate.deadline)
    jobs = submit(executor, options, params, split_spec, estimate.tasks)
    return Launch(config, params, split_spec, jobs, estimate)


def _workers_per_task(config: MemoConfig, executor: object) -> int:
    """The workers a task runs: ``max_workers``, else the executor's ``cpus_per_task``
    (submitit), else 1."""
    asked = config.backends.spec.requested_workers
    if asked is not None:
        return asked
    cpus = (getattr(executor, "parameters", None) or {}).get("cpus_per_task")
    return cpus if isinstance(cpus, int) and cpus >= 1 else 1
