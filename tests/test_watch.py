"""Runs you can watch (issue 21): honest progress counts, frames that keep failures, quiet
``verbose=0``, ``swarm-memo progress`` / ``show`` and papercuts."""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from swarm_memo import ExecError, SwarmMemo
from swarm_memo.cli import cli
from swarm_memo.run import requests_log as _requests_log


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
            other = SwarmMemo(
                self.root, {"x": 20}, 20, exec_fn=doubled, executor="serial", verbose=0
            )
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


# --------------------------------------------------------------------------- items 1, 3

XS, SS = list(range(10)), list(range(4))
SWEEP = {"x": XS, "s": SS}


def fails_at_6_0(params: dict[str, Any], point: tuple[Any, ...]) -> Any:
    if point == (6, 0):
        raise ValueError("diverged")
    return point[0] + point[1]


def interrupted_sweep(root: Any) -> SwarmMemo:
    """40 points in chunks of 8; the run stops at (6, 0): 24 stored, 1 failed, 15 missing."""
    memo = SwarmMemo(root, {"x": 2, "s": 4}, 8, exec_fn=fails_at_6_0, executor="serial",
                     verbose=0)  # fmt: skip
    with pytest.raises(ExecError):
        memo.run({"run": 1}, SWEEP)
    return memo


def set_prefix(root: Path) -> str:
    (folder,) = [p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return folder[:8]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def test_progress_reports_stored_failed_missing_rate_and_writers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "cache"
    interrupted_sweep(root)
    before = snapshot(root)
    monkeypatch.setattr(pickle, "loads", _no_unpickling)
    monkeypatch.setattr(pickle, "load", _no_unpickling)
    result = CliRunner().invoke(cli, ["progress", str(root)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert re.fullmatch(r"[0-9a-f]{12} request [0-9a-f]{16}: x: 10 values \(0 \.\. 9\); "
                        r"s: 4 values \(0 \.\. 3\)", lines[0])  # fmt: skip
    assert re.fullmatch(
        r"  24/40 points stored \(60%\), 1 failed, 15 missing; [0-9.]+ points/min over the "
        r"last 10 min, ETA \d+:\d\d:\d\d \(.*\)",
        lines[1],
    )
    assert lines[2].startswith("  runs: 1 started (last ")
    assert lines[2].endswith(", 0 without an end record")
    assert lines[3] == (
        f"  writing in the last 5 min: {socket.gethostname()} pid {os.getpid()} (24 points)"
    )
    assert lines[4] == "  failed: (6, 0): ValueError: diverged"
    assert snapshot(root) == before  # reads never write

    data = json.loads(CliRunner().invoke(cli, ["progress", str(root), "--json"]).output)
    assert [(d["stored_points"], d["failed_points"], d["missing_points"]) for d in data] == [
        (24, 1, 15)
    ]
    assert data[0]["writers"] == {f"{socket.gethostname()} pid {os.getpid()}": 24}
    assert data[0]["points_per_minute"] > 0


def _no_unpickling(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("swarm-memo progress/show must never unpickle")


def test_progress_groups_the_runs_of_one_sweep_and_counts_what_later_runs_stored(
    tmp_path: Path,
) -> None:
    root = tmp_path / "cache"
    memo = interrupted_sweep(root)
    other = SwarmMemo(root, {"x": 2, "s": 4}, 8, exec_fn=doubled, verbose=0,
                      on_code_change="ignore", executor="serial")  # fmt: skip
    other.run({"run": 1}, SWEEP)
    memo.run({"run": 1}, {"x": [0, 1], "s": SS})  # all stored: no request recorded
    result = CliRunner().invoke(cli, ["progress", str(root), set_prefix(root), "--json"])
    (sweep,) = json.loads(result.output)
    # the second run was short and clean: not recorded, but what it stored counts
    assert (sweep["runs"], sweep["stored_points"], sweep["failed_points"]) == (1, 40, 0)
    assert sweep["eta_seconds"] == 0.0


def requests_files(root: Path) -> list[str]:
    return sorted(p.name.split(".", 1)[1] for p in root.glob("*/requests/*.json"))


class WaitsForItsRequestRecord:
    """``exec_fn`` that returns once the run's request is recorded (a long run)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, params: dict[str, Any], point: tuple[Any, ...]) -> Any:
        for _ in range(1000):
            if requests_files(self.root):
                break
            time.sleep(0.01)
        return point[0]


def test_a_long_run_records_its_request_and_a_short_clean_one_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "cache"
    short = SwarmMemo(root, {"x": 2}, 2, exec_fn=doubled, executor="serial", verbose=0)
    short.run({}, {"x": [1, 2, 3]})
    assert requests_files(root) == []
    monkeypatch.setattr(_requests_log, "RECORD_AFTER", 0.0)
    memo = SwarmMemo(root, {"x": 2}, 2, exec_fn=WaitsForItsRequestRecord(root),
                     executor="serial", verbose=0, on_code_change="ignore")  # fmt: skip
    memo.run({}, {"x": [1, 2, 3, 4]})
    assert requests_files(root) == ["end.json", "start.json"]
    (sweep,) = json.loads(CliRunner().invoke(cli, ["progress", str(root), "--json"]).output)
    assert (sweep["runs"], sweep["runs_not_ended"], sweep["stored_points"]) == (1, 0, 4)


def test_show_without_a_recorded_request_draws_the_stored_values(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    memo = SwarmMemo(root, {"x": 2, "s": 2}, 2, exec_fn=doubled, executor="serial", verbose=0)
    memo.run({}, {"x": [1, 2], "s": [0, 1]})
    memo.run({}, {"x": [3], "s": [0]})
    result = CliRunner().invoke(cli, ["show", str(root), set_prefix(root), "--json"])
    picture = json.loads(result.output)
    assert (picture["columns"], picture["rows"]) == (["1", "2", "3"], ["0", "1"])
    assert picture["cells"] == ["###", "##."]


def test_progress_watch_redraws_as_plain_reports_when_not_on_a_terminal(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    interrupted_sweep(root)
    args = ["progress", str(root), "--watch", "--interval", "0", "--count", "2"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    reports = result.output.split("\n\n")
    assert len(reports) == 2
    assert all("24/40 points stored" in report for report in reports)


def test_progress_and_show_work_on_an_fsspec_url(tmp_path: Path) -> None:
    pytest.importorskip("fsspec")
    url = f"memory://watch-{os.getpid()}-{tmp_path.name}"
    interrupted_sweep(url)
    result = CliRunner().invoke(cli, ["progress", url, "--storage-options", "{}", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["stored_points"] == 24
    from swarm_memo.cache.listing import open_cache, set_ids

    (set_id,) = set_ids(open_cache(url))
    shown = CliRunner().invoke(cli, ["show", url, set_id[:8], "--json"])
    assert json.loads(shown.output)["cells"] == ["######X..."] + ["######...."] * 3


def test_show_draws_stored_missing_and_failed_cells_with_the_axis_values(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    interrupted_sweep(root)
    result = CliRunner().invoke(cli, ["show", str(root), set_prefix(root), "--axes", "x,s"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1] == "24/40 stored, 1 failed, 15 missing"
    assert lines[2:] == [
        "  | x ->",
        "s | 0 1 2 3 4 5 6 7 8 9",
        "0 | # # # # # # X . . .",
        "1 | # # # # # # . . . .",
        "2 | # # # # # # . . . .",
        "3 | # # # # # # . . . .",
        "# stored  . missing  X failed  1-9: tenths stored (other axes aggregated)",
    ]
    one_axis = CliRunner().invoke(cli, ["show", str(root), set_prefix(root), "--axes", "s",
                                        "--json"])  # fmt: skip
    assert json.loads(one_axis.output)["cells"] == ["X666"]  # s = 0 holds the failure
    bad = CliRunner().invoke(cli, ["show", str(root), set_prefix(root), "--axes", "x,t"])
    assert bad.exit_code == 2
    assert "unknown axis 't'" in bad.output


def test_the_picture_finds_the_stored_points_of_partial_chunks(tmp_path: Path) -> None:
    memo = SwarmMemo(tmp_path / "cache", {"x": 2, "s": 2}, 4, exec_fn=fails_on_seed_1,
                     on_error="skip", executor="serial", verbose=0)  # fmt: skip
    spec = {"x": [1, 2, 3, 4], "s": [0, 1]}
    memo.run({}, spec)  # chunk (x 1-2, s 0-1) is stored as a partial chunk of 3 points
    picture = memo.status({}, spec).picture(["x", "s"])
    assert picture.cells() == ["####", "#X##"]
    assert (picture.stored, picture.failed, picture.total) == (7, 1, 8)


def test_status_picture_aggregates_other_axes_as_tenths_and_shows_in_html(
    tmp_path: Path,
) -> None:
    memo = SwarmMemo(tmp_path / "cache", {"x": 5, "s": 4}, 5, exec_fn=doubled, verbose=0)
    memo.run({}, {"x": XS, "s": [0, 1]})
    status = memo.status({}, SWEEP)
    assert status.picture(["x"]).cells() == ["5555555555"]
    assert status.picture(["s", "x"]).cells() == ["##.."] * 10
    page = status._repr_html_()
    assert "20/40 points stored" in page
    assert page.count("<td ") == 40
    assert page.count('title="1 stored, 0 missing, 0 failed"') == 20


def test_status_plot_draws_the_fraction_stored(tmp_path: Path) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    memo = SwarmMemo(tmp_path / "cache", {"x": 5, "s": 4}, 5, exec_fn=doubled, verbose=0)
    memo.run({}, {"x": XS, "s": [0, 1]})
    ax = memo.status({}, SWEEP).plot(axes=("x", "s"))
    image = np.asarray(ax.images[0].get_array())
    assert image.shape == (4, 10)
    assert image.tolist() == [[1.0] * 10, [1.0] * 10, [0.0] * 10, [0.0] * 10]
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(x) for x in XS]
    import matplotlib.pyplot as plt

    plt.close("all")


# --------------------------------------------------------------------------- item 9


def test_memo_chunk_spec_accepts_numpy_integers(tmp_path: Path) -> None:
    memo = SwarmMemo(tmp_path / "cache", {"x": np.int64(4), "y": {"size": np.int32(2)}}, 3,
                     exec_fn=doubled, verbose=0)  # fmt: skip
    output, diag = memo.run({}, {"x": list(range(8)), "y": [0, 1]})
    assert diag.total_chunks == 2
    assert output == [x * 2 for x in range(8) for _ in range(2)]
    with pytest.raises(TypeError, match=r"memo_chunk_spec\['x'\] must be an int >= 1"):
        SwarmMemo(tmp_path / "cache", {"x": np.float64(4.0)}, 3, exec_fn=doubled)


def test_ls_shows_the_params_keys_that_tell_wrapped_sets_apart(tmp_path: Path) -> None:
    memo = SwarmMemo(tmp_path / "cache", {"x": 2}, 2, verbose=0, executor="serial")

    @memo.run_wrap()
    def simulate_a_rather_long_named_function(params: Any, point: Any, resolution: int = 10) -> Any:
        return point[0] * resolution

    for alpha in (0.1, 0.2):
        simulate_a_rather_long_named_function(
            {"alpha": alpha, "model": "m1"}, split_spec={"x": [1]}
        )
    result = CliRunner().invoke(cli, ["ls", str(tmp_path / "cache")])
    rows = result.output.splitlines()[1:3]
    assert sorted(row.split("v1", 1)[1].strip() for row in rows) == [
        "alpha=0.1; same: __swarm_memo_function__, model, resolution",
        "alpha=0.2; same: __swarm_memo_function__, model, resolution",
    ]


def echo_free(params: dict[str, Any], point: tuple[Any, ...]) -> Any:
    return {"sum": point[0] + point[1], "x": point[0] * 10}


def test_records_frame_keeps_the_axis_columns(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    from swarm_memo.collate import concat_frames, records_frame

    memo = SwarmMemo(tmp_path / "cache", {"x": 2, "y": 1}, 3, exec_fn=echo_free,
                     collate_fn=records_frame, merge_fn=concat_frames, verbose=0)  # fmt: skip
    frame, _ = memo.run({}, {"x": [1, 2, 3], "y": [5, 6]})
    assert list(frame.columns) == ["x", "y", "sum", "x_output"]
    assert frame[["x", "y", "sum"]].values.tolist() == [
        [1, 5, 6], [2, 5, 7], [1, 6, 7], [2, 6, 8], [3, 5, 8], [3, 6, 9]
    ]  # fmt: skip
    assert frame["x_output"].tolist() == [10 * x for x in frame["x"]]
    loaded, _ = memo.load({}, {"x": [1, 2, 3, 4], "y": [5]})
    assert loaded[["x", "y"]].values.tolist() == [[1, 5], [2, 5], [3, 5]]


def test_status_estimates_zero_seconds_when_everything_is_stored(tmp_path: Path) -> None:
    memo = SwarmMemo(tmp_path / "cache", {"x": 2}, 2, exec_fn=doubled, verbose=0)
    memo.run({}, {"x": [1, 2, 3]})
    assert memo.status({}, {"x": [1, 2, 3]}).estimated_seconds == 0.0


def test_watch_example_prints_the_report_and_the_picture(tmp_path: Path) -> None:
    script = Path(__file__).parents[1] / "examples" / "watch.py"
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            check=True, timeout=120, env=env)  # fmt: skip
    lines = result.stdout.splitlines()
    assert "  15/16 points stored (93%), 1 failed, 0 missing" in lines
    assert "  failed: (0.8, 2): FloatingPointError: diverged" in lines
    assert "2    |   #   #   #   X   ." in lines  # the whole grid: gain 1.0 is missing
    assert list(tmp_path.iterdir()) == []


DYNAMIC_SCRIPT = """
import sys
from swarm_memo import ExecError, SwarmMemo

def helper(x):
    if x == 2:
        raise ValueError("boom")  # the failing line
    return x

def simulate(params, point):
    return helper(point[0])

memo = SwarmMemo(sys.argv[1], {"x": 2}, 2, exec_fn=simulate, verbose=0, max_workers=2)
try:
    memo.run({}, {"x": [1, 2, 3]})
except ExecError as error:
    print(error.worker_traceback)
"""


def test_worker_tracebacks_of_script_functions_show_the_real_file_and_line(
    tmp_path: Path,
) -> None:
    script = tmp_path / "sweep.py"
    script.write_text(DYNAMIC_SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "cache")],
                            capture_output=True, text=True, check=True, timeout=120)  # fmt: skip
    trace = result.stdout
    assert "<dynamic-code>" not in trace
    assert f'File "{script}", line 11, in simulate' in trace
    assert f'File "{script}", line 7, in helper' in trace
    assert 'raise ValueError("boom")  # the failing line' in trace


def test_a_long_axis_is_drawn_in_groups_of_consecutive_values(tmp_path: Path) -> None:
    memo = SwarmMemo(tmp_path / "cache", {"x": 10, "s": 2}, 20, exec_fn=doubled,
                     executor="serial", verbose=0)  # fmt: skip
    memo.run({}, {"x": list(range(60)), "s": [0]})
    picture = memo.status({}, {"x": list(range(100)), "s": [0, 1]}).picture(("x", "s"))
    assert len(picture.columns) == 20  # 100 values, 5 per column
    assert picture.cells() == ["#" * 12 + "." * 8, "." * 20]
    lines = picture.lines()
    assert lines[0].endswith("x -> (5 values per column, the first shown)")
    assert lines[1].split("|")[1].split()[:3] == ["0", "5", "10"]


def test_a_status_still_pickles_with_its_counts(tmp_path: Path) -> None:
    memo = SwarmMemo(tmp_path / "cache", {"x": 2}, 2, exec_fn=doubled, verbose=0)
    memo.run({}, {"x": [1, 2]})
    status = memo.status({}, {"x": [1, 2, 3]})
    copy = pickle.loads(pickle.dumps(status))
    assert (copy.cached_points, copy.missing_points) == (2, 1)
    assert status.picture(("x",)).cells() == ["##."]
