"""Caches behind fsspec URLs: memory:// and a real S3 API (moto's server on loopback)."""

from __future__ import annotations

import json
import uuid

import pytest

from helpers import CountingExec, expected_output
from swarm_memo import CacheWarning, SwarmMemo

fsspec = pytest.importorskip("fsspec")

SPEC = {"x": list(range(10)), "y": ["a", "b"]}


def check_sweep(url, counting, **options):
    memo = SwarmMemo(
        url, {"x": 4, "y": 1}, 3, exec_fn=counting, max_workers=1, verbose=0, **options
    )
    output, diag = memo.run({"alpha": 2}, SPEC)
    assert sorted(map(repr, output)) == sorted(
        repr(expected_output({"alpha": 2}, (x, y))) for x in range(10) for y in "ab"
    )
    assert diag.stream_flushes == 6
    again, diag = memo.run({"alpha": 2}, SPEC)
    assert again == output
    assert diag.cached_chunks == 6
    assert counting.count() == 20
    # point-level reuse works remotely too: rebinned, nothing executes
    rebinned = SwarmMemo(
        url, {"x": 10, "y": 2}, 3, exec_fn=counting, max_workers=1, verbose=0, **options
    )
    _, diag = rebinned.run({"alpha": 2}, {"x": list(range(11)), "y": ["a", "b"]})
    assert diag.executed_points == 2
    assert diag.reused_points == 20
    assert counting.count() == 22
    return memo


def test_memory_url_cache_runs_reuses_and_streams(tmp_path):
    url = f"memory://swarm-memo-{uuid.uuid4().hex}"
    memo = check_sweep(url, CountingExec(tmp_path / "calls.log"))
    fs = fsspec.filesystem("memory")
    chunk_files = [p for p in fs.find(url.split("://")[1]) if p.endswith(".chunk")]
    # The first grid, then the rebinned request's one new chunk (stored points are read
    # where they are, never copied).
    assert len(chunk_files) == 6 + 1
    assert memo.status({"alpha": 2}, SPEC).complete


def test_damaged_remote_chunk_is_quarantined_and_recomputed(tmp_path):
    url = f"memory://swarm-memo-{uuid.uuid4().hex}"
    counting = CountingExec(tmp_path / "calls.log")
    memo = SwarmMemo(url, {"x": 5}, 5, exec_fn=counting, max_workers=1, verbose=0)
    memo.run({}, {"x": list(range(10))})
    fs = fsspec.filesystem("memory")
    victim = sorted(p for p in fs.find(url.split("://")[1]) if p.endswith(".chunk"))[0]
    fs.pipe_file(victim, b"garbage")
    counting.reset()
    with pytest.warns(CacheWarning, match="quarantine"):
        output, _ = memo.run({}, {"x": list(range(10))})
    assert output == [expected_output({}, (x,)) for x in range(10)]
    assert counting.count() == 5


@pytest.fixture(scope="module")
def s3_endpoint():
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_s3_cache_on_a_local_s3_server(tmp_path, s3_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    options = {"endpoint_url": s3_endpoint, "key": "testing", "secret": "testing"}
    fs = fsspec.filesystem("s3", **options)
    bucket = f"sweeps-{uuid.uuid4().hex[:8]}"
    fs.mkdir(bucket)
    url = f"s3://{bucket}/cache"
    check_sweep(url, CountingExec(tmp_path / "calls.log"), storage_options=options)
    assert any(p.endswith(".chunk") for p in fs.find(bucket))
    # the CLI reads the same cache through the same store
    (row,) = cli_json("ls", url, "--storage-options", json.dumps(options))
    assert row["points"] == 22  # the grid, then its rebin with one more x: distinct points
    assert row["params"] == {"alpha": 2}
    report = cli_json("verify", url, "--storage-options", json.dumps(options))
    assert report["ok"] is True
    assert report["chunks_checked"] == row["chunks"] == 7


def cli_json(*args):
    import json

    from click.testing import CliRunner

    from swarm_memo.cli import cli

    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cli_lists_verifies_and_cleans_a_memory_cache(tmp_path):
    url = f"memory://swarm-memo-{uuid.uuid4().hex}"
    memo = SwarmMemo(url, {"x": 5}, 5, exec_fn=CountingExec(tmp_path / "c"), verbose=0)
    memo.run({"alpha": 1}, {"x": list(range(10))})
    (row,) = cli_json("ls", url)
    assert (row["chunks"], row["points"], row["params"]) == (2, 10, {"alpha": 1})
    assert row["path"] == f"{url}/{row['digest']}"
    assert cli_json("info", url, row["digest"][:8])["points"] == 10
    assert cli_json("verify", url)["chunks_ok"] == 2
    out = cli_json("gc", url, "--params", row["digest"])
    assert out["removed_files"] >= 3
    assert cli_json("ls", url) == []
