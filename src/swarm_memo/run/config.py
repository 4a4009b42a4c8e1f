"""The frozen configuration of a memo, built once by ``SwarmMemo.__init__``.

Lower layers receive a :class:`MemoConfig` (and the plans built from it), never the
facade: every argument is validated here, at the edge, and nothing downstream re-checks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal

from swarm_memo.cache.keydefaults import parse_defaults, parse_ignore
from swarm_memo.cache.serving import CodeChange
from swarm_memo.core.defaults import default_collate, default_merge
from swarm_memo.core.serial import DEFAULT_CODEC, Codec
from swarm_memo.core.types import ChunkKey, EnumerateFn, ExecFn
from swarm_memo.errors import SpecError, SpecTypeError
from swarm_memo.execution.executors import BackendFactory, ExecutorSpec
from swarm_memo.execution.stop import parse_deadline
from swarm_memo.identity.grid import ChunkLayout
from swarm_memo.identity.grid import _check_positive_int as check_positive_int
from swarm_memo.identity.order import ChunkOrder, Share, parse_chunk_order
from swarm_memo.stores.base import Store
from swarm_memo.stores.registry import open_store

OnError = Literal["raise", "skip"]
OnCodeChange = Literal["warn", "recompute", "ignore"]
ChunkHashFn = Callable[[dict[str, Any], ChunkKey, str], str]
ChunkOrderFn = Callable[[list[dict[str, list[Any]]]], Sequence[int]]
"""A ``chunk_order=`` callable: the chunks' sub-specs in grid order -> their indices."""

DEFAULT_CLAIM_TIMEOUT = 600.0
DEFAULT_GRACE_SECONDS = 20.0


