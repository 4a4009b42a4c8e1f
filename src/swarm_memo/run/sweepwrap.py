"""``sweep_wrap``: a sweep as a plain function of named scalars.

``simulate(alpha=0.4, x=[1, 2, 3], y=[10, 20])`` runs the grid of its axis arguments (the
names in ``memo_chunk_spec``) and calls ``simulate(alpha=0.4, x=1, y=10)`` once per missing
point: no point tuple, so no axis-order trap. The other arguments are params.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard

from swarm_memo.cache.keydefaults import parse_ignore
from swarm_memo.core.types import Params
from swarm_memo.errors import SpecError, SpecTypeError
from swarm_memo.identity.fingerprint import call_fingerprint
from swarm_memo.run.requests import Requests
from swarm_memo.run.wrap import FUNCTION_KEY, WrappedSweep, _Call


@dataclass(frozen=True)
class PointCall:
    """``exec_fn`` of a swept function: ``fn(**params, **{axis: value})``."""

    fn: Callable[..., object]
    axes: tuple[str, ...]

    def __call__(self, params: Params, point: Sequence[object]) -> object:
        return self.fn(**params, **dict(zip(self.axes, point, strict=True)))


class _Array(Protocol):
    """What is read of a numpy array given as an axis argument."""

    ndim: int
    shape: tuple[int, ...]

    def tolist(self) -> list[object]: ...


def _is_ndarray(values: object) -> TypeGuard[_Array]:
    return type(values).__name__ == "ndarray"  # never imports numpy


def _check_axis_values(function: str, axis: str, values: object) -> Sequence[object]:
    """A 1-D sequence of values for ``axis``; a scalar (a str too) is a SpecError."""
    if _is_ndarray(values):
        if values.ndim != 1:
            raise SpecError(
                f"{function}: the axis argument {axis!r} must be a 1-D sequence of values; "
                f"got an array of shape {values.shape}"
            )
        return values.tolist()  # keys alike; the function gets Python scalars
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, (Sequence, range)):
        raise SpecError(
            f"{function}: the axis argument {axis!r} must be a sequence of values "
            f"(a list, a range, a 1-D array); got {type(values).__name__} {values!r:.80}"
        )
    return values


class _Signature:
    """The swept function's signature: which arguments are axes, which are params."""

    def __init__(
        self, fn: Callable[..., object], axes: tuple[str, ...], ignore: Iterable[str]
    ) -> None:
        self.name = getattr(fn, "__qualname__", type(fn).__qualname__)
        self.signature = inspect.signature(fn)
        parameters = self.signature.parameters
        kinds = {p.kind for p in parameters.values()}
        if inspect.Parameter.VAR_POSITIONAL in kinds or inspect.Parameter.POSITIONAL_ONLY in kinds:
            raise SpecTypeError(
                f"{self.name} must take named arguments only to be swept (no *args, no "
                f"positional-only arguments); its signature is {self.signature}"
            )
        self.var_keyword = inspect.Parameter.VAR_KEYWORD in kinds
        for axis in axes:
            if axis not in parameters and not self.var_keyword:
                raise SpecError(f"{self.name} has no argument for the axis {axis!r}")
        self.axes = axes
        self.ignore = parse_ignore(ignore, axes)
        unknown = sorted(n for n in self.ignore if n not in parameters)
        if unknown and not self.var_keyword:
            raise SpecError(f"ignore names {unknown[0]!r}, not an argument of {self.name}")

    def split(
        self, args: tuple[object, ...], kwargs: dict[str, object]
    ) -> tuple[Params, dict[str, Sequence[object]]]:
        """(params, split_spec) of a call; raises before any work on bad arguments."""
        try:
            partial = self.signature.bind_partial(*args, **kwargs)
        except TypeError as exc:
            raise SpecTypeError(f"{self.name}: {exc}") from exc
        given = dict(partial.arguments)
        for name, p in self.signature.parameters.items():
            if p.kind is p.VAR_KEYWORD:
                given.update(given.pop(name, {}))
        for axis in self.axes:
            if axis not in given:
                raise SpecError(f"{self.name}: the axis argument {axis!r} is missing")
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise SpecTypeError(f"{self.name}: {exc}") from exc
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        for name, p in self.signature.parameters.items():
            if p.kind is p.VAR_KEYWORD:
                arguments.update(arguments.pop(name, {}))
        split_spec = {a: _check_axis_values(self.name, a, arguments.pop(a)) for a in self.axes}
        return arguments, split_spec


class SweptFunction(WrappedSweep):
    """``sweep_wrap``: ``fn(**named scalars)`` called as ``wrapped(**params, **axes)``,
    returning ``(output, Diagnostics)``; keyed like ``run_wrap`` (qualified name + code
    fingerprint)."""

    def __init__(
        self, requests: Requests, fn: Callable[..., object], ignore: Iterable[str]
    ) -> None:
        super().__init__(fn)
        axes = requests.config.layout.axis_order
        self._signature = _Signature(fn, axes, ignore)
        if requests.config.enumerate_points is not None:
            raise SpecError(
                f"sweep_wrap calls {self._signature.name} with one value per axis: it needs "
                "the default enumerate_points (this memo has its own; use run_wrap)"
            )
        self._fn = fn
        self._config = requests.config
        self._point_call = PointCall(fn, axes)

    def resolve(self, args: tuple[object, ...], kwargs: dict[str, object]) -> _Call:
        params, split_spec = self._signature.split(args, kwargs)
        code = call_fingerprint(self._fn)  # once per call: sees helper and constant edits
        name, ignore = self._signature.name, self._signature.ignore
        requests = Requests(
            self._config, self._point_call, code, name, ignore, fingerprinted=self._fn
        )
        key_params = {**params, FUNCTION_KEY: f"{name}:{code}"}
        return _Call(requests, key_params, params, split_spec)

    def option(self, kwargs: dict[str, Any], name: str, default: object) -> Any:
        """A keyword of .load/.to_dataframe, unless the function has an argument so named
        (then it is the function's)."""
        if name in self._signature.signature.parameters:
            return default
        return kwargs.pop(name, default)
