"""Array outputs in DataFrames and Datasets: each array axis becomes a named dimension.

An output field holding numpy arrays (``ndim >= 1``) gets one extra dimension per array
axis, named ``<field>_dim_<i>`` unless the caller names them with ``array_dims``. A
Dataset stacks the arrays into a numeric variable over the grid and those dimensions; a
DataFrame gets one row per array element, with an integer position column per dimension.
numpy is imported only when called.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeGuard

from swarm_memo.errors import SpecError, SpecTypeError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["ArrayDims", "DimNames", "any_array", "explode", "is_array", "stack_cells"]

ArrayDims = Mapping[Any, Sequence[str]]
"""Field (column or data variable name) -> the names of its arrays' dimensions."""


def any_array(values: Iterable[object]) -> bool:
    """Whether one of ``values`` is a numpy array with at least one axis."""
    numpy = sys.modules.get("numpy")  # an array exists only once numpy is imported
    if numpy is None:
        return False
    ndarray = numpy.ndarray
    return any(isinstance(value, ndarray) and value.ndim >= 1 for value in values)


def is_array(value: object) -> TypeGuard[npt.NDArray[np.generic]]:
    """Whether ``value`` is a numpy array with at least one axis (0-d arrays are scalars)."""
    numpy = sys.modules.get("numpy")  # an array exists only once numpy is imported
    return numpy is not None and isinstance(value, numpy.ndarray) and value.ndim >= 1


class DimNames:
    """The dimension names of the array fields: given by ``array_dims``, else defaults.

    Parameters
    ----------
    array_dims
        ``{field: (name, ...)}``, one name per array axis, or None.
    reserved
        Names dimensions must not take (axes, point keys, columns, data variables).

    Raises
    ------
    SpecTypeError
        When ``array_dims`` is not a dict of sequences of strings.
    SpecError
        When a field's names repeat, or one is reserved.
    """

    def __init__(self, array_dims: ArrayDims | None, reserved: Iterable[object] = ()) -> None:
        self._given = _parse(array_dims)
        self._reserved = set(reserved)
        self._used: set[object] = set()
        self.dims: dict[str, None] = {}  # every name handed out, in order of first use
        for field, names in self._given.items():
            self._check_free(field, names)

    def of(self, field: object, array: npt.NDArray[np.generic], point: object) -> tuple[str, ...]:
        """The dimension names of ``array``, an output of ``field`` at ``point``."""
        names = self._given.get(field)
        if names is None:
            names = tuple(f"{field}_dim_{i}" for i in range(array.ndim))
            if field not in self._used:
                self._check_free(field, names)
        elif len(names) != array.ndim:
            raise SpecError(
                f"array_dims[{field!r}] gives {len(names)} dimension names {list(names)}, "
                f"but {field!r} holds arrays with {array.ndim} dimensions (shape "
                f"{array.shape} at point {point!r:.100}); give one name per array axis"
            )
        self._used.add(field)
        self.dims.update(dict.fromkeys(names))
        return names

    def check_all_used(self, fields: Iterable[object]) -> None:
        """SpecError for a key of ``array_dims`` that names no field holding arrays."""
        fields = list(fields)
        unused = [field for field in self._given if field not in self._used]
        if unused:
            with_arrays = [field for field in fields if field in self._used]
            raise SpecError(
                f"array_dims names {unused[0]!r}, which is not an output field holding "
                f"arrays; fields holding arrays: {with_arrays}, all fields: {fields}"
            )

    def _check_free(self, field: object, names: tuple[str, ...]) -> None:
        taken = [name for name in names if name in self._reserved]
        if taken:
            raise SpecError(
                f"dimension name {taken[0]!r} for the arrays of {field!r} is already an "
                f"axis, point key or field name; pick others with array_dims={{{field!r}: "
                "(name, ...)}"
            )


