"""The coverage of a request as a grid of point states, and its picture over two axes
(the other axes aggregated): what ``swarm-memo show``, ``Status.plot`` and
``Status._repr_html_`` draw. Pure: no I/O; :mod:`swarm_memo.run.coverage` builds it from
the cache.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from swarm_memo.core.optional import missing_dependency
from swarm_memo.errors import SpecError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["FAILED", "MISSING", "STORED", "Coverage", "Picture"]

MISSING, STORED, FAILED = 0, 1, 2
MAX_CELLS = 40
"""Most rows drawn; longer axes are drawn in groups of consecutive values."""
MAX_COLUMNS = 24
"""Most columns drawn (a terminal line holds about 24 labelled cells)."""
LEGEND = "# stored  . missing  X failed  1-9: tenths stored (other axes aggregated)"


@dataclass
class Coverage:
    """The state of every point of a request, in grid order (first axis slowest)."""

    axes: list[str]
    labels: list[list[str]]
    states: bytearray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(labels) for labels in self.labels)

    def count(self, state: int) -> int:
        return self.states.count(state)

    def picture(
        self,
        axes: Sequence[str] | None = None,
        max_cells: int = MAX_CELLS,
        max_columns: int = MAX_COLUMNS,
    ) -> Picture:
        """Counts over two axes (``x`` across, ``y`` down; one axis gives one row)."""
        names = list(axes) if axes else self.axes[:2]
        for name in names:
            if name not in self.axes:
                raise SpecError(f"unknown axis {name!r}; the request's axes are {self.axes}")
        if not 1 <= len(names) <= 2 or len(set(names)) != len(names):
            raise SpecError(f"give one or two distinct axes; got {names}")
        x = self.axes.index(names[0])
        y = self.axes.index(names[1]) if len(names) == 2 else None
        xs = _groups(len(self.labels[x]), max_columns)
        ys = _groups(len(self.labels[y]), max_cells) if y is not None else [range(1)]
        col_of = {i: c for c, group in enumerate(xs) for i in group}
        row_of = {i: r for r, group in enumerate(ys) for i in group}
        counts = [[[0, 0, 0] for _ in xs] for _ in ys]
        for flat, position in enumerate(itertools.product(*map(range, self.shape))):
            cell = counts[0 if y is None else row_of[position[y]]][col_of[position[x]]]
            cell[self.states[flat]] += 1
        return Picture(
            names,
            [self._group_label(x, g) for g in xs],
            [self._group_label(y, g) for g in ys] if y is not None else [""],
            counts,
            self.count(STORED),
            self.count(FAILED),
            len(self.states),
            [self.labels[x][g[0]] for g in xs],
            len(xs[0]) if xs else 1,
        )

    def _group_label(self, axis: int, group: range) -> str:
        labels = self.labels[axis]
        if len(group) == 1:
            return labels[group[0]]
        return f"{labels[group[0]]}..{labels[group[-1]]}"


def _groups(length: int, most: int) -> list[range]:
    size = max(1, math.ceil(length / most))
    return [range(i, min(i + size, length)) for i in range(0, length, size)]


@dataclass
class Picture:
    """Stored / missing / failed counts per cell of two axes: ``counts[row][column]`` is
    ``[missing, stored, failed]``."""

    axes: list[str]
    columns: list[str]
    rows: list[str]
    counts: list[list[list[int]]]
    stored: int
    failed: int
    total: int
    column_starts: list[str] | None = None
    """The first value of each column (what a terminal shows when columns group values)."""
    column_group: int = 1
    """Values of the ``x`` axis per column (long axes are grouped)."""

    def cells(self) -> list[str]:
        """One string per row, one character per cell: ``#`` all stored, ``.`` none,
        ``X`` some failed (and not stored), ``1``-``9`` the tenths stored."""
        return ["".join(cell_char(*cell) for cell in row) for row in self.counts]

    def summary(self) -> str:
        missing = self.total - self.stored - self.failed
        return f"{self.stored}/{self.total} stored, {self.failed} failed, {missing} missing"

    def lines(self, width: int = 8) -> list[str]:
        """The picture for a terminal: column values on top, row values on the left."""
        grouped = self.column_group > 1 and self.column_starts is not None
        shown = self.column_starts if grouped and self.column_starts else self.columns
        cols = [c[:width] for c in shown]
        col_width = max([1, *map(len, cols)])
        rows = [r[:24] for r in self.rows]
        row_width = max([len(self.axes[1]) if len(self.axes) > 1 else 0, *map(len, rows)])
        head = f"{self.axes[1] if len(self.axes) > 1 else '':<{row_width}} | "
        per = f" ({self.column_group} values per column, the first shown)" if grouped else ""
        out = [" " * row_width + f" | {self.axes[0]} ->{per}"]
        out.append(head + " ".join(c.rjust(col_width) for c in cols))
        for label, text in zip(rows, self.cells(), strict=True):
            out.append(f"{label:<{row_width}} | " + " ".join(ch.rjust(col_width) for ch in text))
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "axes": self.axes,
            "columns": self.columns,
            "rows": self.rows,
            "cells": self.cells(),
            "counts": self.counts,
            "stored": self.stored,
            "failed": self.failed,
            "total": self.total,
        }

    def html(self) -> str:
        """An HTML table of the cells, coloured by the fraction stored (red: failed)."""
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = []
        for label, row in zip(self.rows, self.counts, strict=True):
            tds = "".join(_html_cell(*cell) for cell in row)
            body.append(f"<tr><th>{html.escape(label)}</th>{tds}</tr>")
        corner = html.escape(self.axes[1]) + " \\ " if len(self.axes) > 1 else ""
        return (
            f"<p>{html.escape(self.summary())}</p>"
            '<table style="border-collapse:collapse;font-size:11px">'
            f"<tr><th>{corner}{html.escape(self.axes[0])}</th>{head}</tr>"
            + "".join(body)
            + "</table>"
        )


def cell_char(missing: int, stored: int, failed: int) -> str:
    total = missing + stored + failed
    if failed:
        return "X"
    if total == 0 or stored == total:
        return "#"
    if stored == 0:
        return "."
    return str(min(9, max(1, 10 * stored // total)))


def _html_cell(missing: int, stored: int, failed: int) -> str:
    total = max(1, missing + stored + failed)
    if failed:
        colour = "#d62728"
    else:
        level = int(235 - 175 * stored / total)
        colour = f"rgb({level},{min(255, level + 40)},{level})"
    title = f"{stored} stored, {missing} missing, {failed} failed"
    return f'<td title="{title}" style="background:{colour};width:12px;height:12px"></td>'


def plot_picture(picture: Picture, ax: Axes | None = None) -> Axes:
    """Draw a picture with matplotlib: the fraction stored per cell (greens), cells with
    failed points in red, the axis values as ticks. Returns the axes drawn on."""
    try:
        import matplotlib.pyplot as plt
        from matplotlib.colors import ListedColormap
    except ImportError as exc:
        raise missing_dependency("matplotlib", "plot", "Status.plot") from exc
    if ax is None:
        _, ax = plt.subplots()
    fraction = [[s / max(1, m + s + f) for m, s, f in row] for row in picture.counts]
    ax.imshow(fraction, cmap="Greens", vmin=0.0, vmax=1.0, aspect="auto", origin="upper")
    failed = [[1.0 if f else float("nan") for _, _, f in row] for row in picture.counts]
    ax.imshow(failed, cmap=ListedColormap(["#d62728"]), aspect="auto", origin="upper")
    ax.set_xticks(range(len(picture.columns)), picture.columns, rotation=90)
    ax.set_yticks(range(len(picture.rows)), picture.rows)
    ax.set_xlabel(picture.axes[0])
    if len(picture.axes) > 1:
        ax.set_ylabel(picture.axes[1])
    ax.set_title(picture.summary())
    return ax
