"""Progress of a run, shown where the user looks: a bar on a terminal or in a notebook,
plain status lines in a log file.

A terminal (stderr is a tty) gets a tqdm bar, a Jupyter notebook the notebook bar of
``tqdm.auto`` when ipywidgets is installed and the plain bar otherwise (never tqdm's
"IProgress not found" warning). Anything else (a Slurm log, ``nohup``, a pipe) gets no
carriage-return redraws at all, only a line such as ``swarm-memo: 1200/5000 points (24%),
3 chunks written, 1:02 elapsed, ~3:20 left`` every :data:`STATUS_INTERVAL` seconds and
one at the end. ``verbose=0`` prints nothing; ``verbose=2`` adds a line per chunk written.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

__all__ = ["STATUS_INTERVAL", "Progress"]

STATUS_INTERVAL = 30.0
"""Seconds between two status lines when stderr is not a terminal."""

PREFIX = "swarm-memo: "


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def _in_notebook() -> bool:
    """Whether we run in a Jupyter kernel that can show widgets (not qtconsole/Spyder).

    The same test as ``tqdm.autonotebook``, made without importing it: its import warns.
    """
    if "ipykernel.zmqshell" not in sys.modules:
        return False
    if any(name == "QT_API" or name.startswith("SPYDER") for name in os.environ):
        return False
    ipython = sys.modules.get("IPython")
    try:
        shell = ipython.get_ipython() if ipython is not None else None
    except Exception:  # a half-initialised IPython: no notebook bar, never a crash
        return False
    name = type(shell).__name__.lower()
    return shell is not None and "qt" not in name and "spyder" not in name


def _module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken entry
        return False


def _bar_class() -> Any:
    """The tqdm class to draw a bar with: the notebook widget when it can work, else the
    plain text bar (also used when ``tqdm.auto`` would warn about missing ipywidgets)."""
    from tqdm import TqdmWarning
    from tqdm import tqdm as text_bar

    if not _in_notebook() or not _module_available("ipywidgets"):
        return text_bar
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from tqdm.auto import tqdm as auto_bar
    if any(issubclass(w.category, TqdmWarning) for w in caught):
        return text_bar  # ipywidgets present but unusable: tqdm.auto fell back anyway
    return auto_bar


def _clock_text(seconds: float) -> str:
    """``62`` -> ``1:02``, ``3723`` -> ``1:02:03``."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Progress over points, shown at ``verbose >= 1`` and only once work starts.

    Parameters
    ----------
    verbose
        ``0`` prints nothing, ever; ``1`` a bar or status lines while points execute,
        and the summary given to :meth:`finish`; ``2`` also a line per chunk written.
    cached_points
        Points of the request already served (the bar starts there).
    expected_points
        Points still to be computed; nothing is shown when there are none.
    stream
        Where to print; default: ``sys.stderr`` at construction.
    interval
        Seconds between status lines when ``stream`` is not a terminal.
    clock
        Monotonic time in seconds (injectable for tests).
    """

    def __init__(
        self,
        verbose: int,
        cached_points: int,
        expected_points: int,
        *,
        stream: TextIO | None = None,
        interval: float = STATUS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._verbose = verbose
        self._enabled = verbose >= 1 and expected_points > 0
        self._cached = cached_points
        self._expected = expected_points
        self._stream: TextIO = sys.stderr if stream is None else stream
        self._interval = interval
        self._clock = clock
        self._started = self._last_line = clock()
        self._executed = 0
        self._others = 0  # points other processes stored while this run worked
        self._chunks_written = 0
        self._waiting = 0
        self._active = False  # work has started: a bar exists, or status lines are due
        self._closed = False
        self._bar: Any = None

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the bar, or print the last status line; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self._active:
            self._print(self.status_line())

    # ------------------------------------------------------------------ counting

    def adjust_total(self, delta: int) -> None:
        """Correct the expected count once a chunk's real number of points is known."""
        self._expected += delta
        if self._bar is not None and delta:
            self._bar.total = self._cached + self._others + self._expected
            self._bar.refresh()

    def skip(self, points: int) -> None:
        """Count points served without executing (found in other chunk files)."""
        self._expected -= points
        self._cached += points
        if self._bar is not None and points:
            self._bar.update(points)

    def stored_elsewhere(self, planned: int, points: int) -> None:
        """Count a chunk another process stored meanwhile: its ``planned`` points leave
        what this run computes; the ``points`` it holds count as stored by others."""
        self._expected -= planned
        self._others += points
        if self._bar is not None:
            self._bar.total = self._cached + self._others + self._expected
            self._bar.set_postfix_str(self._others_text(), refresh=False)
            self._bar.update(points)

    def advance(self, points: int) -> None:
        """Count points just executed."""
        showing = self._start()  # before counting: a new bar starts from the points so far
        self._executed += points
        if showing:
            self._show(points)

    def waiting(self, chunks: int) -> None:
        """Say how many chunks this run waits for (claimed by other processes); 0 clears."""
        changed, self._waiting = chunks != self._waiting, chunks
        if (chunks == 0 and not self._active) or not self._start():
            return
        if self._bar is None:
            self._show(0)
        elif changed:
            self._bar.set_postfix_str(self._waiting_text())

    def chunk_written(self, index: int, points: int, name: str) -> None:
        """Count a chunk file written; at ``verbose=2`` print a line about it."""
        self._chunks_written += 1
        if self._verbose >= 2:
            self._print(f"wrote chunk {index} ({points} points) as {name}")

    def counts(self) -> tuple[int, int]:
        """Points of the request stored before this run or by others meanwhile, and the
        request's points as known so far."""
        stored = self._cached + self._others
        return stored, stored + max(self._expected, self._executed)

    def note(self, text: str) -> None:
        """Print one line about the run at ``verbose >= 1`` (nothing at ``verbose=0``)."""
        if self._verbose >= 1:
            self._print(text)

    def finish(self, summary: str) -> None:
        """Close the bar and print the one-line summary of the call (``verbose >= 1``)."""
        self.close()
        if self._verbose >= 1:
            self._print(summary)

    # ------------------------------------------------------------------ display

    def status_line(self) -> str:
        """``1200/5000 points (24%), 3 chunks written, 1:02 elapsed, ~3:20 left``; when
        other processes stored points meanwhile, ``60/60 points (100%): 40/40 computed
        here, 20 stored by others, ...``: what this run computes and what others stored
        are counted apart, so the line never exceeds the request's points."""
        stored = self._cached + self._others
        done, total = stored + self._executed, stored + max(self._expected, self._executed)
        percent = 100 * done // total if total > 0 else 100
        elapsed = self._clock() - self._started
        counts = f"{done}/{total} points ({percent}%)"
        if self._others:
            todo = max(self._expected, self._executed)
            counts += f": {self._executed}/{todo} computed here, {self._others_text()}"
        parts = [
            counts,
            f"{self._chunks_written} chunk{'' if self._chunks_written == 1 else 's'} written",
            f"{_clock_text(elapsed)} elapsed",
        ]
        left = total - done
        if self._executed and left > 0 and elapsed > 0:
            parts.append(f"~{_clock_text(left * elapsed / self._executed)} left")
        if self._waiting:
            parts.append(self._waiting_text())
        return ", ".join(parts)

    def _others_text(self) -> str:
        return f"{self._others} stored by others" if self._others else ""

    def _waiting_text(self) -> str:
        if not self._waiting:
            return ""
        plural = "" if self._waiting == 1 else "s"
        return f"waiting for {self._waiting} chunk{plural} claimed by other processes"

    def _start(self) -> bool:
        """Begin showing progress (once); False when nothing is to be shown."""
        if not self._enabled or self._closed:
            return False
        if not self._active:
            self._active = True
            if _is_tty(self._stream) or _in_notebook():
                self._bar = _bar_class()(
                    total=self._cached + self._others + self._expected,
                    initial=self._cached + self._others + self._executed,
                    unit="pt",
                    desc="swarm-memo",
                    dynamic_ncols=True,
                    file=self._stream,
                )
        return True

    def _show(self, points: int) -> None:
        if self._bar is not None:
            self._bar.update(points)
            return
        now = self._clock()
        if now - self._last_line >= self._interval:
            self._last_line = now
            self._print(self.status_line())

    def _print(self, text: str) -> None:
        line = PREFIX + text
        if self._bar is not None and not self._closed:
            self._bar.write(line, file=self._stream)  # keeps the bar below the line
        else:
            print(line, file=self._stream, flush=True)
