"""The ``SwarmMemo`` facade: plan -> load -> execute -> store -> merge."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ._cache import ParamsSet, check_chunk_name, logger
from ._codec import ChunkRecord
from ._diagnostics import Diagnostics, Status
from ._executors import ExecutorFactory
from ._grid import Chunk, ChunkLayout, Grid, _check_positive_int, product_points, reorder_product
from ._hashing import digest_bytes, encode, point_digest
from ._progress import Progress
from ._reuse import Reuse
from ._scheduler import MISSING, ChunkJob, Engine, ExecPlan
from ._store import LocalStore
from ._types import ChunkKey
from ._worker import PointFailure
from ._wrap import make_wrapper
from .errors import CacheMissError, SpecError, SpecTypeError, UnhashableValueError

ExecFn = Callable[[dict[str, Any], Any], Any]
EnumerateFn = Callable[[dict[str, Any], dict[str, list[Any]]], Sequence[Any]]


def default_collate(outputs: list[Any]) -> list[Any]:
    """The default ``collate_fn``: a chunk's outputs as a list, in point order."""
    return list(outputs)


def default_merge(chunks: list[Any]) -> list[Any]:
    """The default ``merge_fn``: concatenate the chunks' lists in chunk order."""
    return [item for chunk in chunks for item in chunk]


def _check_callable(value: Any, name: str) -> None:
    if value is not None and not callable(value):
        raise SpecTypeError(f"{name} must be callable or None; got {type(value).__name__}")