def _parse(array_dims: ArrayDims | None) -> dict[object, tuple[str, ...]]:
    if array_dims is None:
        return {}
    if not isinstance(array_dims, Mapping):
        raise SpecTypeError(
            "array_dims must be a dict {field: (dimension name, ...)}; got "
            f"{type(array_dims).__name__} {array_dims!r:.100}"
        )
    parsed: dict[object, tuple[str, ...]] = {}
    for field, names in array_dims.items():
        if isinstance(names, (str, bytes)) or not isinstance(names, Sequence):
            raise SpecTypeError(
                f"array_dims[{field!r}] must be a tuple of dimension names, e.g. "
                f"('freq',); got {type(names).__name__} {names!r:.100}"
            )
        if not all(isinstance(name, str) for name in names):
            raise SpecTypeError(f"array_dims[{field!r}] must hold strings; got {names!r:.100}")
        if len(set(names)) != len(names):
            raise SpecError(f"array_dims[{field!r}] repeats a name: {list(names)}")
        parsed[field] = tuple(names)
    return parsed


def explode(
    values: Mapping[object, object], names: DimNames, point: object
) -> tuple[int, dict[object, list[object]]]:
    """The rows of one point: one per element of its arrays, as column -> values.

    Arrays along the same dimension names are read side by side; arrays along different
    ones are crossed (as xarray broadcasts them). Every dimension gets a column of integer
    positions; non-array values repeat on every row.
    """
    arrays = {field: value for field, value in values.items() if is_array(value)}
    if not arrays:
        return 1, {field: [value] for field, value in values.items()}
    import numpy as np

    sizes: dict[str, int] = {}
    dims_of = {field: names.of(field, array, point) for field, array in arrays.items()}
    for field, dims in dims_of.items():
        for dim, size in zip(dims, arrays[field].shape, strict=True):
            if sizes.setdefault(dim, size) != size:
                raise SpecError(
                    f"at point {point!r:.100}, dimension {dim!r} has length {sizes[dim]} "
                    f"in one field and {size} in {field!r}; arrays sharing a dimension "
                    "name must have the same length along it"
                )
    count = math.prod(sizes.values())
    axis = {dim: i for i, dim in enumerate(sizes)}
    index = np.indices(tuple(sizes.values())).reshape(len(sizes), count)
    cells: dict[object, list[object]] = {dim: list(index[axis[dim]]) for dim in sizes}
    for field, value in values.items():
        if field in arrays:
            cells[field] = list(arrays[field][tuple(index[axis[dim]] for dim in dims_of[field])])
        else:
            cells[field] = [value] * count
    return count, cells


def stack_cells(
    field: object,
    entries: Sequence[tuple[int, object, object]],
    size: int,
    names: DimNames,
) -> tuple[npt.NDArray[np.generic], tuple[str, ...]]:
    """One array field over ``size`` grid cells: shape ``(size, *array shape)``.

    ``entries`` holds ``(cell, array, point)`` for every point that has the field. Missing
    cells are NaN: integer and boolean arrays then become float, other non-numeric ones
    object arrays.

    Raises
    ------
    SpecError
        When the field holds arrays of different shapes, or arrays and other values.
    """
    import numpy as np

    arrays = _same_shape_arrays(field, entries)
    first, first_point = arrays[0], entries[0][2]
    dims = names.of(field, first, first_point)
    stacked = np.stack(arrays)
    dtype = stacked.dtype
    if len(entries) == size:
        grid = np.empty((size, *first.shape), dtype=dtype)
    else:
        if dtype.kind in "biu":
            dtype = np.dtype(float)
        elif dtype.kind not in "fc":
            dtype = np.dtype(object)
        grid = np.full((size, *first.shape), np.nan, dtype=dtype)
    grid[[cell for cell, _, _ in entries]] = stacked
    return grid, dims


def _same_shape_arrays(
    field: object, entries: Sequence[tuple[int, object, object]]
) -> list[npt.NDArray[np.generic]]:
    """The arrays of ``entries`` (``(cell, array, point)``); SpecError unless every one is
    an array of the first one's shape."""
    first_point = entries[0][2]
    arrays: list[npt.NDArray[np.generic]] = []
    for _, value, point in entries:
        if not is_array(value):
            raise SpecError(
                f"output field {field!r} is an array at point {first_point!r:.100} but a "
                f"{type(value).__name__} at point {point!r:.100}; to_xarray needs arrays "
                "of one shape at every point (to_dataframe takes any mix)"
            )
        if arrays and value.shape != arrays[0].shape:
            raise SpecError(
                f"output field {field!r} holds arrays of different shapes: {arrays[0].shape} "
                f"at point {first_point!r:.100} and {value.shape} at point {point!r:.100}; "
                "to_xarray needs one shape (to_dataframe takes any shapes)"
            )
        arrays.append(value)
    return arrays
