"""Sweep results as a pandas DataFrame or an xarray Dataset, one entry per point.

Both functions ignore the memo's ``collate_fn`` and ``merge_fn``: they run (or load) a
shallow copy of the memo with the default collate and merge, which returns the outputs of
every point as one list in chunk order, and pair that list with the points, enumerated
chunk by chunk exactly as the memo does (bins are consecutive runs of each axis list;
chunks are the product of the bins, the first axis of ``axis_order`` varying slowest).

pandas and xarray are imported only when called; a missing one raises an
:class:`ImportError` naming the extra to install.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._hashing import encode
from ._memo import SwarmMemo, default_collate, default_merge
from ._worker import PointFailure
from .collate import missing_dependency
from .errors import SpecError, SpecTypeError, SwarmMemoError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd  # type: ignore[import-untyped,unused-ignore]
    import xarray as xr

__all__ = ["to_dataframe", "to_xarray"]

PointToDict = Callable[[Any], Mapping[str, Any]]

VALUE_FIELD = "value"
"""Name of the column / data variable holding outputs that are not dicts."""

_PROBE_AXIS = "__swarm_memo_point__"


# ---------------------------------------------------------------------------- enumeration


@dataclass(frozen=True)
class _ChunkPlan:
    """One memo chunk: its sub-spec (axes in ``axis_order``) and its bins' offsets."""

    split_spec: dict[str, list[Any]]
    offsets: tuple[int, ...]


def chunk_plans(memo: SwarmMemo, split_spec: Mapping[str, Sequence[Any]]) -> list[_ChunkPlan]:
    """The memo chunks of ``split_spec``, in the order ``run`` processes them."""
    sizes = dict(memo.layout.bin_sizes)
    per_axis: list[list[tuple[int, list[Any]]]] = []
    for axis in memo.axis_order:
        values, size = list(split_spec[axis]), sizes[axis]
        per_axis.append([(i, values[i : i + size]) for i in range(0, len(values), size)])
    return [
        _ChunkPlan(
            {axis: values for axis, (_, values) in zip(memo.axis_order, combo)},
            tuple(offset for offset, _ in combo),
        )
        for combo in itertools.product(*per_axis)
    ]


def enumerate_sweep(
    memo: SwarmMemo, params: dict[str, Any], split_spec: Mapping[str, Sequence[Any]]
) -> tuple[list[Any], list[tuple[int, ...]] | None]:
    """Every point of the request, in the order of ``run``'s default-merged output.

    Returns the points and, for the default enumerator, each point's position in the
    full grid (one index per axis of ``axis_order``); None for a custom enumerator.
    """
    points: list[Any] = []
    positions: list[tuple[int, ...]] | None = None if memo.enumerate_points else []
    for plan in chunk_plans(memo, split_spec):
        if memo.enumerate_points is not None:
            points.extend(memo.enumerate_points(params, plan.split_spec))
            continue
        assert positions is not None
        bins = plan.split_spec.values()
        points.extend(itertools.product(*bins))
        ranges = [range(off, off + len(b)) for off, b in zip(plan.offsets, bins)]
        positions.extend(itertools.product(*ranges))
    return points, positions


class _PickPoints:
    """``enumerate_points`` of a probe memo: chunk ``{axis: [i]}`` holds ``points[i]``."""

    def __init__(self, points: list[Any]) -> None:
        self.points = points

    def __call__(self, params: dict[str, Any], split_spec: dict[str, list[Any]]) -> list[Any]:
        return [self.points[i] for i in split_spec[_PROBE_AXIS]]


def _probe_memo(memo: SwarmMemo, bins: dict[str, int], **kwargs: Any) -> SwarmMemo:
    """A read-only memo on the same params sets, one point per chunk."""
    return SwarmMemo(
        memo.cache_root,
        dict.fromkeys(bins, 1),
        1,
        cache_version=memo.cache_version,
        max_workers=1,
        verbose=0,
        executor="serial",
        **kwargs,
    )


def _stored_mask(
    memo: SwarmMemo,
    params: dict[str, Any],
    split_spec: Mapping[str, Sequence[Any]],
    points: list[Any],
    positions: list[tuple[int, ...]] | None,
) -> list[bool]:
    """Which points are stored, found with ``status`` on a memo of one-point chunks.

    ``load`` returns the stored outputs without saying which points they belong to;
    ``status`` of a memo whose chunks are single points lists exactly the missing ones,
    from the point index alone (no output is loaded).
    """
    order = memo.axis_order
    if positions is not None:
        probe = _probe_memo(memo, dict.fromkeys(order, 1), axis_order=order)
        status = probe.status(params, {axis: list(split_spec[axis]) for axis in order})
        lookups = [_AxisLookup(axis, list(split_spec[axis])) for axis in order]
        missing = {
            tuple(lookup.find(spec[lookup.axis][0]) for lookup in lookups)
            for spec in status.missing
        }
        return [position not in missing for position in positions]
    probe = _probe_memo(memo, {_PROBE_AXIS: 1}, enumerate_points=_PickPoints(points))
    status = probe.status(params, {_PROBE_AXIS: list(range(len(points)))})
    missing_indices = {spec[_PROBE_AXIS][0] for spec in status.missing}
    return [i not in missing_indices for i in range(len(points))]


