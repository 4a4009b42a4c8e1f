"""Ready-made ``collate_fn`` / ``merge_fn`` pairs for the result shapes people use.

A :class:`~swarm_memo.SwarmMemo` turns the outputs of each memo chunk into a chunk value
with ``collate_fn`` and the chunk values (in chunk order) into the result of ``run`` with
``merge_fn``. The helpers below come in matching pairs:

=====================  ======================  ==========================================
``collate_fn``         ``merge_fn``            result of ``run``
=====================  ======================  ==========================================
(default: the list)    :func:`concat_lists`    one list of outputs (the default)
:func:`stack_arrays`   :func:`concat_arrays`   one numpy array, one row per point
:func:`records_frame`  :func:`concat_frames`   one pandas DataFrame, one row per point
=====================  ======================  ==========================================

They are top-level functions, so they pickle by reference. numpy and pandas are imported
only when a helper is called; a missing one raises an :class:`ImportError` naming the
extra to install (``pip install swarm-memo[numpy]`` or ``swarm-memo[pandas]``).

Examples
--------
>>> from swarm_memo import SwarmMemo
>>> from swarm_memo.collate import concat_arrays, stack_arrays
>>> memo = SwarmMemo(
...     "./cache", {"x": 2}, 4, exec_fn=lambda params, point: [point[0], point[0] ** 2],
...     collate_fn=stack_arrays, merge_fn=concat_arrays,
... )
>>> out, diag = memo.run({}, {"x": [1, 2, 3]})  # doctest: +SKIP
>>> out  # doctest: +SKIP
array([[1, 1],
       [2, 4],
       [3, 9]])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from swarm_memo.core.optional import missing_dependency

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd  # type: ignore[import-untyped,unused-ignore]

__all__ = [
    "concat_arrays",
    "concat_frames",
    "concat_lists",
    "records_frame",
    "stack_arrays",
]

T = TypeVar("T")


def concat_lists(chunks: Iterable[Iterable[T]]) -> list[T]:
    """``merge_fn``: concatenate the chunk lists, in chunk order (the default merge).

    Parameters
    ----------
    chunks
        One iterable of outputs per memo chunk, in chunk order.

    Returns
    -------
    list
        Every output, chunk after chunk.

    Examples
    --------
    >>> concat_lists([[1, 2], [3], []])
    [1, 2, 3]
    """
    return [item for chunk in chunks for item in chunk]


def stack_arrays(outputs: Sequence[npt.ArrayLike]) -> npt.NDArray[np.generic]:
    """``collate_fn``: stack a chunk's outputs into one array, one row per point.

    Each output must be array-like with the same shape (a number, a list of numbers, an
    array); the result has shape ``(points in the chunk, *output shape)``. Pair it with
    :func:`concat_arrays` as ``merge_fn``.

    Parameters
    ----------
    outputs
        The outputs of one memo chunk, in point order.

    Returns
    -------
    numpy.ndarray
        ``numpy.stack(outputs)``; an empty float array of shape ``(0,)`` for a chunk
        without points.

    Raises
    ------
    ImportError
        When numpy is not installed (``pip install "swarm-memo[numpy]"``).

    Examples
    --------
    >>> stack_arrays([[1, 2], [3, 4], [5, 6]]).shape
    (3, 2)
    """
    try:
        import numpy as np
    except ImportError as exc:
        raise missing_dependency("numpy", "numpy", "swarm_memo.collate.stack_arrays") from exc
    if len(outputs) == 0:
        return np.empty((0,))
    return np.stack([np.asarray(output) for output in outputs])


def concat_arrays(chunks: Sequence[npt.ArrayLike]) -> npt.NDArray[np.generic]:
    """``merge_fn``: concatenate chunk arrays along axis 0, in chunk order.

    The counterpart of :func:`stack_arrays`: the result of ``run`` is one array with one
    row per point, in the order of the points.

    Parameters
    ----------
    chunks
        One array-like per memo chunk (rows are points), in chunk order.

    Returns
    -------
    numpy.ndarray
        ``numpy.concatenate(chunks, axis=0)``. Empty chunks (no rows) are left out, so a
        chunk without points never breaks the shapes; no chunks at all gives an empty
        float array of shape ``(0,)``.

    Raises
    ------
    ImportError
        When numpy is not installed (``pip install "swarm-memo[numpy]"``).

    Examples
    --------
    >>> import numpy as np
    >>> concat_arrays([np.zeros((2, 3)), np.ones((1, 3))]).shape
    (3, 3)
    """
    try:
        import numpy as np
    except ImportError as exc:
        raise missing_dependency("numpy", "numpy", "swarm_memo.collate.concat_arrays") from exc
    arrays = [np.asarray(chunk) for chunk in chunks]
    filled = [array for array in arrays if array.ndim == 0 or array.shape[0] > 0]
    if not filled:
        return np.concatenate(arrays, axis=0) if arrays else np.empty((0,))
    return np.concatenate(filled, axis=0)


def concat_frames(chunks: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """``merge_fn``: concatenate chunk DataFrames, in chunk order, with a fresh index.

    Parameters
    ----------
    chunks
        One DataFrame per memo chunk, in chunk order (e.g. made by :func:`records_frame`).

    Returns
    -------
    pandas.DataFrame
        ``pandas.concat(chunks, ignore_index=True)``: rows numbered ``0 .. n-1``. No chunks
        at all gives an empty DataFrame.

    Raises
    ------
    ImportError
        When pandas is not installed (``pip install "swarm-memo[pandas]"``).

    Examples
    --------
    >>> import pandas as pd
    >>> concat_frames([pd.DataFrame({"a": [1, 2]}), pd.DataFrame({"a": [3]})])["a"].tolist()
    [1, 2, 3]
    """
    try:
        import pandas as pd  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise missing_dependency("pandas", "pandas", "swarm_memo.collate.concat_frames") from exc
    frames = list(chunks)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def records_frame(
    outputs: Sequence[Mapping[str, object]],
    points: Sequence[object] | None = None,
    axes: Sequence[str] | None = None,
) -> pd.DataFrame:
    """``collate_fn``: a DataFrame with one row per output, one column per dict key,
    after one column per axis.

    Outputs are dicts (mappings); a key missing from some outputs gives NaN in their rows.
    Columns follow the order in which keys first appear. Pair it with
    :func:`concat_frames` as ``merge_fn``. As a memo's ``collate_fn`` it also receives
    each chunk's points and axes (it is marked ``swarm_memo_points``), so the frame starts
    with the axis columns; an output key named like an axis is dropped when it equals the
    axis on every row, else renamed ``<key>_output``.

    Parameters
    ----------
    outputs
        The dict outputs of one memo chunk, in point order.
    points, axes
        The chunk's points and the axes, in ``axis_order``: points that are tuples of one
        value per axis give the axis columns (other points give none).

    Returns
    -------
    pandas.DataFrame
        One row per output, with a ``0 .. n-1`` index.

    Raises
    ------
    ImportError
        When pandas is not installed (``pip install "swarm-memo[pandas]"``).
    TypeError
        When an output is not a mapping.

    Examples
    --------
    >>> records_frame([{"x": 1, "y": 2.0}, {"x": 2, "y": 4.0}]).to_dict("list")
    {'x': [1, 2], 'y': [2.0, 4.0]}
    """
    try:
        import pandas as pd  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise missing_dependency("pandas", "pandas", "swarm_memo.collate.records_frame") from exc
    columns: dict[str, None] = {}
    for position, output in enumerate(outputs):
        if not isinstance(output, Mapping):
            raise TypeError(
                "records_frame needs dict outputs (one row per output); output "
                f"{position} of the chunk is a {type(output).__name__}: {output!r:.100}"
            )
        columns.update(dict.fromkeys(output))
    nan = float("nan")
    data = {column: [output.get(column, nan) for output in outputs] for column in columns}
    data = {**_axis_columns(points, axes, len(outputs)), **_renamed(data, points, axes)}
    return pd.DataFrame(data, columns=list(data), index=pd.RangeIndex(len(outputs)))


records_frame.swarm_memo_points = True  # type: ignore[attr-defined]
"""The Collated sink passes ``points=`` and ``axes=`` to collate functions marked so."""


def _point_tuples(
    points: Sequence[object] | None, axes: Sequence[str] | None, rows: int
) -> tuple[list[tuple[object, ...]], list[str]] | None:
    """The points and axes when every point is a tuple of one value per axis."""
    if points is None or axes is None or len(points) != rows:
        return None
    tuples = [p for p in points if type(p) is tuple and len(p) == len(axes)]
    if len(tuples) != len(points):
        return None
    return tuples, list(axes)


def _axis_columns(
    points: Sequence[object] | None, axes: Sequence[str] | None, rows: int
) -> dict[str, list[object]]:
    found = _point_tuples(points, axes, rows)
    if found is None:
        return {}
    tuples, names = found
    return {axis: [point[i] for point in tuples] for i, axis in enumerate(names)}


def _renamed(
    data: dict[str, list[object]], points: Sequence[object] | None, axes: Sequence[str] | None
) -> dict[str, list[object]]:
    """Output columns named like an axis: dropped when equal to it, else ``<key>_output``."""
    found = _point_tuples(points, axes, len(next(iter(data.values()), [])))
    if found is None or not data:
        return data
    from swarm_memo.identity.hashing import equal

    tuples, names = found
    out: dict[str, list[object]] = {}
    for column, values in data.items():
        if column not in names:
            out[column] = values
            continue
        i = names.index(column)
        if not all(equal(v, p[i]) for v, p in zip(values, tuples, strict=True)):
            new = f"{column}_output"
            while new in data or new in names:
                new += "_"
            out[new] = values
    return out
