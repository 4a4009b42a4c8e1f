"""Sweep results as a pandas DataFrame or an xarray Dataset, one entry per point.

Both take plain data: the ``(point, output)`` pairs of a request (the facade fetches them
through the pipeline, so the memo's ``collate_fn`` and ``merge_fn`` play no part; a
point that failed in the call has a :class:`~swarm_memo.PointFailure` as output, points
not stored are absent), its ``split_spec`` and ``axis_order``.

Failures are not stored in the cache (the next run computes them again), so a frame
shows the failures of its own call: ``to_dataframe``/``to_xarray`` with
``on_error="skip"`` keep a failed point's row (NaN outputs) with ``"ValueError: ..."`` in
an ``error`` column / data variable. With ``load_only=True`` nothing runs, and points not
stored (never computed, or failed before) have no row, as before.
pandas and xarray are imported only when called; a missing one raises an
:class:`ImportError` naming the extra to install.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from swarm_memo.core.optional import missing_dependency
from swarm_memo.errors import SpecError
from swarm_memo.frames.arrays import ArrayDims, DimNames, any_array, explode, is_array, stack_cells
from swarm_memo.frames.grid import PointToDict, Sweep, field_names, grid_cells, output_fields

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd  # type: ignore[import-untyped,unused-ignore]
    import xarray as xr

__all__ = ["require_pandas", "require_xarray", "to_dataframe", "to_xarray"]


def require_pandas() -> None:
    """Raise the ImportError naming the extra when pandas is missing (call it before
    computing a sweep that :func:`to_dataframe` would then fail to show)."""
    try:
        import pandas  # type: ignore[import-untyped,unused-ignore]  # noqa: F401
    except ImportError as exc:
        raise missing_dependency("pandas", "pandas", "SwarmMemo.to_dataframe") from exc


def require_xarray() -> None:
    """Raise the ImportError naming the extra when xarray is missing."""
    try:
        import xarray  # noqa: F401
    except ImportError as exc:
        raise missing_dependency("xarray", "xarray", "SwarmMemo.to_xarray") from exc


def to_dataframe(
    pairs: Sequence[tuple[object, object]],
    split_spec: Mapping[str, Sequence[object]],
    axis_order: Sequence[str],
    *,
    default_points: bool,
    point_to_dict: PointToDict | None = None,
    array_dims: ArrayDims | None = None,
) -> pd.DataFrame:
    """A DataFrame of a sweep's ``(point, output)`` pairs: one row per point (per array
    element for array outputs).

    Parameters
    ----------
    pairs
        ``(point, output)`` for every point that has an output, in the order of ``run``'s
        output (chunk order); the output of a failed point is its
        :class:`~swarm_memo.PointFailure`. Points left out (not stored) have no row.
    split_spec
        The request's axis lists.
    axis_order
        The axes, first one slowest; default points are tuples in this order.
    default_points
        Whether the points are the default ones (tuples of the cartesian product): rows
        then follow the grid. False for a custom ``enumerate_points``: rows keep the order
        of ``pairs``.
    point_to_dict
        ``point_to_dict(point) -> {axis: value, ...}`` for points that are not tuples of
        axis values in ``axis_order``. Keys that are not axes become extra columns after
        the axis columns.
    array_dims
        ``{field: (name, ...)}``: names of the dimensions of a field holding numpy arrays,
        one per array axis; default ``<field>_dim_0``, ``<field>_dim_1``, ... (``value``
        is the field of outputs that are not dicts).

    Returns
    -------
    pandas.DataFrame
        Rows follow the grid (the product of the ``split_spec`` lists in ``axis_order``,
        first axis slowest, whatever the ``memo_chunk_spec``) for default points; else the
        order of ``pairs``. Columns: the axes in ``axis_order``, other keys of
        ``point_to_dict``, then the output's fields: one per key of a dict output (NaN
        where a row lacks it), else ``value``. A field named like an axis is dropped when
        it equals the axis at every point (outputs often echo their point), else renamed
        ``<field>_output``. When some point failed, a last ``error`` column (``error_``
        if an output field is named ``error``) holds ``"ExcType: message"`` on its row,
        whose outputs are NaN, and NaN on the other rows.

        Fields holding numpy arrays (``ndim >= 1``) are spread into rows, long format as
        ``xarray.Dataset.to_dataframe`` gives: a point has one row per array element, with
        one integer position column per array dimension (after the point's columns; NaN
        on rows of points without that dimension). Arrays sharing dimension names are
        read side by side, others crossed; other fields repeat on every row of their
        point. Shapes may differ from point to point.
        ``df.set_index([*axes, *dims])`` gives the usual MultiIndex.

    Raises
    ------
    ImportError
        When pandas is not installed (``pip install "swarm-memo[pandas]"``).
    SpecError
        When points of a custom ``enumerate_points`` are not tuples of ``split_spec``
        values in axis order and no ``point_to_dict`` is given; when ``array_dims`` gives
        a field as many names as its arrays have axes, or names a field without arrays.
    SpecTypeError
        When ``array_dims`` or what ``point_to_dict`` returns is not a dict.

    Examples
    --------
    >>> pairs = [((1, 10), {"sum": 11}), ((2, 10), {"sum": 12})]
    >>> to_dataframe(pairs, {"a": [1, 2], "b": [10]}, ("a", "b"), default_points=True)
       a   b  sum
    0  1  10   11
    1  2  10   12
    """
    require_pandas()
    import pandas as pd  # type: ignore[import-untyped,unused-ignore]

    sweep = Sweep(pairs, split_spec, axis_order, default_points)
    coords, outputs = _rows(sweep, point_to_dict)
    data, length = _columns(sweep.order, coords, outputs, array_dims)
    return pd.DataFrame(data, columns=list(data), index=pd.RangeIndex(length))


def _rows(
    sweep: Sweep, point_to_dict: PointToDict | None
) -> tuple[list[dict[object, object]], list[object]]:
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
    axes: Sequence[str],
    coords: list[dict[object, object]],
    outputs: list[object],
    array_dims: ArrayDims | None,
) -> tuple[dict[object, list[object]], int]:
    """Column name -> values (the axes, other keys of ``coords``, array dimensions, then
    output fields), and the number of rows.

    Without arrays every point is one row: columns are built whole (the fast path);
    with arrays each point adds its rows to every column, NaN-padding columns it lacks.
    """
    keys: dict[object, None] = dict.fromkeys(axes)
    for point in coords:
        keys.update(dict.fromkeys(point))
    fields = [output_fields(output) for output in outputs]
    renamed = {
        name: column
        for name, column in field_names(fields, coords, list(keys)).items()
        if column is not None
    }
    names = DimNames(array_dims, [*keys, *renamed.values()])
    nan = float("nan")
    if not any_array(value for row in fields for value in row.values()):
        if outputs:
            names.check_all_used(renamed.values())
        data = {key: [point.get(key, nan) for point in coords] for key in keys}
        data.update(
            (column, [row.get(name, nan) for row in fields]) for name, column in renamed.items()
        )
        return data, len(coords)
    data = {key: [] for key in keys}
    length = 0
    for point, row in zip(coords, fields, strict=True):
        values = {renamed[name]: value for name, value in row.items() if name in renamed}
        count, cells = explode(values, names, point)  # one row per array element
        cells.update((key, [point.get(key, nan)] * count) for key in keys)
        for column, column_cells in cells.items():
            column_data = data.setdefault(column, [])
            column_data.extend([nan] * (length - len(column_data)))  # rows without it
            column_data.extend(column_cells)
        length += count
    if outputs:
        names.check_all_used(renamed.values())
    for column_data in data.values():
        column_data.extend([nan] * (length - len(column_data)))
    order = [*keys, *names.dims, *renamed.values()]
    return {column: data[column] for column in order if column in data}, length


def _kind(value: object) -> str:
    """A coarse type of a value, to decide whether a column can have a typed dtype."""
    import numpy as np

    if isinstance(value, (int, float, np.integer, np.floating, np.bool_)):
        return "real"
    if isinstance(value, (complex, np.complexfloating)):
        return "complex"
    if isinstance(value, (str, bytes, np.datetime64, np.timedelta64)):
        return type(value).__name__
    return "other"


def _as_array(values: list[object], present: list[bool]) -> npt.NDArray[np.generic]:
    """A 1-d array of ``values``, NaN where not ``present``, with a sensible dtype.

    Numbers keep a numeric dtype (float when some are missing), complete columns of
    strings or numpy datetimes keep theirs; anything else is an object array.
    """
    import numpy as np

    given = [v for v, p in zip(values, present, strict=True) if p]
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
    for i, (value, p) in enumerate(zip(values, present, strict=True)):
        array[i] = value if p else np.nan
    return array


def _variable(
    name: object,
    fields: list[dict[object, object]],
    cells: list[int],
    sweep: Sweep,
    names: DimNames,
) -> tuple[npt.NDArray[np.generic], tuple[str, ...]]:
    """One output field over the grid, NaN where no point has it, and its dimensions."""
    entries = [
        (cell, row[name], point)
        for cell, row, point in zip(cells, fields, sweep.points, strict=True)
        if name in row
    ]
    size = math.prod(sweep.shape)
    if any(is_array(value) for _, value, _ in entries):
        grid, dims = stack_cells(name, entries, size, names)
        return grid.reshape(sweep.shape + grid.shape[1:]), sweep.order + dims
    values: list[object] = [None] * size
    present = [False] * size
    for cell, value, _ in entries:
        values[cell], present[cell] = value, True
    return _as_array(values, present).reshape(sweep.shape), sweep.order


def _check_sizes(
    data_vars: Mapping[object, tuple[tuple[str, ...], npt.NDArray[np.generic]]],
) -> None:
    """SpecError when two variables give one dimension different lengths."""
    sizes: dict[str, tuple[int, object]] = {}
    for variable, (dims, array) in data_vars.items():
        for dim, size in zip(dims, array.shape, strict=True):
            first, owner = sizes.setdefault(dim, (size, variable))
            if first != size:
                raise SpecError(
                    f"dimension {dim!r} has length {first} in {owner!r} and {size} in "
                    f"{variable!r}; name them apart with array_dims"
                )


def to_xarray(
    pairs: Sequence[tuple[object, object]],
    split_spec: Mapping[str, Sequence[object]],
    axis_order: Sequence[str],
    *,
    default_points: bool,
    point_to_dict: PointToDict | None = None,
    array_dims: ArrayDims | None = None,
) -> xr.Dataset:
    """An xarray Dataset over the grid of a sweep's ``(point, output)`` pairs.

    Parameters
    ----------
    pairs, split_spec, axis_order, default_points
        As for :func:`to_dataframe`.
    point_to_dict
        ``point_to_dict(point) -> {axis: value, ...}`` for points that are not tuples of
        axis values in ``axis_order``. Every axis must be a key, with a value from
        ``split_spec``; other keys are ignored.
    array_dims
        ``{field: (name, ...)}``: names of the extra dimensions of a field holding numpy
        arrays, one per array axis; default ``<field>_dim_0``, ``<field>_dim_1``, ...
        Fields given the same name share that dimension (same length required).

    Returns
    -------
    xarray.Dataset
        Dimensions: the axes in ``axis_order``, with the ``split_spec`` lists as
        coordinates. Data variables: one per key of a dict output, else ``value``; NaN
        where no point has an output (skipped by a custom enumerator, not stored, failed),
        numeric ones then float. When some point failed, an ``error`` variable holds
        ``"ExcType: message"`` at its cell and NaN elsewhere. Keys named like an axis
        are dropped or renamed as by :func:`to_dataframe`. A field holding numpy arrays
        (``ndim >= 1``) of one shape is a variable with the array's dtype and one more
        dimension per array axis (no coordinates: positions ``0 .. n-1``), so
        ``ds["value"].mean()`` and friends work.

    Raises
    ------
    ImportError
        When xarray is not installed (``pip install "swarm-memo[xarray]"``).
    SpecError
        When a point's axis values are not in ``split_spec``; when two points have the
        same axis values (use :func:`to_dataframe` for such sweeps); when a field holds
        arrays of different shapes, or arrays at some points and other values at others
        (the message names the field, both shapes and both points; :func:`to_dataframe`
        takes any shapes); when ``array_dims`` does not give one name per array axis.

    Examples
    --------
    >>> import numpy as np
    >>> pairs = [((a,), np.arange(3) * a) for a in (1, 2)]
    >>> ds = to_xarray(pairs, {"a": [1, 2]}, ("a",), default_points=True,
    ...                array_dims={"value": ("k",)})
    >>> ds["value"].dims, float(ds["value"].mean())
    (('a', 'k'), 1.5)
    """
    require_xarray()
    import xarray as xr

    sweep = Sweep(pairs, split_spec, axis_order, default_points)
    coords = sweep.coords(point_to_dict)
    cells = grid_cells(sweep, sweep.positions(coords, sweep.hint if point_to_dict is None else ""))
    fields = [output_fields(output) for output in sweep.outputs]
    variables = {
        name: variable
        for name, variable in field_names(fields, coords, sweep.order).items()
        if variable is not None
    }
    names = DimNames(array_dims, [*sweep.order, *variables.values()])
    data_vars: dict[object, tuple[tuple[str, ...], npt.NDArray[np.generic]]] = {}
    for name, variable in variables.items():
        array, dims = _variable(name, fields, cells, sweep, names)
        data_vars[variable] = (dims, array)
    if fields:
        names.check_all_used(variables.values())
    _check_sizes(data_vars)
    axes = {axis: _as_array(values, [True] * len(values)) for axis, values in sweep.values.items()}
    return xr.Dataset(data_vars, coords=axes)