@dataclass
class _Sweep:
    """The points that have an output, their outputs, and their grid positions."""

    points: list[Any]
    outputs: list[Any]
    positions: list[tuple[int, ...]] | None


def collect(
    memo: SwarmMemo,
    params: dict[str, Any],
    split_spec: Mapping[str, Sequence[Any]],
    *,
    load_only: bool = False,
) -> _Sweep:
    """Run (or load) the request and pair each output with its point.

    Points without an output (not stored, with ``load_only``; failed, with
    ``on_error="skip"``) are left out.
    """
    lite = copy.copy(memo)
    lite.collate_fn = default_collate
    lite.merge_fn = default_merge
    request: dict[str, Any] = dict(split_spec)
    if load_only:
        outputs, diag = lite.load(params, request)
    else:
        outputs, diag = lite.run(params, request)
    points, positions = enumerate_sweep(memo, params, split_spec)
    outputs = list(outputs)
    if load_only and diag.missing_points:
        mask = _stored_mask(memo, params, split_spec, points, positions)
        points = [p for p, stored in zip(points, mask) if stored]
        if positions is not None:
            positions = [p for p, stored in zip(positions, mask) if stored]
    if len(points) != len(outputs):
        raise SwarmMemoError(
            f"could not pair the {len(outputs)} outputs with the {len(points)} points "
            + ("found stored " if load_only else "")
            + "for this request (did the cache or enumerate_points change meanwhile?); "
            "retry, or build the table from memo.run() / memo.load(strict=True)"
        )
    keep = [i for i, output in enumerate(outputs) if not isinstance(output, PointFailure)]
    if len(keep) < len(outputs):
        points = [points[i] for i in keep]
        outputs = [outputs[i] for i in keep]
        if positions is not None:
            positions = [positions[i] for i in keep]
    return _Sweep(points, outputs, positions)


# ---------------------------------------------------------------------------- values


def _equal(a: Any, b: Any) -> bool:
    """Whether two values are the same (``==``, or the same canonical encoding)."""
    if a is b:
        return True
    try:
        if bool(a == b):
            return True
    except Exception:
        pass
    try:
        return encode(a) == encode(b)
    except TypeError:
        return False


class _AxisLookup:
    """Position of a value in an axis list: by canonical encoding, else by ``==``."""

    def __init__(self, axis: str, values: list[Any]) -> None:
        self.axis = axis
        self.values = values
        self._by_encoding: dict[bytes, int] = {}
        for i, value in enumerate(values):
            self._by_encoding.setdefault(encode(value), i)

    def find(self, value: Any) -> int | None:
        try:
            found = self._by_encoding.get(encode(value))
        except TypeError:
            found = None
        if found is not None:
            return found
        for i, candidate in enumerate(self.values):
            if _equal(candidate, value):
                return i
        return None


def _point_dicts(
    memo: SwarmMemo,
    split_spec: Mapping[str, Sequence[Any]],
    sweep: _Sweep,
    point_to_dict: PointToDict | None,
) -> list[dict[Any, Any]]:
    """The axis values (and any extra keys of ``point_to_dict``) of every point."""
    order = memo.axis_order
    if point_to_dict is not None:
        dicts = []
        for point in sweep.points:
            mapped = point_to_dict(point)
            if not isinstance(mapped, Mapping):
                raise SpecTypeError(
                    f"point_to_dict must return a dict of axis values; got "
                    f"{type(mapped).__name__} {mapped!r:.100} for point {point!r:.100}"
                )
            dicts.append(dict(mapped))
        return dicts
    if sweep.positions is not None:  # default enumerator: tuples in axis order, by design
        return [dict(zip(order, point)) for point in sweep.points]
    lookups = [_AxisLookup(axis, list(split_spec[axis])) for axis in order]
    dicts = []
    for point in sweep.points:
        hint = (
            f"points are read as tuples of axis values in axis_order {list(order)}; for "
            "other points pass point_to_dict=lambda point: {axis: value, ...}"
        )
        if isinstance(point, (str, bytes)) or not isinstance(point, Sequence):
            raise SpecError(f"point {point!r:.100} is not a tuple; {hint}")
        if len(point) != len(order):
            raise SpecError(f"point {point!r:.100} has {len(point)} values; {hint}")
        for lookup, value in zip(lookups, point):
            if lookup.find(value) is None:
                raise SpecError(
                    f"point {point!r:.100} has the value {value!r:.60} for axis "
                    f"{lookup.axis!r}, which is not in split_spec[{lookup.axis!r}]; {hint}"
                )
        dicts.append(dict(zip(order, point)))
    return dicts


