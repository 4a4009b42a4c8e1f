"""The grid of a sweep for DataFrames and Datasets: where each point sits, and which
output fields become which columns.

Pure: takes the ``(point, output)`` pairs, ``split_spec`` and ``axis_order``; no I/O,
no memo, no pandas.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from swarm_memo.core.jobs import PointFailure
from swarm_memo.errors import SpecError, SpecTypeError
from swarm_memo.identity.hashing import encode, equal

__all__ = [
    "ERROR_COLUMN",
    "ERROR_FIELD",
    "VALUE_FIELD",
    "PointToDict",
    "Sweep",
    "equal",
    "field_names",
    "grid_cells",
    "output_fields",
]

PointToDict = Callable[[Any], Mapping[str, object]]
Position = tuple[int, ...]

VALUE_FIELD = "value"
"""Name of the column / data variable holding outputs that are not dicts."""

ERROR_COLUMN = "error"
"""Name of the column / data variable saying why a point failed (``"ValueError: ..."``);
``error_`` (and so on) when an output field already has that name."""


class _ErrorField:
    """The field key of a failed point's error: no output field can be this object."""

    def __repr__(self) -> str:
        return "ERROR_FIELD"


ERROR_FIELD: object = _ErrorField()


class Sweep:
    """A request's points that have an output, their outputs, and its grid: the axes in
    ``axis_order``, with the ``split_spec`` lists."""

    def __init__(
        self,
        pairs: Sequence[tuple[object, object]],
        split_spec: Mapping[str, Sequence[object]],
        axis_order: Sequence[str],
        default_points: bool,
    ) -> None:
        self.points = [point for point, _ in pairs]
        self.outputs = [output for _, output in pairs]
        self.default_points = default_points
        self.order = tuple(axis_order)
        missing = [axis for axis in self.order if axis not in split_spec]
        if missing:
            raise SpecError(
                f"split_spec has no list for axis {missing[0]!r}; it needs one per axis of "
                f"axis_order {list(self.order)}"
            )
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

    def coords(self, point_to_dict: PointToDict | None) -> list[dict[object, object]]:
        """The axis values (and any extra keys of ``point_to_dict``) of every point."""
        if point_to_dict is None:
            return [self._read_tuple(point) for point in self.points]
        dicts = [point_to_dict(point) for point in self.points]
        for point, mapped in zip(self.points, dicts, strict=True):
            if not isinstance(mapped, Mapping):
                raise SpecTypeError(
                    f"point_to_dict must return a dict of axis values; got "
                    f"{type(mapped).__name__} {mapped!r:.100} for point {point!r:.100}"
                )
        return [dict(mapped.items()) for mapped in dicts]

    def positions(self, coords: list[dict[object, object]], hint: str = "") -> list[Position]:
        """The grid position of each point (an index per axis), from its ``coords``."""
        return [
            tuple(self._index(p, c, axis, hint) for axis in self.order)
            for p, c in zip(self.points, coords, strict=True)
        ]

    def _read_tuple(self, point: object) -> dict[object, object]:
        if not isinstance(point, tuple) and (
            isinstance(point, (str, bytes)) or not isinstance(point, Sequence)
        ):
            raise SpecError(f"point {point!r:.100} is not a tuple; {self.hint}")
        if len(point) != len(self.order):
            raise SpecError(f"point {point!r:.100} has {len(point)} values; {self.hint}")
        return dict(zip(self.order, point, strict=True))

    def _index(self, point: object, coords: Mapping[object, object], axis: str, hint: str) -> int:
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
            found = next((i for i, v in enumerate(self.values[axis]) if equal(v, value)), None)
        if found is None:
            raise SpecError(
                f"point {point!r:.100} has the value {value!r:.60} for axis {axis!r}, "
                f"which is not in split_spec[{axis!r}]" + (hint and f"; {hint}")
            )
        return found


def output_fields(output: object) -> dict[object, object]:
    """The fields of one output; a failed point (a :class:`PointFailure`) has none but
    its error, so its row or cell is NaN with ``"ExcType: message"`` in the error column."""
    if isinstance(output, PointFailure):
        return {ERROR_FIELD: f"{output.exc_type}: {output.message}"}
    return dict(output) if isinstance(output, Mapping) else {VALUE_FIELD: output}


def field_names(
    fields: list[dict[object, object]],
    coords: list[dict[object, object]],
    reserved: Sequence[object],
) -> dict[object, object]:
    """Output field -> column name; None drops a field that only repeats a coordinate.

    A field named like a coordinate (e.g. an output that echoes its point) is dropped when
    it equals that coordinate at every point, and renamed ``<field>_output`` otherwise.
    """
    names: dict[object, object] = {}
    for row in fields:
        names.update((name, name) for name in row if name not in names)
    taken = set(reserved) | set(names)
    for name in [name for name in names if name in reserved]:
        if all(
            name not in row or equal(row[name], point.get(name))
            for row, point in zip(fields, coords, strict=True)
        ):
            names[name] = None
            continue
        new = f"{name}_output"
        while new in taken:
            new += "_"
        taken.add(new)
        names[name] = new
    if ERROR_FIELD in names:  # last, under a name no output field has
        column = ERROR_COLUMN
        while column in taken:
            column += "_"
        del names[ERROR_FIELD]
        names[ERROR_FIELD] = column
    return names


def grid_cells(sweep: Sweep, positions: list[Position]) -> list[int]:
    """The flat (C-order) cell of each position; SpecError when two points share one."""
    shape, points = sweep.shape, sweep.points
    strides = [math.prod(shape[i + 1 :]) for i in range(len(shape))]
    cells = [sum(i * s for i, s in zip(position, strides, strict=True)) for position in positions]
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
