"""Requests of one function on one memo: plan a call, pick its sink, run the pipeline.

The facade's methods and the wrapped functions of ``run_wrap``/``streaming_wrap`` all come
here, so every call takes the same path: :func:`~swarm_memo.run.pipeline.execute` with a sink.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from swarm_memo.core.diagnostics import Diagnostics, Status
from swarm_memo.core.types import ExecFn
from swarm_memo.errors import CacheMissError
from swarm_memo.identity.fingerprint import call_fingerprint, ran
from swarm_memo.run.config import MemoConfig
from swarm_memo.run.pipeline import execute
from swarm_memo.run.plan import Access, RunPlan, plan_run
from swarm_memo.run.sinks import Collated, Discard, GridOrdered, Pairs, Sink

if TYPE_CHECKING:
    from swarm_memo.core.picture import Coverage

FrameKind = Literal["dataframe", "xarray"]


def sink_for(plan: RunPlan) -> Collated | GridOrdered:
    """Grid order for default points with the default collation, else chunk order."""
    config = plan.config
    if config.grid_ordered and plan.product:
        return GridOrdered(plan.grid)
    return Collated(config.collate_fn, config.merge_fn)


def _plan_coverage(plan: RunPlan) -> Coverage:
    """Which point of a planned request is stored, missing or failed (read on demand)."""
    from swarm_memo.run.coverage import plan_coverage  # reads metas only: imported when drawn

    return plan_coverage(plan)


@dataclass(frozen=True)
class Requests:
    """Calls of one function (``exec_fn`` or a wrapped one) on one memo's config."""

    config: MemoConfig
    exec_fn: ExecFn | None
    code: str | None
    function_name: str
    ignore: frozenset[str] = frozenset()
    """Keys of the params passed to the function but left out of the key."""
    fingerprinted: Callable[..., object] | None = None
    """The function whose fingerprint ``code`` is (after a run, :func:`ran` records the
    state the run left it in: what it did to its own state is not a code change)."""

    def plan(
        self,
        key_params: object,
        split_spec: object,
        *,
        access: Access,
        exec_params: Mapping[str, object] | None = None,
    ) -> RunPlan:
        return plan_run(
            self.config,
            key_params,
            split_spec,
            exec_params=exec_params,
            exec_fn=self.exec_fn,
            code=self.code,
            function_name=self.function_name,
            access=access,
            ignore=self.ignore,
        )

    def run(
        self,
        key_params: object,
        split_spec: object,
        exec_params: Mapping[str, object] | None = None,
    ) -> tuple[object, Diagnostics]:
        started = time.perf_counter()
        plan = self.plan(key_params, split_spec, access=Access.COMPUTE, exec_params=exec_params)
        sink = sink_for(plan)
        diag = self._compute(plan, sink, started)
        return sink.result(), diag

    def stream(
        self,
        key_params: object,
        split_spec: object,
        exec_params: Mapping[str, object] | None = None,
    ) -> Diagnostics:
        started = time.perf_counter()
        plan = self.plan(key_params, split_spec, access=Access.COMPUTE, exec_params=exec_params)
        return self._compute(plan, Discard(), started)

    def load(
        self,
        key_params: object,
        split_spec: object,
        strict: bool,
        exec_params: Mapping[str, object] | None = None,
    ) -> tuple[object, Diagnostics]:
        started = time.perf_counter()
        plan = self.plan(key_params, split_spec, access=Access.READ, exec_params=exec_params)
        sink = sink_for(plan)
        diag = execute(plan, sink, started=started)
        if strict and diag.missing_points:
            raise CacheMissError(
                f"{diag.missing_points} of {diag.total_points} points "
                f"({diag.missing_chunks} of {diag.total_chunks} chunks) are not served "
                "from the cache for these params; run() computes them",
                diag.missing_points,
            )
        return sink.result(), diag

    def status(
        self,
        key_params: object,
        split_spec: object,
        exec_params: Mapping[str, object] | None = None,
    ) -> Status:
        plan = self.plan(key_params, split_spec, access=Access.READ, exec_params=exec_params)
        sink = Discard()
        diag = execute(plan, sink)
        rate = plan.pset.seconds_per_point() if diag.missing_points else None
        return Status.of(diag, sink.missing_specs, rate, lambda: _plan_coverage(plan))

    def pairs(
        self,
        key_params: object,
        split_spec: object,
        load_only: bool,
        exec_params: Mapping[str, object] | None = None,
    ) -> list[tuple[object, object]]:
        """``(point, output)`` of every served point and every point that failed in this
        call (its output a :class:`PointFailure`); points not stored are left out."""
        access = Access.READ if load_only else Access.COMPUTE
        plan = self.plan(key_params, split_spec, access=access, exec_params=exec_params)
        sink = Pairs()
        if load_only:
            execute(plan, sink)
        else:
            self._compute(plan, sink, None)
        return sink.result()

    def _compute(self, plan: RunPlan, sink: Sink, started: float | None) -> Diagnostics:
        """``execute`` of a computing plan; then, if the function ran here, the state
        it left behind (see :func:`~swarm_memo.identity.fingerprint.call_fingerprint`)."""
        ran_here = True
        try:
            diag = execute(plan, sink, started=started)
            ran_here = diag.executed_points + len(diag.failed_points) > 0
            return diag
        finally:
            if ran_here and self.code is not None and self.fingerprinted is not None:
                ran(self.fingerprinted, self.code)

    def frame(
        self,
        kind: FrameKind,
        key_params: object,
        split_spec: Mapping[str, Sequence[object]],
        point_to_dict: Callable[[object], Mapping[str, object]] | None,
        load_only: bool,
        exec_params: Mapping[str, object] | None = None,
        array_dims: Mapping[Any, Sequence[str]] | None = None,
    ) -> object:
        from swarm_memo.frames import frames as _frames

        if kind == "dataframe":  # fail before computing anything
            _frames.require_pandas()
        else:
            _frames.require_xarray()
        pairs = self.pairs(key_params, split_spec, load_only, exec_params)
        build = _frames.to_dataframe if kind == "dataframe" else _frames.to_xarray
        return build(
            pairs,
            split_spec,
            self.config.layout.axis_order,
            default_points=self.config.enumerate_points is None,
            point_to_dict=point_to_dict,
            array_dims=array_dims,
        )


def memo_requests(config: MemoConfig, *, code: bool = True) -> Requests:
    """Requests of a memo's own ``exec_fn``. Its code fingerprint is taken now, once per
    call: an edit of its helpers or module constants since the last call is seen."""
    fn = config.exec_fn
    fingerprint = call_fingerprint(fn) if code and fn is not None else None
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return Requests(config, fn, fingerprint, name, fingerprinted=fn)