def _output_fields(output: Any) -> dict[Any, Any]:
    if isinstance(output, Mapping):
        return dict(output)
    return {VALUE_FIELD: output}


def _field_names(
    fields: list[dict[Any, Any]], coords: list[dict[Any, Any]], reserved: Sequence[Any]
) -> dict[Any, Any]:
    """Output field -> column name; None drops a field that only repeats a coordinate.

    A field named like a coordinate (e.g. an output that echoes its point) is dropped when
    it equals that coordinate at every point, and renamed ``<field>_output`` otherwise.
    """
    names: dict[Any, Any] = {}
    for row in fields:
        for name in row:
            names.setdefault(name, name)
    taken = set(reserved) | set(names)
    for name in list(names):
        if name not in reserved:
            continue
        if all(_equal(row[name], point.get(name)) for row, point in zip(fields, coords)):
            names[name] = None
            continue
        new = f"{name}_output"
        while new in taken:
            new += "_"
        taken.add(new)
        names[name] = new
    return names


# ---------------------------------------------------------------------------- DataFrame


def to_dataframe(
    memo: SwarmMemo,
    params: dict[str, Any],
    split_spec: Mapping[str, Sequence[Any]],
    point_to_dict: PointToDict | None = None,
    *,
    load_only: bool = False,
) -> pd.DataFrame:
    """Run a sweep (or load it) and return one DataFrame row per point.

    The memo's ``collate_fn`` and ``merge_fn`` are not used: the outputs are taken point
    by point, so this works whatever they are.

    Parameters
    ----------
    memo
        The memo to run.
    params, split_spec
        As for :meth:`SwarmMemo.run`.
    point_to_dict
        ``point_to_dict(point) -> {axis: value, ...}`` for points that are not tuples of
        axis values in ``memo.axis_order`` (custom ``enumerate_points``). Keys that are
        not axes become extra columns after the axis columns.
    load_only
        Use :meth:`SwarmMemo.load` instead of :meth:`SwarmMemo.run`: nothing executes,
        and points not stored simply have no row.

    Returns
    -------
    pandas.DataFrame
        With the default enumerator, rows follow the grid: the product of the
        ``split_spec`` lists in ``axis_order`` (first axis slowest), whatever the
        ``memo_chunk_spec``. With a custom ``enumerate_points``, rows follow ``run``'s
        output (chunk by chunk, points in enumeration order). Columns: one per
        axis, named by the axis, in ``axis_order``; then the output's fields: a dict output
        spreads into one column per key (NaN where a row lacks a key), any other output
        goes into a ``value`` column. A field named like an axis is dropped when it equals
        the axis value at every point (outputs often echo their point), and is renamed
        ``<field>_output`` otherwise. Points that failed (``on_error="skip"``) have no row.

    Raises
    ------
    ImportError
        When pandas is not installed (``pip install "swarm-memo[pandas]"``).
    SpecError
        When points of a custom ``enumerate_points`` cannot be read as tuples in axis
        order and no ``point_to_dict`` is given.

    Examples
    --------
    >>> memo = SwarmMemo("./cache", {"a": 2, "b": 2}, 4, verbose=0,
    ...                  exec_fn=lambda params, point: {"sum": point[0] + point[1]})
    >>> to_dataframe(memo, {}, {"a": [1, 2], "b": [10, 20]})  # doctest: +SKIP
       a   b  sum
    0  1  10   11
    1  1  20   21
    2  2  10   12
    3  2  20   22
    """
    try:
        import pandas as pd  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise missing_dependency("pandas", "pandas", "SwarmMemo.to_dataframe") from exc
    sweep = collect(memo, params, split_spec, load_only=load_only)
    if sweep.positions is not None:  # default enumerator: rows in grid order
        rows = sorted(range(len(sweep.points)), key=sweep.positions.__getitem__)
        sweep = _Sweep(
            [sweep.points[i] for i in rows],
            [sweep.outputs[i] for i in rows],
            [sweep.positions[i] for i in rows],
        )
    coords = _point_dicts(memo, split_spec, sweep, point_to_dict)
    fields = [_output_fields(output) for output in sweep.outputs]
    coord_columns: dict[Any, None] = dict.fromkeys(memo.axis_order)
    for point in coords:
        coord_columns.update(dict.fromkeys(point))
    names = _field_names(fields, coords, list(coord_columns))
    nan = float("nan")
    data: dict[Any, list[Any]] = {
        column: [point.get(column, nan) for point in coords] for column in coord_columns
    }
    for name, column in names.items():
        if column is not None:
            data[column] = [row.get(name, nan) for row in fields]
    return pd.DataFrame(data, columns=list(data), index=pd.RangeIndex(len(coords)))


