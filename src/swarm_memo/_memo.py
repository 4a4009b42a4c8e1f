"""The ``SwarmMemo`` facade: plan -> load -> execute -> store -> merge."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from ._backends import BackendFactory
from ._defaults import default_collate, default_merge
from ._diagnostics import Diagnostics, Status
from ._grid import ChunkLayout, _check_positive_int
from ._pipeline import Pipeline, compute_status
from ._plan import EnumerateFn, ExecFn, RunPlan, plan_run
from ._remote import open_store
from ._types import ChunkKey, Params, SplitSpec
from ._wrap import make_wrapper
from .errors import CacheMissError, SpecError, SpecTypeError


def _check_callable(value: Any, name: str) -> None:
    if value is not None and not callable(value):
        raise SpecTypeError(f"{name} must be callable or None; got {type(value).__name__}")


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
        Bump it to invalidate every cached result (e.g. after changing ``exec_fn``).
    max_workers
        Worker count; None means all cores; 1 runs in-process with no pool.
    axis_order
        Order of axes for chunk iteration (first axis slowest) and default point tuples.
        Default: sorted axis names. Never affects cache keys.
    verbose
        0 silent; 1 a progress bar while executing and a one-line summary (stderr);
        2 also logs each chunk written to the ``swarm_memo`` logger.
    executor
        ``"process"`` (default, reused across runs), ``"thread"``, ``"serial"``, any
        ``concurrent.futures.Executor`` (never shut down by swarm-memo) or a
        ``dask.distributed.Client`` (workers compute; only this process touches the cache).
    storage_options
        Options for the fsspec file system when ``cache_root`` is a URL such as
        ``"s3://bucket/sweeps"`` or ``"memory://cache"`` (e.g. ``{"endpoint_url": ...}``).
    on_error
        ``"raise"`` (default): an exception in ``exec_fn`` raises :class:`ExecError` after
        storing every finished chunk. ``"skip"``: failing points are listed in
        ``Diagnostics.failed_points`` and their chunks are not stored.

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
        collate_fn: Callable[[list[Any]], Any] | None = None,
        merge_fn: Callable[[list[Any]], Any] | None = None,
        chunk_hash_fn: Callable[[dict[str, Any], ChunkKey, str], str] | None = None,
        cache_version: str = "v1",
        max_workers: int | None = None,
        axis_order: Sequence[str] | None = None,
        verbose: int = 1,
        *,
        executor: Any = "process",
        on_error: str = "raise",
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(cache_root, (str, os.PathLike)):
            raise SpecTypeError(f"cache_root must be a str or path; got {cache_root!r}")
        self.layout = ChunkLayout.parse(memo_chunk_spec, axis_order)
        self.exec_chunk_size = _check_positive_int(exec_chunk_size, "exec_chunk_size")
        for name, fn in [
            ("enumerate_points", enumerate_points),
            ("exec_fn", exec_fn),
            ("collate_fn", collate_fn),
            ("merge_fn", merge_fn),
            ("chunk_hash_fn", chunk_hash_fn),
        ]:
            _check_callable(fn, name)
        if not isinstance(cache_version, str):
            raise SpecTypeError(f"cache_version must be a str; got {cache_version!r}")
        if max_workers is not None:
            _check_positive_int(max_workers, "max_workers", "None or an int >= 1")
        if verbose not in (0, 1, 2):
            raise SpecError(f"verbose must be 0, 1 or 2; got {verbose!r}")
        if on_error not in ("raise", "skip"):
            raise SpecError(f"on_error must be 'raise' or 'skip'; got {on_error!r}")
        self.cache_root = cache_root
        self.store = open_store(cache_root, storage_options)
        self.enumerate_points = enumerate_points
        self.exec_fn = exec_fn
        self.collate_fn = collate_fn or default_collate
        self.merge_fn = merge_fn or default_merge
        self.chunk_hash_fn = chunk_hash_fn
        self.cache_version = cache_version
        self.max_workers = max_workers
        self.axis_order = self.layout.axis_order
        self.verbose = verbose
        self.on_error = on_error
        self._executors = BackendFactory(executor, max_workers)

    def __repr__(self) -> str:
        return (
            f"SwarmMemo(cache_root={str(self.cache_root)!r}, "
            f"memo_chunk_spec={dict(self.layout.bin_sizes)}, "
            f"exec_chunk_size={self.exec_chunk_size}, cache_version={self.cache_version!r})"
        )

    # ------------------------------------------------------------------ public API

    def run(self, params: Params, split_spec: SplitSpec) -> tuple[Any, Diagnostics]:
        """Compute what is missing, store it, and return ``(merged output, Diagnostics)``.

        The output is ``merge_fn([collate_fn(outputs of chunk) for chunk in chunk order])``
        and does not depend on what came from the cache.
        """
        started = time.perf_counter()
        return Pipeline(self, self._plan(params, split_spec), "run", started=started).execute()

    def run_streaming(self, params: Params, split_spec: SplitSpec) -> Diagnostics:
        """Compute and store what is missing, holding only unfinished chunks in memory.

        Each memo chunk is written as soon as its last point is done; nothing is loaded
        or returned.
        """
        started = time.perf_counter()
        plan = self._plan(params, split_spec)
        return Pipeline(self, plan, "stream", started=started).execute()[1]

    def load(
        self, params: Params, split_spec: SplitSpec, strict: bool = False
    ) -> tuple[Any, Diagnostics]:
        """Return ``(output, Diagnostics)`` built from stored points only; never executes.

        Chunks are collated from the points that are stored (a partly stored chunk gives
        ``collate_fn`` only its stored points, in order); ``Diagnostics.missing_points``
        and ``missing_chunks`` say what is not there. Nothing is written.

        Raises
        ------
        CacheMissError
            With ``strict=True``, when any requested point is not stored.
        """
        started = time.perf_counter()
        plan = self._plan(params, split_spec)
        if strict:
            status = compute_status(plan)
            if status.missing_points:
                raise CacheMissError(
                    f"{status.missing_points} of {status.total_points} points "
                    f"({status.missing_chunks} of {status.total_chunks} chunks) are not stored "
                    "for these params; run() computes them",
                    status.missing_points,
                )
        return Pipeline(self, plan, "load", started=started).execute()

    def status(self, params: Params, split_spec: SplitSpec) -> Status:
        """Count stored and missing points and chunks without executing or loading outputs."""
        return compute_status(self._plan(params, split_spec))

    def run_wrap(self) -> Callable[[Callable[..., Any]], Callable[..., tuple[Any, Diagnostics]]]:
        """Decorator: ``wrapped(params, split_spec=..., **extra) -> (output, Diagnostics)``.

        Extra keyword arguments (and the function's defaults for them) are added to the
        params that key the cache and passed to the function. Each wrapped function has
        its own cache entries.
        """
        return lambda fn: make_wrapper(self, fn, streaming=False)

    def streaming_wrap(self) -> Callable[[Callable[..., Any]], Callable[..., Diagnostics]]:
        """Decorator like :meth:`run_wrap` that runs :meth:`run_streaming`."""
        return lambda fn: make_wrapper(self, fn, streaming=True)

    def close(self) -> None:
        """Shut down worker pools this memo started (also done at interpreter exit)."""
        self._executors.close()

    def _plan(self, params: Any, split_spec: Any) -> RunPlan:
        return plan_run(self, params, split_spec, params, self.exec_fn)

    def to_dataframe(
        self,
        params: Params,
        split_spec: SplitSpec,
        point_to_dict: Callable[[Any], dict[str, Any]] | None = None,
        *,
        load_only: bool = False,
    ) -> Any:
        """Run what is missing, then return a pandas DataFrame: one row per point.

        Columns: one per axis, then the output's fields (a dict output spreads into
        columns; anything else goes into ``value``). Points are read as tuples in
        ``axis_order``; for other point shapes pass ``point_to_dict(point) -> {axis: value}``.
        ``load_only=True`` never executes: only stored points appear. Needs pandas.
        """
        from ._frames import to_dataframe

        return to_dataframe(self, params, split_spec, point_to_dict, load_only=load_only)

    def to_xarray(
        self,
        params: Params,
        split_spec: SplitSpec,
        point_to_dict: Callable[[Any], dict[str, Any]] | None = None,
        *,
        load_only: bool = False,
    ) -> Any:
        """Like :meth:`to_dataframe`, as an xarray Dataset: one dimension per axis, the
        split values as coordinates, NaN where a point is missing. Needs xarray."""
        from ._frames import to_xarray

        return to_xarray(self, params, split_spec, point_to_dict, load_only=load_only)

    def _point_outputs(
        self, params: Params, split_spec: SplitSpec, load_only: bool = False
    ) -> tuple[list[tuple[Any, Any]], Diagnostics]:
        """``(point, output)`` for every stored (or, unless ``load_only``, computed) point,
        in chunk order; points that failed or are missing are left out."""
        plan = self._plan(params, split_spec)
        return Pipeline(self, plan, "load" if load_only else "run", pairs=True).execute()
