"""``run_wrap`` / ``streaming_wrap``: call a sweep like a function."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._pipeline import Pipeline
from ._plan import plan_run
from .errors import SpecError, SpecTypeError

if TYPE_CHECKING:
    from ._memo import SwarmMemo

FUNCTION_KEY = "__swarm_memo_function__"
_UNSET: Any = object()


def _keyword_defaults(fn: Callable[..., Any]) -> tuple[inspect.Signature, dict[str, Any]]:
    signature = inspect.signature(fn)
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(positional) < 2 and not any(
        p.kind is p.VAR_POSITIONAL for p in signature.parameters.values()
    ):
        raise SpecTypeError(
            f"{fn.__qualname__} must take (params, point, ...) to be wrapped; "
            f"its signature is {signature}"
        )
    defaults = {
        p.name: p.default
        for p in list(signature.parameters.values())[2:]
        if p.default is not p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    return signature, defaults


def _split_call(args: tuple[Any, ...], kwargs: dict[str, Any], split_spec: Any) -> Any:
    if split_spec is _UNSET:
        raise SpecError(
            "split_spec must be passed as a keyword argument: wrapped(params, split_spec=...)"
        )
    if len(args) > 1:
        raise SpecError(
            f"wrapped sweeps take params as their only positional argument; got {len(args)} "
            "(pass split_spec=... and extra arguments by keyword)"
        )
    if args and "params" in kwargs:
        raise SpecError("params was given both positional and keyword; pass it once")
    if not args and "params" not in kwargs:
        raise SpecError("params is missing: wrapped(params, split_spec=...)")
    return args[0] if args else kwargs.pop("params")


def make_wrapper(memo: SwarmMemo, fn: Callable[..., Any], *, streaming: bool) -> Callable[..., Any]:
    """Wrap ``fn(params, point, **extra)`` into ``wrapped(params, split_spec=..., **extra)``.

    The cache is keyed by params, the extra keyword arguments (defaults included) and the
    function's qualified name, so two wrapped functions never share results.
    """
    signature, defaults = _keyword_defaults(fn)
    identity = f"{fn.__module__}.{fn.__qualname__}"

    @functools.wraps(fn)
    def wrapped(*args: Any, split_spec: Any = _UNSET, **kwargs: Any) -> Any:
        params = _split_call(args, kwargs, split_spec)
        if not isinstance(params, dict):
            raise SpecTypeError(f"params must be a dict; got {type(params).__name__}")
        try:
            signature.bind(None, None, **kwargs)
        except TypeError as exc:
            raise SpecTypeError(f"{fn.__qualname__}: {exc}") from exc
        extra = {**defaults, **kwargs}
        clash = sorted(set(extra) & set(params))
        if clash:
            raise SpecError(f"extra keyword arguments {clash} also appear in params; rename one")
        key_params = {**params, **extra, FUNCTION_KEY: identity}
        exec_fn = functools.partial(fn, **extra) if extra else fn
        started = time.perf_counter()
        plan = plan_run(memo, key_params, split_spec, params, exec_fn)
        mode = "stream" if streaming else "run"
        output, diag = Pipeline(memo, plan, mode, started=started).execute()
        return diag if streaming else (output, diag)

    return wrapped
