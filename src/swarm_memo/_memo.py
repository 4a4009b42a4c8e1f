"""The ``SwarmMemo`` facade: plan -> load -> execute -> store -> merge."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from swarm_memo.core.diagnostics import Diagnostics, Status
from swarm_memo.core.types import EnumerateFn, ExecFn, Params, SplitSpec
from swarm_memo.identity.grid import ChunkLayout
from swarm_memo.run.compact import CompactReport, clear_set, compact
from swarm_memo.run.config import (
    DEFAULT_CLAIM_TIMEOUT,
    DEFAULT_GRACE_SECONDS,
    ChunkHashFn,
    MemoOptions,
    OnCodeChange,
    OnError,
    build_config,
    check_callable,
)
from swarm_memo.run.launch import Launch
from swarm_memo.run.launch import launch as _launch
from swarm_memo.run.plan import Access
from swarm_memo.run.requests import Requests, memo_requests
from swarm_memo.run.sweepwrap import SweptFunction
from swarm_memo.run.wrap import MemoizedSweep

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped,unused-ignore]


class SwarmMemo:
    """Evaluate a function over a grid in parallel, caching results in chunk files.

    Parameters
    ----------
    cache_root
        Directory of the cache; created on first write, with a ``.gitignore``.
    memo_chunk_spec
        Bin size per axis: ``{"strat": 1, "s": 3}`` (an int >= 1 or ``{"size": n}``). Each
        axis list is cut into consecutive bins; memo chunks are the product of the bins,
        one file each.
    exec_chunk_size
        Points per task sent to a worker (exec chunks may span memo chunks).
    enumerate_points
        ``enumerate_points(params, chunk_split_spec) -> list of points`` for one memo
        chunk. Default: the cartesian product of the chunk's values as tuples, in
        ``axis_order``.
    exec_fn
        ``exec_fn(params, point) -> output``. Lambdas and closures work (cloudpickle).
        May be None for a memo used only through its decorators.
    collate_fn
        ``collate_fn(outputs of one chunk) -> chunk value``. Default: the list.
    merge_fn
        ``merge_fn(list of chunk values in chunk order) -> output``. Default: concatenate.
    chunk_hash_fn
        ``chunk_hash_fn(params, chunk_key, cache_version) -> str`` naming a chunk file.
        Default: a stable content digest.
    cache_version
        Bump it to invalidate every cached result.
    max_workers
        Worker count; None means the CPUs this process may use (affinity, cgroup quota,
        ``SLURM_CPUS_PER_TASK``); 1 runs in-process with no pool.
    axis_order
        Order of axes for chunk iteration (first axis slowest) and default point tuples.
        Default: the key order of ``memo_chunk_spec``. Never affects cache keys.
    verbose
        0 prints nothing of ours (problems with cache files are ``CacheWarning``s);
        1 a progress bar while executing (plain status lines when stderr is not a
        terminal) and a one-line summary, on stderr; 2 also prints one line per chunk
        written, on stderr (no logging set-up needed; the ``swarm_memo`` logger has only
        a ``NullHandler`` until the application configures logging).
    executor
        ``"process"`` (default, reused across runs), ``"thread"``, ``"serial"``, any
        ``concurrent.futures.Executor`` (never shut down by swarm-memo) or a
        ``dask.distributed.Client`` (workers compute; only this process touches the cache).
    storage_options
        Options for the fsspec file system when ``cache_root`` is a URL such as
        ``"s3://bucket/sweeps"`` or ``"memory://cache"`` (e.g. ``{"endpoint_url": ...}``).
    durable
        True (default): a local chunk file and then its folder are fsynced before it
        counts as stored, so a power cut loses no finished point. False skips the
        fsyncs, for scratch caches and file systems where they are slow (network and
        cluster file systems, many small chunks); files are still written atomically
        and checksummed, so a file a power cut damages is detected, set aside and
        recomputed. URL caches ignore it.
    on_error
        ``"raise"`` (default): an exception in ``exec_fn`` raises :class:`ExecError` after
        storing every finished chunk. ``"skip"``: failing points are listed in
        ``Diagnostics.failed_points``; the good points of their chunks are stored (as
        partial chunks), so the next run executes only the failed points.
    on_code_change
        What to do with stored results computed by other code than the current ``exec_fn``
        (its code fingerprint is stored with every chunk): ``"warn"`` (default) emits a
        :class:`CodeChangedWarning` once per call and reuses them; ``"recompute"`` treats
        them as missing; ``"ignore"`` reuses them silently.
    chunk_order
        Which missing chunks are computed first: ``"grid"`` (default), ``"coarse-to-fine"``
        (bit-reversed bins per axis: every prefix of a sweep covers the grid evenly) or a
        callable receiving the chunks' sub-specs in grid order and returning their indices.
        The output's order never changes.
    claim_timeout
        Seconds to wait for a chunk claimed by another run before computing it here
        (default 600; None waits forever).
    grace_seconds
        On SIGTERM or Ctrl-C, how long exec chunks in flight may finish before the run
        stores every finished point and stops (default 20).
    deadline
        Stop each computing call the same graceful way after this many seconds, or at
        this ``datetime`` (e.g. a little before a batch job's time limit). Default None.
    defaults
        ``{name: value}``: the value every run used before ``name`` existed. A params key
        at its default is left out of the key (the params set stored without it is used);
        an axis point at its default is also served from the points stored without that
        axis. ``exec_fn`` still receives the key. Changes no file.
    ignore
        Params keys passed to ``exec_fn`` but left out of the key (a Dask client, a log
        folder, a thread count); they need no stable encoding. Never an axis.

    Examples
    --------
    >>> memo = SwarmMemo("./cache", {"s": 2}, 4, exec_fn=lambda p, pt: pt[0] * p["k"])
    >>> out, diag = memo.run({"k": 10}, {"s": [1, 2, 3]})  # doctest: +SKIP
    >>> out  # doctest: +SKIP
    [10, 20, 30]
    """

    def __init__(
        self,
        cache_root: str | os.PathLike[str],
        memo_chunk_spec: dict[str, int | dict[str, int]],
        exec_chunk_size: int,
        enumerate_points: EnumerateFn | None = None,
        exec_fn: ExecFn | None = None,
        collate_fn: Callable[[list[Any]], object] | None = None,
        merge_fn: Callable[[list[Any]], object] | None = None,
        chunk_hash_fn: ChunkHashFn | None = None,
        cache_version: str = "v1",
        max_workers: int | None = None,
        axis_order: Sequence[str] | None = None,
        verbose: int = 1,
        *,
        executor: object = "process",
        on_error: OnError = "raise",
        on_code_change: OnCodeChange = "warn",
        chunk_order: str | Callable[[list[dict[str, list[Any]]]], Sequence[int]] = "grid",
        claim_timeout: float | None = DEFAULT_CLAIM_TIMEOUT,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        deadline: float | datetime | None = None,
        storage_options: dict[str, Any] | None = None,
        durable: bool = True,
        defaults: Mapping[str, object] | None = None,
        ignore: Sequence[str] = (),
    ) -> None:
        self._set_options(
            MemoOptions(
                cache_root,
                memo_chunk_spec,
                exec_chunk_size,
                enumerate_points,
                exec_fn,
                collate_fn,
                merge_fn,
                chunk_hash_fn,
                cache_version,
                max_workers,
                axis_order,
                verbose,
                executor=executor,
                on_error=on_error,
                on_code_change=on_code_change,
                chunk_order=chunk_order,
                claim_timeout=claim_timeout,
                grace_seconds=grace_seconds,
                deadline=deadline,
                storage_options=storage_options,
                durable=durable,
                defaults=defaults,
                ignore=ignore,
            )
        )

    def _set_options(self, options: MemoOptions) -> None:
        """Validate ``options`` (raising before any work) into this memo's config."""
        self.config = build_config(options)
        self._options = options

    @property
    def options(self) -> MemoOptions:
        """The constructor's arguments, as given (a frozen :class:`MemoOptions`)."""
        return self._options

    def __getstate__(self) -> dict[str, object]:
        """A memo pickles as its arguments (pools are not sent along)."""
        return {"arguments": self._options.arguments()}

    def __setstate__(self, state: dict[str, dict[str, Any]]) -> None:
        self._set_options(MemoOptions(**state["arguments"]))

    def __enter__(self) -> SwarmMemo:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def cache_root(self) -> str:
        return self.config.cache_root

    @property
    def layout(self) -> ChunkLayout:
        return self.config.layout

    @property
    def axis_order(self) -> tuple[str, ...]:
        return self.config.layout.axis_order

    @property
    def exec_fn(self) -> ExecFn | None:
        return self.config.exec_fn

    @exec_fn.setter
    def exec_fn(self, fn: ExecFn | None) -> None:
        """Swap the function (e.g. after a fix); the memo keeps its pools."""
        check_callable(fn, "exec_fn")
        self.config = replace(self.config, exec_fn=fn)
        self._options = replace(self._options, exec_fn=fn)

    @property
    def collate_fn(self) -> Callable[[list[Any]], object]:
        return self.config.collate_fn

    @property
    def merge_fn(self) -> Callable[[list[Any]], object]:
        return self.config.merge_fn

    @property
    def cache_version(self) -> str:
        return self.config.cache_version

    def __repr__(self) -> str:
        return (
            f"SwarmMemo(cache_root={self.cache_root!r}, "
            f"memo_chunk_spec={dict(self.layout.bin_sizes)}, "
            f"exec_chunk_size={self.config.exec_chunk_size}, "
            f"cache_version={self.cache_version!r})"
        )

    # ------------------------------------------------------------------ public API

    def run(self, params: Params, split_spec: SplitSpec) -> tuple[Any, Diagnostics]:
        """Compute what is missing, store it, and return ``(merged output, Diagnostics)``.

        With the default ``collate_fn`` and ``merge_fn`` the output lists every point's
        output in grid order (row-major over ``axis_order``); with a custom one it is
        ``merge_fn([collate_fn(outputs of chunk) for chunk in chunk order])``. It never
        depends on what came from the cache.
        """
        return self._requests().run(params, split_spec)

    def run_streaming(self, params: Params, split_spec: SplitSpec) -> Diagnostics:
        """Compute and store what is missing, holding only unfinished chunks in memory.

        Each memo chunk is written as soon as its last point is done; nothing is loaded
        or returned.
        """
        return self._requests().stream(params, split_spec)

    def load(
        self, params: Params, split_spec: SplitSpec, strict: bool = False
    ) -> tuple[Any, Diagnostics]:
        """Return ``(output, Diagnostics)`` built from stored points only; never executes
        and never writes, moves or rewrites anything in the cache.

        Chunks are collated from the points that are stored (a partly stored chunk gives
        ``collate_fn`` only its stored points, in order); ``Diagnostics.missing_points``
        and ``missing_chunks`` say what is not there.

        Raises
        ------
        CacheMissError
            With ``strict=True``, when any requested point is not served (not stored,
            damaged, unreadable here, or computed by other code under
            ``on_code_change="recompute"``).
        """
        return self._requests().load(params, split_spec, strict)

    def status(self, params: Params, split_spec: SplitSpec) -> Status:
        """Count stored and missing points and chunks without executing, loading outputs
        or writing anything: the accounting of a run that executes nothing."""
        return self._requests().status(params, split_spec)

    def launch(
        self,
        params: Params,
        split_spec: SplitSpec,
        executor: object,
        tasks: int | None = None,
        task_seconds: float | None = None,
    ) -> Launch:
        """Fan the sweep out as tasks of one job array; return a :class:`Launch`.

        Each task receives this memo's :attr:`options` (its constructor arguments),
        builds the memo's config from them and runs :meth:`run_streaming` on the shared
        cache, its own share of the chunks first (see *Running on a cluster* in the
        README); ``max_workers=None`` resolves in each task to the CPUs it was allocated.
        No more tasks than missing chunks are submitted; nothing is submitted when nothing
        is missing. The submitter may exit: a later ``launch`` or ``run`` resumes the sweep.

        Parameters
        ----------
        params, split_spec
            The sweep, as for :meth:`run`.
        executor
            A submitit executor, e.g. ``submitit.AutoExecutor(folder="logs")`` with
            ``slurm_partition``, ``timeout_min``, ``cpus_per_task`` set (on a machine
            without Slurm, ``cluster="local"`` runs the tasks as local processes).
        tasks
            How many tasks (array jobs), an int >= 1; None: 1, or as many as
            ``task_seconds`` needs.
        task_seconds
            The wall time a task may use. With timings stored for these params (from
            earlier runs), the number of tasks is chosen so that each task's share fits,
            and each task gets a ``deadline`` a margin before it (it stops gracefully,
            storing what it finished). Without timings yet, ``tasks`` tasks are launched
            (with the deadline) and the log says so. ``Launch.estimate`` tells.

        Returns
        -------
        Launch
            ``.jobs``, ``.estimate``, ``.status()`` (from the cache, never waits; per-task
            progress), ``.done()`` and ``.result() -> (output, Diagnostics)``, which waits
            for the tasks.

        Raises
        ------
        SpecTypeError, SpecError
            Before submitting anything: ``tasks`` is not None or an int >= 1,
            ``task_seconds`` is not None or a number > 0, ``executor`` has no
            ``map_array``/``submit``, or the memo's options cannot be pickled.

        Examples
        --------
        >>> import submitit  # doctest: +SKIP
        >>> ex = submitit.AutoExecutor(folder="logs")  # doctest: +SKIP
        >>> ex.update_parameters(timeout_min=60, cpus_per_task=8)  # doctest: +SKIP
        >>> out, diag = memo.launch(params, spec, ex, tasks=20).result()  # doctest: +SKIP
        >>> handle = memo.launch(params, spec, ex, task_seconds=3600)  # doctest: +SKIP
        """
        options, config = self._options, self.config
        return _launch(options, config, params, split_spec, executor, tasks, task_seconds)

    def run_wrap(
        self, ignore: Sequence[str] = ()
    ) -> Callable[[Callable[..., object]], MemoizedSweep]:
        """Decorator: ``wrapped(params, split_spec=..., **extra) -> (output, Diagnostics)``.

        Extra keyword arguments (and the function's defaults for them) are added to the
        params that key the cache and passed to the function. Each wrapped function has
        its own cache entries, keyed by its qualified name and code fingerprint. Names in
        ``ignore`` (extra arguments or params keys) are passed but left out of the key.
        """
        return lambda fn: MemoizedSweep(
            self._requests(code=False), fn, streaming=False, ignore=ignore
        )

    def streaming_wrap(
        self, ignore: Sequence[str] = ()
    ) -> Callable[[Callable[..., object]], MemoizedSweep]:
        """Decorator like :meth:`run_wrap` that runs :meth:`run_streaming`."""
        return lambda fn: MemoizedSweep(
            self._requests(code=False), fn, streaming=True, ignore=ignore
        )

    def sweep_wrap(
        self, ignore: Sequence[str] = ()
    ) -> Callable[[Callable[..., object]], SweptFunction]:
        """Decorator for a function of named scalars: ``f(alpha=0.4, x=[1, 2], y=[3])``
        runs the grid of the axis arguments (the names in ``memo_chunk_spec``; the other
        arguments are params), calling ``f(alpha=0.4, x=1, y=3)`` once per missing point,
        and returns ``(output, Diagnostics)`` in grid order. ``.status``, ``.load``,
        ``.to_dataframe`` and ``.to_xarray`` take the same arguments. Keyed like
        :meth:`run_wrap`; names in ``ignore`` are passed but left out of the key.
        """
        return lambda fn: SweptFunction(self._requests(code=False), fn, ignore)

    def clear(self, params: Params) -> int:
        """Forget every stored result of ``params`` (under this memo's cache_version);
        return how many chunk files were removed."""
        plan = self._requests(code=False).plan(
            params, {a: [] for a in self.axis_order}, access=Access.MAINTAIN
        )
        return clear_set(plan.pset)

    def compact(self, params: Params, split_spec: SplitSpec) -> CompactReport:
        """Rewrite the stored points of a request into exactly this memo's chunk files,
        then remove the files of ``params`` whose points are all stored in those.

        After inserts and rebinning, points sit in many overlapping files; compacting
        leaves one file per chunk of the current layout. Nothing is executed or lost:
        a file is removed only when every one of its points is stored elsewhere.
        """
        return compact(self._requests().plan(params, split_spec, access=Access.MAINTAIN))

    def close(self) -> None:
        """Shut down worker pools this memo started (also done at interpreter exit)."""
        self.config.backends.close()

    def to_dataframe(
        self,
        params: Params,
        split_spec: SplitSpec,
        point_to_dict: Callable[[Any], Mapping[str, object]] | None = None,
        *,
        load_only: bool = False,
        array_dims: Mapping[Any, Sequence[str]] | None = None,
    ) -> pd.DataFrame:
        """Run what is missing, then return a pandas DataFrame: one row per point.

        Columns: one per axis, then the output's fields (a dict output spreads into
        columns; anything else goes into ``value``). Points are read as tuples in
        ``axis_order``; for other point shapes pass ``point_to_dict(point) -> {axis: value}``.
        ``load_only=True`` never executes: only stored points appear. Array outputs give
        one row per array element, with one position column per array axis, named
        ``<field>_dim_<i>`` or as ``array_dims={field: (names...)}`` says. Needs pandas.
        """
        return self._requests().frame(
            "dataframe", params, split_spec, point_to_dict, load_only, array_dims=array_dims
        )

    def to_xarray(
        self,
        params: Params,
        split_spec: SplitSpec,
        point_to_dict: Callable[[Any], Mapping[str, object]] | None = None,
        *,
        load_only: bool = False,
        array_dims: Mapping[Any, Sequence[str]] | None = None,
    ) -> Any:
        """Like :meth:`to_dataframe`, as an xarray Dataset: one dimension per axis, the
        split values as coordinates, NaN where a point is missing. Array outputs give a
        numeric variable with one more dimension per array axis (named as in
        :meth:`to_dataframe`). Needs xarray."""
        return self._requests().frame(
            "xarray", params, split_spec, point_to_dict, load_only, array_dims=array_dims
        )

    # ------------------------------------------------------------------ internals

    def _requests(self, code: bool = True) -> Requests:
        """This call's requests (the code fingerprint is taken now, once per call)."""
        return memo_requests(self.config, code=code)
