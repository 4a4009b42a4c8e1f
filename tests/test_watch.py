"""Runs you can watch (issue 21): honest progress counts, frames that keep failures, quiet
``verbose=0``, ``swarm-memo progress`` / ``show`` and papercuts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from swarm_memo import SwarmMemo


def doubled(params: dict[str, Any], point: tuple[Any, ...]) -> Any:
    return point[0] * 2


class StoredByOthersFirst:
    """``exec_fn`` whose first call lets "another process" store the later chunks."""

    def __init__(self, root: Path, others: list[int]) -> None:
        self.root = root
        self.others = others
        self.calls = 0

    def __call__(self, params: dict[str, Any], point: tuple[Any, ...]) -> Any:
        if self.calls == 0:
            other = SwarmMemo(self.root, {"x": 20}, 20, exec_fn=doubled, verbose=0)
            other.run({}, {"x": self.others})
        self.calls += 1
        return point[0] * 2


# --------------------------------------------------------------------------- item 2


def test_progress_counts_points_stored_by_others_apart_and_never_exceeds_the_total(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fn = StoredByOthersFirst(tmp_path / "cache", list(range(20, 60)))
    memo = SwarmMemo(
        tmp_path / "cache", {"x": 20}, 20, exec_fn=fn, executor="serial", verbose=1,
        on_code_change="ignore",
    )  # fmt: skip
    _, diag = memo.run({}, {"x": list(range(60))})
    lines = capsys.readouterr().err.splitlines()
    assert fn.calls == 20
    assert diag.executed_points == 20
    assert diag.cached_points == 40
    assert lines[0].startswith(
        "swarm-memo: 60/60 points (100%): 20/20 computed here, 40 stored by others, 1 chunk written"
    )