@dataclass
class _Run:
    """One request, validated: what to key the cache by, what to run, where it lives."""

    key_params: dict[str, Any]
    exec_params: dict[str, Any]
    exec_fn: ExecFn | None
    grid: Grid
    pset: ParamsSet
    named_chunks: list[tuple[Chunk, str]]


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
        self.store = LocalStore(cache_root)
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
        self._executors = ExecutorFactory(executor, max_workers)

    def __repr__(self) -> str:
        return (
            f"SwarmMemo(cache_root={str(self.cache_root)!r}, "
            f"memo_chunk_spec={dict(self.layout.bin_sizes)}, "
            f"exec_chunk_size={self.exec_chunk_size}, cache_version={self.cache_version!r})"
        )

    # ------------------------------------------------------------------ public API

    def run(
        self, params: dict[str, Any], split_spec: dict[str, list[Any]]
    ) -> tuple[Any, Diagnostics]:
        """Compute what is missing, store it, and return ``(merged output, Diagnostics)``.

        The output is ``merge_fn([collate_fn(outputs of chunk) for chunk in chunk order])``
        and does not depend on what came from the cache.
        """
        run = self._plan(params, split_spec, params, self.exec_fn)
        return self._execute(run, "run")

    def run_streaming(
        self, params: dict[str, Any], split_spec: dict[str, list[Any]]
    ) -> Diagnostics:
        """Compute and store what is missing, holding only unfinished chunks in memory.

        Each memo chunk is written as soon as its last point is done; nothing is loaded
        or returned.
        """
        run = self._plan(params, split_spec, params, self.exec_fn)
        return self._execute(run, "stream")[1]

    def load(
        self, params: dict[str, Any], split_spec: dict[str, list[Any]], strict: bool = False
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
        run = self._plan(params, split_spec, params, self.exec_fn)
        if strict:
            status = self._status(run)
            if status.missing_points:
                raise CacheMissError(
                    f"{status.missing_points} of {status.total_points} points "
                    f"({status.missing_chunks} of {status.total_chunks} chunks) are not stored "
                    "for these params; run() computes them",
                    status.missing_points,
                )
        return self._execute(run, "load")

    def status(self, params: dict[str, Any], split_spec: dict[str, list[Any]]) -> Status:
        """Count stored and missing points and chunks without executing or loading outputs."""
        return self._status(self._plan(params, split_spec, params, self.exec_fn))

    def _status(self, run: _Run) -> Status:
        status = Status(total_chunks=len(run.named_chunks))
        stored = run.pset.stored_names()
        reuse = Reuse(run.pset, stored)
        for chunk, name in run.named_chunks:
            if name in stored:
                count = found = self._point_count(run, chunk)
            elif self.enumerate_points is None:
                count = chunk.product_size
                found = len(reuse.locate(chunk, None))
            else:
                points = self._points(run, chunk)
                count = len(points)
                found = len(reuse.locate(chunk, self._point_digests(chunk, points)))
            status.total_points += count
            status.cached_points += found
            if found == count:
                status.cached_chunks += 1
            else:
                status.missing_chunks += 1
                status.missing.append(chunk.split_spec)
        status.missing_points = status.total_points - status.cached_points
        return status

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

    # ------------------------------------------------------------------ planning

    def _plan(
        self,
        key_params: Any,
        split_spec: Any,
        exec_params: dict[str, Any],
        exec_fn: ExecFn | None,
    ) -> _Run:
        if not isinstance(key_params, dict):
            raise SpecTypeError(f"params must be a dict; got {type(key_params).__name__}")
        params_encoding = encode(key_params, "params")
        grid = Grid.build(split_spec, self.layout)
        set_id = digest_bytes(
            b"swarm-memo-params-set" + params_encoding + encode(self.cache_version)
        ).hex()
        pset = ParamsSet(self.store, set_id, key_params, self.cache_version)
        run = _Run(key_params, exec_params, exec_fn, grid, pset, [])
        if self.enumerate_points is not None and grid.chunk_count:
            first = next(grid.chunks())  # catch unhashable points before any work starts
            self._point_digests(first, self._points(run, first))
        run.named_chunks = [
            (chunk, self._chunk_name(key_params, params_encoding, chunk)) for chunk in grid.chunks()
        ]
        return run

    def _chunk_name(self, params: dict[str, Any], params_encoding: bytes, chunk: Chunk) -> str:
        if self.chunk_hash_fn is not None:
            try:
                return check_chunk_name(self.chunk_hash_fn(params, chunk.key, self.cache_version))
            except ValueError as exc:
                raise SpecError(str(exc)) from exc
        # Equal to a digest of (params, chunk key, cache_version), computed from per-bin
        # digests so a grid of a million points plans in milliseconds.
        return digest_bytes(
            b"swarm-memo-chunk" + params_encoding + chunk.key_digest() + encode(self.cache_version)
        ).hex()

    def _points(self, run: _Run, chunk: Chunk) -> list[Any]:
        if self.enumerate_points is None:
            return product_points(run.exec_params, chunk.split_spec)
        points = self.enumerate_points(run.exec_params, chunk.split_spec)
        if isinstance(points, (str, bytes)) or not isinstance(points, Sequence):
            raise SpecTypeError(
                f"enumerate_points must return a list of points; got {type(points).__name__} "
                f"for chunk {chunk.split_spec!r:.200}"
            )
        return list(points)

    def _point_count(self, run: _Run, chunk: Chunk) -> int:
        if self.enumerate_points is None:
            return chunk.product_size
        return len(self._points(run, chunk))

    # ------------------------------------------------------------------ execution

    def _load_exact(
        self, run: _Run, chunk: Chunk, name: str, diag: Diagnostics
    ) -> list[Any] | None:
        """Outputs of a chunk's own file in request order, or None when unusable."""
        load_started = time.perf_counter()
        record = run.pset.load(name, chunk.key)
        diag.load_time += time.perf_counter() - load_started
        if record is None:
            return None
        if record.points is None and self.enumerate_points is None:
            lengths = {axis: len(values) for axis, values in chunk.key}
            return reorder_product(record.outputs, lengths, record.axes, chunk.axes)
        if record.resolved_points() == self._points(run, chunk):
            return record.outputs
        return None  # stored for other points (enumerate_points changed): reassemble

    def _execute(self, run: _Run, mode: str) -> tuple[Any, Diagnostics]:
        """The one pipeline behind run ("run"), run_streaming ("stream") and load ("load")."""
        started = time.perf_counter()
        diag = Diagnostics(total_chunks=len(run.named_chunks))
        stored = run.pset.stored_names()
        values: dict[int, Any] = {}
        missing: list[tuple[Chunk, str]] = []
        for chunk, name in run.named_chunks:
            if name in stored and mode == "stream":
                diag.cached_chunks += 1
                diag.cached_points += self._point_count(run, chunk)
                continue
            outputs = self._load_exact(run, chunk, name, diag) if name in stored else None
            if outputs is None:
                missing.append((chunk, name))
            else:
                values[chunk.index] = self.collate_fn(outputs)
                diag.cached_chunks += 1
                diag.cached_points += len(outputs)
        expected = sum(chunk.product_size for chunk, _ in missing)
        with Progress(self.verbose if mode != "load" else 0, diag.cached_points, expected) as bar:
            jobs = self._jobs(run, missing, Reuse(run.pset, stored), bar)
            if mode == "load":
                self._collect_stored(jobs, values, diag)
            else:
                for job in self._engine_jobs(run, jobs, bool(missing), diag, bar):
                    if mode == "run":
                        values[job.index] = self.collate_fn(job.outputs)
        diag.total_points = diag.cached_points + diag.executed_points + diag.missing_points
        diag.quarantined_files = len(run.pset.quarantined)
        output = self.merge_fn([values[i] for i in sorted(values)]) if mode != "stream" else None
        diag.wall_time = time.perf_counter() - started
        if self.verbose and mode != "load":
            print(f"swarm-memo: {diag.summary()}", file=sys.stderr)
        return output, diag

    def _jobs(
        self, run: _Run, missing: list[tuple[Chunk, str]], reuse: Reuse, bar: Progress
    ) -> Iterator[ChunkJob]:
        """Chunks without a usable file of their own, filled with every stored point."""
        for chunk, name in missing:
            points = self._points(run, chunk)
            digests = self._point_digests(chunk, points)
            bar.adjust_total(len(points) - chunk.product_size)
            outputs = [MISSING] * len(points)
            reused = reuse.fill(chunk, digests, outputs)
            bar.skip(reused)
            todo = [i for i, output in enumerate(outputs) if output is MISSING]
            yield ChunkJob(chunk.index, name, points, outputs, todo, reused, digests)

    def _point_digests(self, chunk: Chunk, points: list[Any]) -> list[bytes] | None:
        """Digests of enumerated points (None for product chunks, found by their bins)."""
        if self.enumerate_points is None:
            return None
        try:
            return [point_digest(p) for p in points]
        except UnhashableValueError as exc:
            raise UnhashableValueError(
                f"enumerate_points returned a point that cannot be hashed for chunk "
                f"{chunk.split_spec!r:.200}: {exc}",
                where=exc.where,
                value_type=exc.value_type,
            ) from exc

    @staticmethod
    def _count(job: ChunkJob, diag: Diagnostics) -> None:
        diag.reused_points += job.reused
        diag.cached_points += job.reused
        if job.missing:
            diag.executed_chunks += 1
            diag.executed_points += len(job.missing)
        else:
            diag.cached_chunks += 1

    def _collect_stored(
        self, jobs: Iterator[ChunkJob], values: dict[int, Any], diag: Diagnostics
    ) -> None:
        """``load``: keep whatever points are stored; count the rest as missing."""
        for job in jobs:
            diag.reused_points += job.reused
            diag.cached_points += job.reused
            if job.missing:
                diag.missing_chunks += 1
                diag.missing_points += len(job.missing)
                available = [o for o in job.outputs if o is not MISSING]
                if available:
                    values[job.index] = self.collate_fn(available)
            else:
                diag.cached_chunks += 1
                values[job.index] = self.collate_fn(job.outputs)

    def _check_can_execute(self, run: _Run) -> None:
        if run.exec_fn is None:
            raise SpecError(
                "points are missing from the cache but this SwarmMemo has no exec_fn; pass "
                "exec_fn=... or call it through run_wrap()/streaming_wrap()"
            )

    def _engine_jobs(
        self,
        run: _Run,
        jobs: Iterator[ChunkJob],
        any_missing: bool,
        diag: Diagnostics,
        bar: Progress,
    ) -> Iterator[ChunkJob]:
        """Execute what the jobs miss; write each chunk as it completes, then yield it."""
        if not any_missing:
            return
        self.store.init_root()
        run.pset.clean_temp()
        plan = ExecPlan(
            run.exec_fn,  # type: ignore[arg-type]  # checked lazily: reuse may need none
            run.exec_params,
            self.exec_chunk_size,
            skip_errors=self.on_error == "skip",
            on_progress=bar.advance,
        )
        engine = Engine(self._executors.backend, plan, diag, lambda: self._check_can_execute(run))
        for job in engine.run(jobs):
            self._count(job, diag)
            self._store_job(run, job, diag)
            yield job

    def _store_job(self, run: _Run, job: ChunkJob, diag: Diagnostics) -> None:
        if any(isinstance(o, PointFailure) for o in job.outputs):
            logger.warning("swarm-memo: chunk %s has failed points; not stored", job.name)
            return
        chunk = run.named_chunks[job.index][0]
        record = ChunkRecord(
            run.key_params,
            self.cache_version,
            chunk.key,
            run.grid.axis_names,
            None if self.enumerate_points is None else job.points,
            job.outputs,
        )
        write_started = time.perf_counter()
        run.pset.save(job.name, record, job.digests)
        diag.write_time += time.perf_counter() - write_started
        diag.stream_flushes += 1
        if self.verbose >= 2:
            logger.info(
                "swarm-memo: wrote chunk %d (%d points) as %s", job.index, len(job.points), job.name
            )