@dataclass(frozen=True)
class MemoOptions:
    """``SwarmMemo``'s constructor arguments, as given (one field per argument, same
    defaults). :func:`build_config` validates them into a :class:`MemoConfig`; a changed
    copy (``dataclasses.replace``) is validated again when it is built. It pickles as
    long as ``exec_fn`` and the other functions do (cloudpickle), which is how the tasks
    of a launch receive their memo."""

    cache_root: str | os.PathLike[str]
    memo_chunk_spec: Mapping[str, int | Mapping[str, int]]
    exec_chunk_size: int
    enumerate_points: EnumerateFn | None = None
    exec_fn: ExecFn | None = None
    collate_fn: Callable[[list[Any]], object] | None = None
    merge_fn: Callable[[list[Any]], object] | None = None
    chunk_hash_fn: ChunkHashFn | None = None
    cache_version: str = "v1"
    max_workers: int | None = None
    axis_order: Sequence[str] | None = None
    verbose: int = 1
    executor: object = "process"
    on_error: OnError = "raise"
    on_code_change: OnCodeChange = "warn"
    chunk_order: str | ChunkOrderFn = "grid"
    claim_timeout: float | None = DEFAULT_CLAIM_TIMEOUT
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    deadline: float | datetime | None = None
    storage_options: dict[str, Any] | None = None
    durable: bool = True
    defaults: Mapping[str, object] | None = None
    ignore: Sequence[str] = ()

    def arguments(self) -> dict[str, object]:
        """The constructor's keyword arguments (how a memo pickles)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class MemoConfig:
    """Everything a run needs to know about its memo, validated."""

    cache_root: str
    layout: ChunkLayout
    store: Store
    exec_chunk_size: int
    enumerate_points: EnumerateFn | None
    exec_fn: ExecFn | None
    collate_fn: Callable[[list[Any]], Any]
    merge_fn: Callable[[list[Any]], Any]
    grid_ordered: bool
    """True with the default collate and merge: outputs come back in grid order."""
    chunk_hash_fn: ChunkHashFn | None
    cache_version: str
    verbose: int
    backends: BackendFactory
    on_error: OnError
    on_code_change: CodeChange
    chunk_order: ChunkOrder
    claim_timeout: float | None
    grace_seconds: float
    deadline: float | datetime | None
    """Stop each computing call gracefully after so many seconds, or at this time."""
    share: Share | None = None
    """Set in the tasks of a launch: which chunks this task computes first."""
    key_defaults: dict[str, bytes] = field(default_factory=dict)
    """Name -> canonical encoding of its declared default (``defaults=``)."""
    ignore: frozenset[str] = frozenset()
    """Params keys passed to ``exec_fn`` but left out of the key (``ignore=``)."""
    codec: Codec = DEFAULT_CODEC
    """Serialisation of chunk bodies, index segments and worker traffic (a private seam)."""


def check_callable(value: object, name: str) -> None:
    if value is not None and not callable(value):
        raise SpecTypeError(f"{name} must be callable or None; got {type(value).__name__}")


def _check_choice(value: object, name: str, choices: Sequence[str]) -> None:
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise SpecError(f"{name} must be one of {options}; got {value!r}")


def _check_seconds(value: object, name: str, allow_none: bool) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        hint = "None or a number of seconds >= 0" if allow_none else "a number of seconds >= 0"
        raise SpecError(f"{name} must be {hint}; got {value!r}")
    return float(value)


def _check_plain_options(options: MemoOptions) -> None:
    """The arguments that are checked, not parsed: raise on a bad one, naming it."""
    cache_root: object = options.cache_root
    if not isinstance(cache_root, (str, os.PathLike)):
        raise SpecTypeError(f"cache_root must be a str or path; got {cache_root!r}")
    check_positive_int(options.exec_chunk_size, "exec_chunk_size")
    for name in ("enumerate_points", "exec_fn", "collate_fn", "merge_fn", "chunk_hash_fn"):
        check_callable(getattr(options, name), name)
    cache_version: object = options.cache_version
    if not isinstance(cache_version, str):
        raise SpecTypeError(f"cache_version must be a str; got {cache_version!r}")
    if options.max_workers is not None:
        check_positive_int(options.max_workers, "max_workers", "None or an int >= 1")
    if options.verbose not in (0, 1, 2):
        raise SpecError(f"verbose must be 0, 1 or 2; got {options.verbose!r}")
    durable: object = options.durable
    if not isinstance(durable, bool):
        raise SpecTypeError(f"durable must be True or False; got {durable!r}")
    _check_choice(options.on_error, "on_error", ("raise", "skip"))


def build_config(options: MemoOptions) -> MemoConfig:
    """Validate ``SwarmMemo``'s arguments (raising before any work) into a config; the
    policies (``executor``, ``on_code_change``, ``chunk_order``) are parsed here, once."""
    _check_plain_options(options)
    executor = ExecutorSpec.parse(options.executor, options.max_workers)
    on_code_change = CodeChange.parse(options.on_code_change)
    layout = ChunkLayout.parse(options.memo_chunk_spec, options.axis_order)
    enumerate_points = options.enumerate_points
    collate_fn, merge_fn = options.collate_fn, options.merge_fn
    ignore = parse_ignore(options.ignore, layout.axis_order)
    grace = _check_seconds(options.grace_seconds, "grace_seconds", False) or 0.0
    return MemoConfig(
        cache_root=os.fspath(options.cache_root),
        layout=layout,
        store=open_store(options.cache_root, options.storage_options, durable=options.durable),
        exec_chunk_size=options.exec_chunk_size,
        enumerate_points=enumerate_points,
        exec_fn=options.exec_fn,
        collate_fn=collate_fn or default_collate,
        merge_fn=merge_fn or default_merge,
        grid_ordered=collate_fn is None and merge_fn is None,
        chunk_hash_fn=options.chunk_hash_fn,
        cache_version=options.cache_version,
        verbose=options.verbose,
        backends=BackendFactory(executor),
        on_error=options.on_error,
        on_code_change=on_code_change,
        chunk_order=parse_chunk_order(options.chunk_order),
        claim_timeout=_check_seconds(options.claim_timeout, "claim_timeout", True),
        grace_seconds=grace,
        deadline=parse_deadline(options.deadline),
        key_defaults=parse_defaults(
            options.defaults, layout.axis_order, enumerate_points is not None, ignore
        ),
        ignore=ignore,
    )
