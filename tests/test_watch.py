"""Runs you can watch (issue 21): honest progress counts, frames that keep failures, quiet
``verbose=0``, ``swarm-memo progress`` / ``show`` and papercuts."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
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


# --------------------------------------------------------------------------- item 6

DAMAGED_CHUNK_SCRIPT = """
import sys, warnings
from pathlib import Path
from swarm_memo import CacheWarning, SwarmMemo

def fn(params, point):
    return point[0]

root = Path(sys.argv[1])
memo = SwarmMemo(root, {"x": 2}, 2, exec_fn=fn, executor="serial", verbose=0)
memo.run({}, {"x": [0, 1, 2, 3]})
chunk = sorted(root.glob("*/chunks/*.chunk"))[0]
chunk.write_bytes(chunk.read_bytes()[:-5] + b"xxxxx")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    memo.load({}, {"x": [0, 1, 2, 3]})
print(sum(issubclass(w.category, CacheWarning) for w in caught))
"""


def test_verbose_0_reports_a_damaged_chunk_once_as_a_warning_and_prints_nothing(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", DAMAGED_CHUNK_SCRIPT, str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.split() == ["1"]
    assert result.stderr == ""


def test_the_swarm_memo_logger_has_a_null_handler() -> None:
    handlers = logging.getLogger("swarm_memo").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_help_says_verbose_2_prints_to_stderr() -> None:
    doc = SwarmMemo.__init__.__doc__ or SwarmMemo.__doc__ or ""
    text = " ".join(doc.split())
    assert "logs each chunk written to the ``swarm_memo`` logger" not in text
    assert "one line per chunk written, on stderr" in text


# --------------------------------------------------------------------------- item 5


def fails_on_seed_1(params: dict[str, Any], point: tuple[Any, ...]) -> Any:
    if point == (2, 1):
        raise ValueError("bad seed")
    return {"v": point[0] * 10 + point[1], "error": 0.5}


def test_frames_keep_a_failed_point_as_a_row_with_nan_outputs_and_its_error(
    tmp_path: Path,
) -> None:
    pytest.importorskip("xarray")
    memo = SwarmMemo(
        tmp_path / "cache", {"x": 2, "s": 3}, 2, exec_fn=fails_on_seed_1,
        on_error="skip", executor="serial", verbose=0,
    )  # fmt: skip
    spec = {"x": [1, 2], "s": [0, 1, 2]}
    df = memo.to_dataframe({}, spec)
    assert len(df) == 6  # one row per point: groupby().mean() sees the failure
    assert list(df.columns) == ["x", "s", "v", "error", "error_"]
    failed = df[df["error_"].notna()]
    assert failed[["x", "s"]].values.tolist() == [[2, 1]]
    assert failed["error_"].tolist() == ["ValueError: bad seed"]
    assert failed[["v", "error"]].isna().all(axis=None)
    assert df["v"].dropna().tolist() == [10, 11, 12, 20, 22]
    ds = memo.to_xarray({}, spec)
    assert ds["error_"].sel(x=2, s=1).item() == "ValueError: bad seed"
    assert ds["error_"].isnull().sum().item() == 5
    assert np.isnan(ds["v"].sel(x=2, s=1).item())


def test_a_frame_without_failures_has_no_error_column(tmp_path: Path) -> None:
    memo = SwarmMemo(tmp_path / "cache", {"x": 2}, 2, exec_fn=doubled, verbose=0)
    assert list(memo.to_dataframe({}, {"x": [1, 2, 3]}).columns) == ["x", "value"]
