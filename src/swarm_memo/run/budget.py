"""A launch's budget from stored timings, and the progress of each task's share.

With ``task_seconds`` (the wall time a task may use) and per-point timings stored with
the params set's chunks (``compute_seconds`` / ``computed_points`` of their provenance),
:func:`plan_tasks` picks how many tasks the missing points need so that every task's
share fits, and the ``deadline`` each task stops at, gracefully, a margin before its time
is up. :func:`launch_status` reads the cache (never waits on a task) and counts what each
task's share still misses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from swarm_memo.core.diagnostics import Status
from swarm_memo.errors import SpecError
from swarm_memo.identity.order import Share
from swarm_memo.run.pipeline import execute
from swarm_memo.run.plan import Access
from swarm_memo.run.sinks import Discard

if TYPE_CHECKING:
    from swarm_memo.identity.grid import Chunk
    from swarm_memo.run.requests import Requests

MARGIN_FRACTION = 0.1
"""A task stops at least this fraction of ``task_seconds`` before its time is up..."""
WRITE_SECONDS = 5.0
"""... and at least ``grace_seconds`` (in-flight points) plus this (the last writes)."""


@dataclass(frozen=True)
class Estimate:
    """How a launch sized its tasks (``Launch.estimate``)."""

    tasks: int
    missing_points: int
    seconds_per_point: float | None
    """Mean compute seconds of one point on one worker, from stored timings (None: none)."""
    workers_per_task: int
    task_seconds: float | None
    deadline: float | None
    """Seconds after which each task stops gracefully (None: no deadline)."""
    note: str = ""

    def __str__(self) -> str:
        return self.note or f"{self.tasks} tasks"


@dataclass(frozen=True)
class TaskProgress:
    """What the share of one task (task ``task`` of the launch) holds and still misses."""

    task: int
    chunks: int
    missing_chunks: int
    missing_points: int

    @property
    def done(self) -> bool:
        return self.missing_points == 0


@dataclass
class LaunchStatus(Status):
    """``Launch.status()``: the sweep's :class:`Status`, per-task progress and the estimate."""

    tasks: list[TaskProgress] = field(default_factory=list)
    estimate: Estimate | None = None

    def summary(self) -> str:
        lines = [f"{self.cached_points} of {self.total_points} points stored"]
        for task in self.tasks:
            done = task.chunks - task.missing_chunks
            lines.append(
                f"task {task.task}: {done} of {task.chunks} chunks of its share stored, "
                f"{task.missing_points} points missing"
            )
        if self.estimate is not None and self.estimate.note:
            lines.append(f"estimate: {self.estimate.note}")
        return "\n".join(lines)


def check_task_seconds(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise SpecError(f"task_seconds must be None or a number of seconds > 0; got {value!r}")
    return float(value)


def task_deadline(task_seconds: float, grace_seconds: float) -> float:
    """When a task of ``task_seconds`` stops: a margin before, for in-flight points and
    the last writes (at most half of its time)."""
    margin = max(MARGIN_FRACTION * task_seconds, grace_seconds + WRITE_SECONDS)
    return task_seconds - min(margin, task_seconds / 2)


def plan_tasks(
    status: Status, tasks: int | None, task_seconds: float | None, workers: int, grace: float
) -> Estimate:
    """How many tasks to launch and when each stops (see the module docstring)."""
    asked = 1 if tasks is None else tasks
    missing, chunks = status.missing_points, max(1, status.missing_chunks)
    rate = status.estimated_seconds / missing if status.estimated_seconds and missing else None
    if task_seconds is None:
        return Estimate(min(asked, chunks), missing, rate, workers, None, None)
    deadline = task_deadline(task_seconds, grace)
    if rate is None:
        note = (
            f"no stored timings for these params yet: {asked} tasks as asked, each "
            f"stopping after {deadline:g} s"
        )
        return Estimate(min(asked, chunks), missing, None, workers, task_seconds, deadline, note)
    fits = deadline * workers / rate  # points one task computes before its deadline
    needed = max(1, math.ceil(missing / fits))
    count = min(needed, chunks)
    note = (
        f"{missing} points x {rate:.3g} s = {missing * rate:.0f} s on one worker; a task "
        f"of {workers} workers computes ~{fits:.0f} points in {deadline:g} s: {count} tasks"
    )
    if needed > count:
        note += (
            f" (one per missing chunk; {needed} would be needed: chunks longer than a task "
            "stop at the deadline, stored, and a later launch goes on)"
        )
    return Estimate(count, missing, rate, workers, task_seconds, deadline, note)


class _ByChunk(Discard):
    """Remembers how many points each missing chunk misses."""

    def __init__(self) -> None:
        super().__init__()
        self.missing_by_index: dict[int, int] = {}

    def missing(self, chunk: Chunk, count: int) -> None:
        super().missing(chunk, count)
        self.missing_by_index[chunk.index] = count


def launch_status(
    requests: Requests, params: object, split_spec: object, count: int, estimate: Estimate | None
) -> LaunchStatus:
    """The status of a launch of ``count`` tasks, read from the cache (never writes)."""
    plan = requests.plan(params, split_spec, access=Access.READ)
    sink = _ByChunk()
    diag = execute(plan, sink)
    rate = plan.pset.seconds_per_point() if diag.missing_points else None
    base = Status.of(diag, sink.missing_specs, rate)
    named = plan.named_chunks
    order = plan.config.chunk_order.order(plan.shape, lambda: [c.split_spec for c, _ in named])
    progress = []
    for task in range(count):
        mine = Share(task, count).arrange(order, helping=False)
        missing = [sink.missing_by_index[i] for i in mine if i in sink.missing_by_index]
        progress.append(TaskProgress(task, len(mine), len(missing), sum(missing)))
    return LaunchStatus(**vars(base), tasks=progress, estimate=estimate)
