"""The exceptions swarm-memo raises, rooted at :class:`SwarmMemoError`.

Each subclass also inherits the builtin a caller would naturally catch: a bad spec is a
``ValueError``, a value that cannot be hashed is a ``TypeError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class SwarmMemoError(Exception):
    """Something went wrong inside swarm-memo; the base of every error it raises."""


class SpecError(SwarmMemoError, ValueError):
    """An argument has the right type but a value swarm-memo cannot use."""


class SpecTypeError(SwarmMemoError, TypeError):
    """An argument has a type swarm-memo cannot use."""


class UnhashableValueError(SwarmMemoError, TypeError):
    """A parameter, axis value or point has no stable, canonical encoding.

    ``where`` says where the value sits (e.g. ``params['model']``).
    """

    def __init__(self, message: str, where: str = "", value_type: type | None = None) -> None:
        super().__init__(message)
        self.where = where
        self.value_type = value_type


class ExecError(SwarmMemoError, RuntimeError):
    """``exec_fn`` raised while evaluating a point.

    ``point`` is the failing point, ``params`` the params of the run, ``exc_type`` and
    ``exc_message`` describe the original exception and ``worker_traceback`` holds its
    traceback text as printed in the worker.
    """

    def __init__(
        self,
        message: str,
        *,
        point: object = None,
        params: Mapping[str, object] | None = None,
        exc_type: str = "",
        exc_message: str = "",
        worker_traceback: str = "",
    ) -> None:
        super().__init__(message)
        self.point = point
        self.params = params
        self.exc_type = exc_type
        self.exc_message = exc_message
        self.worker_traceback = worker_traceback


class TaskFailedError(ExecError):
    """A task of a launched sweep failed (``exec_fn`` raised, the task was killed, ...).

    ``task`` is its index in the job array, ``job_id`` the scheduler's id (None when the
    executor has none), ``also_failed`` the indices of the other tasks that failed.
    ``exc_type`` and ``exc_message`` describe the original error, ``worker_traceback``
    holds the task's error text; ``point`` is the failing point when the executor hands
    back the exception itself (submitit hands back only its text, which names the point).
    """

    def __init__(
        self,
        message: str,
        *,
        task: int,
        job_id: str | None,
        also_failed: Sequence[int] = (),
        point: object = None,
        params: Mapping[str, object] | None = None,
        exc_type: str = "",
        exc_message: str = "",
        worker_traceback: str = "",
    ) -> None:
        super().__init__(
            message,
            point=point,
            params=params,
            exc_type=exc_type,
            exc_message=exc_message,
            worker_traceback=worker_traceback,
        )
        self.task = task
        self.job_id = job_id
        self.also_failed = list(also_failed)


class InspectError(SwarmMemoError, ValueError):
    """A user error: missing cache root, unknown or ambiguous digest, bad duration."""


class WorkerDiedError(ExecError):
    """A worker process died (segfault, ``os._exit``, out of memory) while running points.

    ``points`` holds every point of the exec chunk that was lost.
    """

    def __init__(
        self, message: str, *, points: Sequence[object], params: Mapping[str, object] | None = None
    ) -> None:
        super().__init__(message, point=points[0] if points else None, params=params)
        self.points = points


class CollateError(SwarmMemoError, RuntimeError):
    """``collate_fn`` raised for a chunk; ``chunk`` is its sub-spec (axis -> values)."""

    def __init__(self, message: str, chunk: Mapping[str, Sequence[object]] | None = None) -> None:
        super().__init__(message)
        self.chunk = chunk


class RunInterrupted(SwarmMemoError):
    """A run was stopped (SIGTERM, SIGUSR1, its deadline) after storing every finished
    point; ``signum`` is the signal (None for a deadline). Running again resumes it."""

    def __init__(self, message: str, signum: int | None = None) -> None:
        super().__init__(message)
        self.signum = signum


class CacheMissError(SwarmMemoError, LookupError):
    """``load(..., strict=True)`` found points that are not stored yet."""

    def __init__(self, message: str, missing_points: int) -> None:
        super().__init__(message)
        self.missing_points = missing_points


class CorruptChunkError(SwarmMemoError, ValueError):
    """A chunk file is truncated, damaged, foreign or of a newer format."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class StoreError(SwarmMemoError, OSError):
    """The cache location cannot be read or written (missing permission, full disk, a file
    where a folder should be); ``path`` names it."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class UnreadableChunkError(SwarmMemoError, ValueError):
    """A chunk file is intact but cannot be read by this process (a newer format, or an
    output whose class cannot be imported here); it is left where it is."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class CacheWarning(UserWarning):
    """A cache file could not be used (damaged, foreign, newer format); its points count as
    missing."""


class CodeChangedWarning(CacheWarning):
    """Stored results were computed by other code than the current ``exec_fn``."""


class AxisOrderWarning(CacheWarning):
    """Stored results were computed for points laid out in another axis order."""


__all__ = [
    "AxisOrderWarning",
    "CacheMissError",
    "CacheWarning",
    "CodeChangedWarning",
    "CollateError",
    "CorruptChunkError",
    "ExecError",
    "InspectError",
    "RunInterrupted",
    "SpecError",
    "SpecTypeError",
    "StoreError",
    "SwarmMemoError",
    "TaskFailedError",
    "UnhashableValueError",
    "UnreadableChunkError",
    "WorkerDiedError",
]