# ---------------------------------------------------------------------------- xarray


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


def to_xarray(
    memo: SwarmMemo,
    params: dict[str, Any],
    split_spec: Mapping[str, Sequence[Any]],
    point_to_dict: PointToDict | None = None,
    *,
    load_only: bool = False,
) -> xr.Dataset:
    """Run a sweep (or load it) and return it as an xarray Dataset over the grid.

    The memo's ``collate_fn`` and ``merge_fn`` are not used.

    Parameters
    ----------
    memo
        The memo to run.
    params, split_spec
        As for :meth:`SwarmMemo.run`.
    point_to_dict
        ``point_to_dict(point) -> {axis: value, ...}`` for points that are not tuples of
        axis values in ``memo.axis_order`` (custom ``enumerate_points``). Every axis must
        be a key, with a value from ``split_spec``; other keys are ignored.
    load_only
        Use :meth:`SwarmMemo.load` instead of :meth:`SwarmMemo.run`: nothing executes,
        and points not stored are NaN.

    Returns
    -------
    xarray.Dataset
        Dimensions: the axes, in ``axis_order``; coordinates: the axis values in the order
        of ``split_spec``. A dict output gives one data variable per key, any other
        output a ``value`` variable. Combinations without an output (skipped by a custom
        enumerator, not stored with ``load_only``, failed with ``on_error="skip"``) are
        NaN; numeric variables with NaN are float. A key named like an axis is dropped
        when it equals the axis value at every point, and renamed ``<key>_output``
        otherwise.

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
    order = memo.axis_order
    sweep = collect(memo, params, split_spec, load_only=load_only)
    axis_values = {axis: list(split_spec[axis]) for axis in order}
    shape = tuple(len(axis_values[axis]) for axis in order)
    if sweep.positions is not None and point_to_dict is None:
        positions = sweep.positions
        coords = [dict(zip(order, point)) for point in sweep.points]
    else:
        coords = _point_dicts(memo, split_spec, sweep, point_to_dict)
        lookups = [_AxisLookup(axis, axis_values[axis]) for axis in order]
        positions = []
        for point, mapped in zip(sweep.points, coords):
            position = []
            for lookup in lookups:
                if lookup.axis not in mapped:
                    raise SpecError(
                        f"point_to_dict({point!r:.100}) has no value for axis {lookup.axis!r}; "
                        f"it must give every axis of {list(order)}"
                    )
                index = lookup.find(mapped[lookup.axis])
                if index is None:
                    raise SpecError(
                        f"point {point!r:.100} has the value {mapped[lookup.axis]!r:.60} for "
                        f"axis {lookup.axis!r}, which is not in split_spec[{lookup.axis!r}]"
                    )
                position.append(index)
            positions.append(tuple(position))
    size = math.prod(shape)
    strides = [math.prod(shape[i + 1 :]) for i in range(len(shape))]
    flat = [sum(i * s for i, s in zip(position, strides)) for position in positions]
    owner: dict[int, int] = {}
    for number, cell in enumerate(flat):
        if cell in owner:
            raise SpecError(
                f"points {sweep.points[owner[cell]]!r:.100} and {sweep.points[number]!r:.100} "
                "have the same axis values; to_xarray needs at most one point per "
                "combination of axis values (to_dataframe has no such limit)"
            )
        owner[cell] = number
    fields = [_output_fields(output) for output in sweep.outputs]
    names = _field_names(fields, coords, list(order))
    data_vars: dict[Any, tuple[tuple[str, ...], Any]] = {}
    for name, variable in names.items():
        if variable is None:
            continue
        values: list[Any] = [None] * size
        has = [False] * size
        for cell, row in zip(flat, fields):
            if name in row:
                values[cell] = row[name]
                has[cell] = True
        array = _as_array(values, has).reshape(shape)
        data_vars[variable] = (order, array)
    coord_arrays = {
        axis: _as_array(axis_values[axis], [True] * len(axis_values[axis])) for axis in order
    }
    return xr.Dataset(data_vars, coords=coord_arrays)
