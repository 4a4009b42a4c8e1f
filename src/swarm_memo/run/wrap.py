"""``run_wrap`` / ``streaming_wrap``: call a sweep like a function."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from swarm_memo.cache.keydefaults import parse_ignore
from swarm_memo.core.diagnostics import Diagnostics, Status
from swarm_memo.errors import SpecError, SpecTypeError
from swarm_memo.identity.fingerprint import call_fingerprint
from swarm_memo.run.requests import Requests

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped,unused-ignore]

FUNCTION_KEY = "__swarm_memo_function__"
FrameKind = Literal["dataframe", "xarray"]
_UNSET = object()


def _keyword_defaults(fn: Callable[..., object]) -> tuple[inspect.Signature, dict[str, object]]:
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


def _split_call(args: tuple[object, ...], kwargs: dict[str, object], split_spec: object) -> object:
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


@dataclass(frozen=True)
class _Call:
    """One call of a wrapped sweep, resolved: what runs, keyed how, over which grid."""

    requests: Requests
    key_params: dict[str, object]
    exec_params: dict[str, object]
    split_spec: object


class WrappedSweep:
    """A sweep called like a function, with ``.status``, ``.load``, ``.to_dataframe`` and
    ``.to_xarray`` taking the same arguments as the call itself (joblib's
    ``MemorizedFunc`` for grids). Subclasses say how a call's arguments become params and
    a split spec (:meth:`resolve`) and what calling it returns."""

    def __init__(self, fn: Callable[..., object]) -> None:
        functools.update_wrapper(self, fn)

    def resolve(self, args: tuple[object, ...], kwargs: dict[str, object]) -> _Call:
        raise NotImplementedError

    def option(self, kwargs: dict[str, Any], name: str, default: object) -> Any:
        """A keyword of ``.load``/``.to_dataframe`` (``strict``, ``load_only``, ...): the
        caller's value, of whatever type it passed (the layers below check it)."""
        return kwargs.pop(name, default)

    def __call__(self, *args: object, **kwargs: object) -> tuple[Any, Diagnostics]:
        call = self.resolve(args, kwargs)
        return call.requests.run(call.key_params, call.split_spec, call.exec_params)

    def status(self, *args: object, **kwargs: object) -> Status:
        """What a call with these arguments would compute, without computing it."""
        call = self.resolve(args, kwargs)
        return call.requests.status(call.key_params, call.split_spec, call.exec_params)

    def load(self, *args: object, **kwargs: object) -> tuple[Any, Diagnostics]:
        """The stored outputs of a call with these arguments (``strict=True``: all)."""
        strict = self.option(kwargs, "strict", False)
        call = self.resolve(args, kwargs)
        return call.requests.load(call.key_params, call.split_spec, strict, call.exec_params)

    def to_dataframe(self, *args: object, **kwargs: object) -> pd.DataFrame:
        """A call's outputs as a pandas DataFrame, one row per point."""
        return self._frame("dataframe", args, kwargs)

    def to_xarray(self, *args: object, **kwargs: object) -> Any:
        """A call's outputs as an xarray Dataset over the grid."""
        return self._frame("xarray", args, kwargs)

    def _frame(
        self, kind: FrameKind, args: tuple[object, ...], kwargs: dict[str, object]
    ) -> object:
        point_to_dict = self.option(kwargs, "point_to_dict", None)
        load_only = self.option(kwargs, "load_only", False)
        array_dims = self.option(kwargs, "array_dims", None)
        call = self.resolve(args, kwargs)
        split_spec = call.split_spec
        if not isinstance(split_spec, Mapping):  # as the plan says it, before any work
            raise SpecTypeError(
                "split_spec must be a dict of axis name -> list of values; "
                f"got {type(split_spec).__name__}"
            )
        return call.requests.frame(
            kind,
            call.key_params,
            split_spec,
            point_to_dict,
            load_only,
            call.exec_params,
            array_dims=array_dims,
        )


class MemoizedSweep(WrappedSweep):
    """``run_wrap``/``streaming_wrap``: ``fn(params, point, **extra)`` called as
    ``wrapped(params, split_spec=..., **extra)``.

    The cache is keyed by params, the extra keyword arguments (defaults included), the
    function's qualified name and its code fingerprint (not its module: a function run as
    a script and imported from a notebook shares its results), so two wrapped functions
    never share results, nor do two lambdas or two closures with other captured values.
    Names in ``ignore`` (extra arguments or params keys) are passed to the function but
    left out of the key. The fingerprint is taken once per call, so an edit of a helper
    or module constant the function reaches keys a new entry.
    """

    def __init__(
        self,
        requests: Requests,
        fn: Callable[..., object],
        *,
        streaming: bool,
        ignore: Iterable[str] = (),
    ) -> None:
        super().__init__(fn)
        self._fn = fn
        self._streaming = streaming
        self._requests = requests
        self._ignored = parse_ignore(ignore, requests.config.layout.axis_order)
        self._signature, self._defaults = _keyword_defaults(fn)
        self._name = getattr(fn, "__qualname__", type(fn).__qualname__)

    def __call__(self, *args: object, **kwargs: object) -> Any:
        if not self._streaming:
            return super().__call__(*args, **kwargs)
        call = self.resolve(args, kwargs)
        return call.requests.stream(call.key_params, call.split_spec, call.exec_params)

    def resolve(self, args: tuple[object, ...], kwargs: dict[str, object]) -> _Call:
        split_spec = kwargs.pop("split_spec", _UNSET)
        params = _split_call(args, kwargs, split_spec)
        if not isinstance(params, dict):
            raise SpecTypeError(f"params must be a dict; got {type(params).__name__}")
        try:
            self._signature.bind(None, None, **kwargs)
        except TypeError as exc:
            raise SpecTypeError(f"{self._name}: {exc}") from exc
        extra = {**self._defaults, **kwargs}
        clash = sorted(set(extra) & set(params))
        if clash:
            raise SpecError(f"extra keyword arguments {clash} also appear in params; rename one")
        exec_fn = functools.partial(self._fn, **extra) if extra else self._fn
        code = call_fingerprint(self._fn)
        key_params = {**params, **extra, FUNCTION_KEY: f"{self._name}:{code}"}
        config = self._requests.config
        bound = Requests(config, exec_fn, code, self._name, self._ignored, fingerprinted=self._fn)
        return _Call(bound, key_params, params, split_spec)
