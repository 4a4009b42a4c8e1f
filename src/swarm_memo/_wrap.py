"""``run_wrap`` / ``streaming_wrap``: call a sweep like a function."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._diagnostics import Diagnostics, Status
from ._fingerprint import code_fingerprint
from ._keydefaults import parse_ignore
from ._requests import Requests
from .errors import SpecError, SpecTypeError

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


def make_wrapper(
    requests: Requests, fn: Callable[..., Any], *, streaming: bool, ignore: Any = ()
) -> Callable[..., Any]:
    """Wrap ``fn(params, point, **extra)`` into ``wrapped(params, split_spec=..., **extra)``.

    The cache is keyed by params, the extra keyword arguments (defaults included), the
    function's qualified name and its code fingerprint (not its module: a function run as
    a script and imported from a notebook shares its results), so two wrapped functions
    never share results, nor do two lambdas or two closures with other captured values.
    The wrapper also has ``.status``, ``.load`` and ``.to_dataframe``, called with the
    same arguments as the wrapper itself. Names in ``ignore`` (extra arguments or params
    keys) are passed to the function but left out of the key.
    """
    ignored = parse_ignore(ignore, requests.config.layout.axis_order)
    signature, defaults = _keyword_defaults(fn)
    name = getattr(fn, "__qualname__", type(fn).__qualname__)
    code = code_fingerprint(fn).hex()
    identity = f"{name}:{code}"

    def resolve(args: tuple[Any, ...], kwargs: dict[str, Any], split_spec: Any) -> _Call:
        params = _split_call(args, kwargs, split_spec)
        if not isinstance(params, dict):
            raise SpecTypeError(f"params must be a dict; got {type(params).__name__}")
        try:
            signature.bind(None, None, **kwargs)
        except TypeError as exc:
            raise SpecTypeError(f"{name}: {exc}") from exc
        extra = {**defaults, **kwargs}
        clash = sorted(set(extra) & set(params))
        if clash:
            raise SpecError(f"extra keyword arguments {clash} also appear in params; rename one")
        exec_fn = functools.partial(fn, **extra) if extra else fn
        key_params = {**params, **extra, FUNCTION_KEY: identity}
        bound = Requests(requests.config, exec_fn, code, name, ignored)
        return _Call(bound, key_params, params)

    @functools.wraps(fn)
    def wrapped(*args: Any, split_spec: Any = _UNSET, **kwargs: Any) -> Any:
        call = resolve(args, kwargs, split_spec)
        if streaming:
            return call.requests.stream(call.key_params, split_spec, call.exec_params)
        return call.requests.run(call.key_params, split_spec, call.exec_params)

    def status(*args: Any, split_spec: Any = _UNSET, **kwargs: Any) -> Status:
        call = resolve(args, kwargs, split_spec)
        return call.requests.status(call.key_params, split_spec, call.exec_params)

    def load(
        *args: Any, split_spec: Any = _UNSET, strict: bool = False, **kwargs: Any
    ) -> tuple[Any, Diagnostics]:
        call = resolve(args, kwargs, split_spec)
        return call.requests.load(call.key_params, split_spec, strict, call.exec_params)

    def to_dataframe(
        *args: Any,
        split_spec: Any = _UNSET,
        point_to_dict: Callable[[Any], dict[str, Any]] | None = None,
        load_only: bool = False,
        array_dims: Any = None,
        **kwargs: Any,
    ) -> Any:
        call = resolve(args, kwargs, split_spec)
        return call.requests.frame(
            "dataframe",
            call.key_params,
            split_spec,
            point_to_dict,
            load_only,
            call.exec_params,
            array_dims=array_dims,
        )

    wrapped.status = status  # type: ignore[attr-defined]
    wrapped.load = load  # type: ignore[attr-defined]
    wrapped.to_dataframe = to_dataframe  # type: ignore[attr-defined]
    return wrapped


@dataclass(frozen=True)
class _Call:
    requests: Requests
    key_params: dict[str, Any]
    exec_params: dict[str, Any]
