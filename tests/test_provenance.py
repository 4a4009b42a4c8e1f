"""Timings and provenance stored with every chunk, runtime estimates, and `info`."""

from __future__ import annotations

import os
import platform
import socket

from click.testing import CliRunner

import swarm_memo
from helpers import CountingExec, chunk_files
from swarm_memo import SwarmMemo
from swarm_memo.cache.codec import read_meta
from swarm_memo.cli import cli

SPEC = {"x": list(range(8))}


def metas(root):
    return [read_meta(p.read_bytes())[1] for p in chunk_files(root)]


def test_every_chunk_records_compute_time_and_where_it_was_computed(tmp_path):
    counting = CountingExec(tmp_path / "calls.log", sleep=0.005)
    SwarmMemo(tmp_path / "c", {"x": 4}, 2, exec_fn=counting, max_workers=1, verbose=0).run({}, SPEC)
    for meta in metas(tmp_path / "c"):
        info = meta.info
        assert info["computed_points"] == 4
        assert info["compute_seconds"] >= 4 * 0.005
        assert info["host"] == socket.gethostname()
        assert info["pid"] == os.getpid()
        assert info["swarm_memo"] == swarm_memo.__version__
        assert info["python"] == platform.python_version()
        assert info["computed_at"].endswith("+00:00")


def test_status_estimates_the_missing_compute_time_from_stored_timings(tmp_path):
    counting = CountingExec(tmp_path / "calls.log", sleep=0.002)
    memo = SwarmMemo(tmp_path / "c", {"x": 4}, 2, exec_fn=counting, max_workers=1, verbose=0)
    assert memo.status({}, SPEC).estimated_seconds is None  # nothing stored yet
    memo.run({}, {"x": SPEC["x"][:4]})
    rate = sum(m.info["compute_seconds"] for m in metas(tmp_path / "c")) / 4
    status = memo.status({}, SPEC)
    assert status.missing_points == 4
    assert abs(status.estimated_seconds - 4 * rate) < 1e-9
    memo.run({}, SPEC)
    assert memo.status({}, SPEC).estimated_seconds == 0.0  # nothing missing


def test_chunks_written_without_timings_still_load(tmp_path, monkeypatch):
    from swarm_memo.run import records as _records

    monkeypatch.setattr(_records, "provenance", lambda job, computed: {})
    memo = SwarmMemo(tmp_path / "c", {"x": 4}, 2, exec_fn=CountingExec(tmp_path / "l"),
                     max_workers=1, verbose=0)  # fmt: skip
    memo.run({}, {"x": SPEC["x"][:4]})
    assert memo.load({}, {"x": SPEC["x"][:4]}, strict=True)[1].cached_points == 4
    assert memo.status({}, SPEC).estimated_seconds is None


def test_info_shows_total_compute_time_and_hosts(tmp_path):
    counting = CountingExec(tmp_path / "calls.log", sleep=0.005)
    SwarmMemo(tmp_path / "c", {"x": 4}, 2, exec_fn=counting, max_workers=1, verbose=0).run({}, SPEC)
    (set_dir,) = (p for p in (tmp_path / "c").iterdir() if p.is_dir())
    result = CliRunner().invoke(cli, ["info", str(tmp_path / "c"), set_dir.name])
    assert result.exit_code == 0, result.output
    assert f"{socket.gethostname()} (2 files)" in result.output
    line = next(x for x in result.output.splitlines() if x.startswith("compute time"))
    assert float(line.split()[-1].rstrip("s")) >= 8 * 0.005
