"""The progress bar: counts points, starts at the cached ones, silent when nothing runs."""

from __future__ import annotations

from types import TracebackType
from typing import Any


class Progress:
    """A tqdm bar over points, shown only at ``verbose >= 1`` and only once work starts."""

    def __init__(self, verbose: int, cached_points: int, expected_points: int) -> None:
        self._enabled = verbose >= 1 and expected_points > 0
        self._cached = cached_points
        self._expected = expected_points
        self._bar: Any = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.close()

    def _ensure_bar(self) -> Any:
        if self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=self._cached + self._expected,
                initial=self._cached,
                unit="pt",
                desc="swarm-memo",
                dynamic_ncols=True,
            )
        return self._bar

    def adjust_total(self, delta: int) -> None:
        """Correct the expected count once a chunk's real number of points is known."""
        self._expected += delta
        if self._bar is not None and delta:
            self._bar.total = self._cached + self._expected
            self._bar.refresh()

    def skip(self, points: int) -> None:
        """Count points served without executing (found in other chunk files)."""
        self._expected -= points
        self._cached += points
        if self._bar is not None and points:
            self._bar.update(points)

    def advance(self, points: int) -> None:
        if self._enabled:
            self._ensure_bar().update(points)
