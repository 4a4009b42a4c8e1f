"""Sweep results as a pandas DataFrame or an xarray Dataset, one entry per point.

Both build on the ``(point, output)`` pairs of :meth:`SwarmMemo._point_outputs`, so they
ignore the memo's ``collate_fn`` and ``merge_fn``, and leave out points not stored
(``load_only``) or failed (``on_error="skip"``). pandas and xarray are imported only when
called; a missing one raises an :class:`ImportError` naming the extra to install.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._hashing import encode
from ._memo import SwarmMemo
from .collate import missing_dependency
from .errors import SpecError, SpecTypeError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd  # type: ignore[import-untyped,unused-ignore]
    import xarray as xr

__all__ = ["to_dataframe", "to_xarray"]

PointToDict = Callable[[Any], Mapping[str, Any]]
Position = tuple[int, ...]

VALUE_FIELD = "value"
"""Name of the column / data variable holding outputs that are not dicts."""


def _equal(a: Any, b: Any) -> bool:
    """Whether two values are the same (``==``, or the same canonical encoding)."""
    try:
        if a is b or bool(a == b):
            return True
    except Exception:
        pass
    try:
        return encode(a) == encode(b)
    except TypeError:
        return False


class _Sweep:
    """A request's points that have an output, their outputs (in chunk order), and its
    grid: the axes in ``axis_order``, with the ``split_spec`` lists."""

    def __init__(
        self, memo: SwarmMemo, params: dict[str, Any], split_spec: Any, load_only: bool
    ) -> None:
        request: dict[str, Any] = dict(split_spec)
        pairs, _ = memo._point_outputs(params, request, load_only=load_only)
        self.points = [point for point, _ in pairs]
        self.outputs = [output for _, output in pairs]
        self.default_points = memo.enumerate_points is None
        self.order = memo.axis_order
        self.values = {axis: list(split_spec[axis]) for axis in self.order}
        self.shape = tuple(len(values) for values in self.values.values())
        self.hint = (
            f"points are read as tuples of axis values in axis_order {list(self.order)}; for "
            "other points pass point_to_dict=lambda point: {axis: value, ...}"
        )
        # default points hold the split_spec objects themselves: look them up by id first
        self._ids = {axis: {id(v): i for i, v in enumerate(vs)} for axis, vs in self.values.items()}
        self._encodings = {  # split_spec values are unique by encoding
            axis: {encode(v): i for i, v in enumerate(vs)} for axis, vs in self.values.items()
        }

    def coords(self, point_to_dict: PointToDict | None) -> list[dict[Any, Any]]:
        """The axis values (and any extra keys of ``point_to_dict``) of every point."""
        if point_to_dict is None:
            return [self._read_tuple(point) for point in self.points]
        dicts = [point_to_dict(point) for point in self.points]
        for point, mapped in zip(self.points, dicts):
            if not isinstance(mapped, Mapping):
                raise SpecTypeError(
                    f"point_to_dict must return a dict of axis values; got "
                    f"{type(mapped).__name__} {mapped!r:.100} for point {point!r:.100}"
                )
        return [dict(mapped) for mapped in dicts]

    def positions(self, coords: list[dict[Any, Any]], hint: str = "") -> list[Position]:
        """The grid position of each point (an index per axis), from its ``coords``."""
        return [
            tuple(self._index(p, c, axis, hint) for axis in self.order)
            for p, c in zip(self.points, coords)
        ]

    def _read_tuple(self, point: Any) -> dict[str, Any]:
        if type(point) is not tuple and (
            isinstance(point, (str, bytes)) or not isinstance(point, Sequence)
        ):
            raise SpecError(f"point {point!r:.100} is not a tuple; {self.hint}")
        if len(point) != len(self.order):
            raise SpecError(f"point {point!r:.100} has {len(point)} values; {self.hint}")
        return dict(zip(self.order, point))

    def _index(self, point: Any, coords: Mapping[str, Any], axis: str, hint: str) -> int:
        """Where the point's value of ``axis`` is in ``split_spec[axis]``: the same object,
        else the same canonical encoding, else ``==``."""
        if axis not in coords:
            raise SpecError(
                f"point_to_dict({point!r:.100}) has no value for axis {axis!r}; "
                f"it must give every axis of {list(self.order)}"
            )
        value = coords[axis]
        found = self._ids[axis].get(id(value))
        if found is None:
            with contextlib.suppress(TypeError):
                found = self._encodings[axis].get(encode(value))
        if found is None:
            found = next((i for i, v in enumerate(self.values[axis]) if _equal(v, value)), None)
        if found is None:
            raise SpecError(
                f"point {point!r:.100} has the value {value!r:.60} for axis {axis!r}, "
                f"which is not in split_spec[{axis!r}]" + (hint and f"; {hint}")
            )
        return found


def _output_fields(output: Any) -> dict[Any, Any]:
    return dict(output) if isinstance(output, Mapping) else {VALUE_FIELD: output}


def _field_names(
    fields: list[dict[Any, Any]], coords: list[dict[Any, Any]], reserved: Sequence[Any]
) -> dict[Any, Any]:
    """Output field -> column name; None drops a field that only repeats a coordinate.

    A field named like a coordinate (e.g. an output that echoes its point) is dropped when
    it equals that coordinate at every point, and renamed ``<field>_output`` otherwise.
    """
    names: dict[Any, Any] = {}
    for row in fields:
        names.update((name, name) for name in row if name not in names)
    taken = set(reserved) | set(names)
    for name in [name for name in names if name in reserved]:
        if all(_equal(row[name], point.get(name)) for row, point in zip(fields, coords)):
            names[name] = None
            continue
        new = f"{name}_output"
        while new in taken:
            new += "_"
        taken.add(new)
        names[name] = new
    return names


def to_dataframe(
    memo: SwarmMemo,
    params: dict[str, Any],
    split_spec: Mapping[str, Sequence[Any]],
    point_to_dict: PointToDict | None = None,
    *,
    load_only: bool = False,
) -> pd.DataFrame:
    """Run a sweep (or load it) and return one DataFrame row per point.

    Works whatever the memo's ``collate_fn`` and ``merge_fn``: they are not used.

    Parameters
    ----------
    memo, params, split_spec
        The memo, and the request as for :meth:`SwarmMemo.run`.
    point_to_dict
        ``point_to_dict(point) -> {axis: value, ...}`` for points that are not tuples of
        axis values in ``memo.axis_order`` (custom ``enumerate_points``). Keys that are
        not axes become extra columns after the axis columns.
    load_only
        Use :meth:`SwarmMemo.load`: nothing executes; points not stored have no row.

    Returns
    -------
    pandas.DataFrame
        Rows follow the grid (the product of the ``split_spec`` lists in ``axis_order``,
        first axis slowest, whatever the ``memo_chunk_spec``); with a custom
        ``enumerate_points``, ``run``'s output order. Columns: the axes in ``axis_order``,
        then the output's fields: one per key of a dict output (NaN where a row lacks
        it), else ``value``. A field named like an axis is dropped when it equals the
        axis at every point (outputs often echo their point), else renamed
        ``<field>_output``. Points that failed (``on_error="skip"``) have no row.

    Raises
    ------
    ImportError
        When pandas is not installed (``pip install "swarm-memo[pandas]"``).
    SpecError
        When points of a custom ``enumerate_points`` are not tuples of ``split_spec``
        values in axis order and no ``point_to_dict`` is given.

    Examples
    --------
    >>> memo = SwarmMemo("./cache", {"a": 2, "b": 2}, 4, verbose=0,
    ...                  exec_fn=lambda params, point: {"sum": point[0] + point[1]})
    >>> to_dataframe(memo, {}, {"a": [1, 2], "b": [10]})  # doctest: +SKIP
       a   b  sum
    0  1  10   11
    1  2  10   12
    """
    try:
        import pandas as pd  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise missing_dependency("pandas", "pandas", "SwarmMemo.to_dataframe") from exc
    sweep = _Sweep(memo, params, split_spec, load_only)
    coords, outputs = _rows(sweep, point_to_dict)
    data = _columns(sweep.order, coords, outputs)
    return pd.DataFrame(data, columns=list(data), index=pd.RangeIndex(len(coords)))


def _rows(
    sweep: _Sweep, point_to_dict: PointToDict | None
) -> tuple[list[dict[Any, Any]], list[Any]]:
    """The coordinates and outputs of the rows: in grid order for default points."""
    coords = sweep.coords(point_to_dict)
    if sweep.default_points:  # tuples in axis_order
        tuples = coords if point_to_dict is None else sweep.coords(None)
        positions = sweep.positions(tuples)
        rows = sorted(range(len(coords)), key=positions.__getitem__)
        return [coords[i] for i in rows], [sweep.outputs[i] for i in rows]
    if point_to_dict is None:
        sweep.positions(coords, sweep.hint)  # custom tuples must hold split_spec values
    return coords, sweep.outputs


def _columns(
    axes: Sequence[str], coords: list[dict[Any, Any]], outputs: list[Any]
) -> dict[Any, list[Any]]:
    """Column name -> values: the axes, other keys of ``coords``, then output fields."""
    columns: dict[Any, None] = dict.fromkeys(axes)
    for point in coords:
        columns.update(dict.fromkeys(point))
    fields = [_output_fields(output) for output in outputs]
    nan = float("nan")
    data = {column: [point.get(column, nan) for point in coords] for column in columns}
    for name, column in _field_names(fields, coords, list(columns)).items():
        if column is not None:
            data[column] = [row.get(name, nan) for row in fields]
    return data


def _kind(value: Any) -> str:
    """A coarse type of a value, to decide whether a column can have a typed dtype."""
    import numpy as np

    if isinstance(value, (int, float, np.integer, np.floating, np.bool_)):
        return "real"
    if isinstance(value, (complex, np.complexfloating)):
        return "complex"
    if isinstance(value, (str, bytes, np.datetime64, np.timedelta64)):
        return type(value).__name__
    return "other"


def _as_array(values: list[Any], present: list[bool]) -> np.ndarray[Any, Any]:
    """A 1-d array of ``values``, NaN where not ``present``, with a sensible dtype.

    Numbers keep a numeric dtype (float when some are missing), complete columns of
    strings or numpy datetimes keep theirs; anything else is an object array.
    """
    import numpy as np

    given = [v for v, p in zip(values, present) if p]
    complete = len(given) == len(values)
    if given:
        kinds = {_kind(v) for v in given}
        numeric = kinds <= {"real", "complex"}
        if complete and (numeric or (len(kinds) == 1 and "other" not in kinds)):
            array = np.asarray(values)
            if array.ndim == 1:
                return array
        if not complete and numeric and not all(isinstance(v, (bool, np.bool_)) for v in given):
            dtype = complex if "complex" in kinds else float
            array = np.full(len(values), np.nan, dtype=dtype)
            array[[i for i, p in enumerate(present) if p]] = given
            return array
    array = np.empty(len(values), dtype=object)
    for i, (value, p) in enumerate(zip(values, present)):
        array[i] = value if p else np.nan
    return array


def _cells(sweep: _Sweep, positions: list[Position]) -> list[int]:
    """The flat (C-order) cell of each position; SpecError when two points share one."""
    shape, points = sweep.shape, sweep.points
    strides = [math.prod(shape[i + 1 :]) for i in range(len(shape))]
    cells = [sum(i * s for i, s in zip(position, strides)) for position in positions]
    owner: dict[int, int] = {}
    for number, cell in enumerate(cells):
        first = owner.setdefault(cell, number)
        if first != number:
            raise SpecError(
                f"points {points[first]!r:.100} and {points[number]!r:.100} have the same "
                "axis values; to_xarray needs at most one point per combination of axis "
                "values (to_dataframe has no such limit)"
            )
    return cells


def _variable(name: Any, fields: list[dict[Any, Any]], cells: list[int], size: int) -> Any:
    """The flat array of one output field over the grid, NaN where no point has it."""
    values: list[Any] = [None] * size
    present = [False] * size
    for cell, row in zip(cells, fields):
        if name in row:
            values[cell], present[cell] = row[name], True
    return _as_array(values, present)


def to_xarray(
    memo: SwarmMemo,
    params: dict[str, Any],
    split_spec: Mapping[str, Sequence[Any]],
    point_to_dict: PointToDict | None = None,
    *,
    load_only: bool = False,
) -> xr.Dataset:
    """Run a sweep (or load it) and return it as an xarray Dataset over the grid.

    Works whatever the memo's ``collate_fn`` and ``merge_fn``: they are not used.

    Parameters
    ----------
    memo, params, split_spec
        The memo, and the request as for :meth:`SwarmMemo.run`.
    point_to_dict
        ``point_to_dict(point) -> {axis: value, ...}`` for points that are not tuples of
        axis values in ``memo.axis_order`` (custom ``enumerate_points``). Every axis must
        be a key, with a value from ``split_spec``; other keys are ignored.
    load_only
        Use :meth:`SwarmMemo.load`: nothing executes; points not stored are NaN.

    Returns
    -------
    xarray.Dataset
        Dimensions: the axes in ``axis_order``, with the ``split_spec`` lists as
        coordinates. Data variables: one per key of a dict output, else ``value``; NaN
        where no point has an output (skipped by a custom enumerator, not stored with
        ``load_only``, failed with ``on_error="skip"``), numeric ones then float. Keys
        named like an axis are dropped or renamed as by :func:`to_dataframe`.

    Raises
    ------
    ImportError
        When xarray is not installed (``pip install "swarm-memo[xarray]"``).
    SpecError
        When a point's axis values are not in ``split_spec``, or two points have the same
        axis values (use :func:`to_dataframe` for such sweeps).

    Examples
    --------
    >>> memo = SwarmMemo("./cache", {"a": 2, "b": 2}, 4, verbose=0,
    ...                  exec_fn=lambda params, point: {"sum": point[0] + point[1]})
    >>> ds = to_xarray(memo, {}, {"a": [1, 2], "b": [10, 20]})  # doctest: +SKIP
    >>> int(ds["sum"].sel(a=2, b=10))  # doctest: +SKIP
    12
    """
    try:
        import xarray as xr
    except ImportError as exc:
        raise missing_dependency("xarray", "xarray", "SwarmMemo.to_xarray") from exc
    sweep = _Sweep(memo, params, split_spec, load_only)
    coords = sweep.coords(point_to_dict)
    cells = _cells(sweep, sweep.positions(coords, sweep.hint if point_to_dict is None else ""))
    fields = [_output_fields(output) for output in sweep.outputs]
    size, shape = math.prod(sweep.shape), sweep.shape
    data_vars = {
        variable: (sweep.order, _variable(name, fields, cells, size).reshape(shape))
        for name, variable in _field_names(fields, coords, sweep.order).items()
        if variable is not None
    }
    axes = {axis: _as_array(values, [True] * len(values)) for axis, values in sweep.values.items()}
    return xr.Dataset(data_vars, coords=axes)
