"""The ``swarm-memo`` command-line tool: ls, info, verify, gc, errors, entry point."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from helpers import chunk_files
from swarm_memo import CacheWarning, SwarmMemo
from swarm_memo.cache.listing import list_sets, open_cache, resolve_set
from swarm_memo.cli import cli
from swarm_memo.core.textfmt import parse_duration, to_jsonable
from swarm_memo.errors import InspectError
from swarm_memo.inspection.maintenance import plan_gc, verify_cache

DAY = 86400.0
TEMP_NAME = ".0123abcd.chunk.0123456789ab.4242.tmp"


def product_fn(params: dict[str, Any], point: tuple[int, int]) -> int:
    return point[0] * point[1] + params.get("alpha", 0)


def upper_triangle(params: dict[str, Any], split_spec: dict[str, list[int]]) -> list[Any]:
    return [(x, y) for x in split_spec["x"] for y in split_spec["y"] if x <= y]


class Cache:
    """A cache with three params sets built by the real library."""

    def __init__(self, root: Path) -> None:
        self.root = root
        memo = SwarmMemo(root, {"x": 2, "y": 3}, 4, exec_fn=product_fn, max_workers=1, verbose=0)
        # 'a': x bins [1, 2], [3]; y bins [1, 2, 3], [4] -> 4 chunks, 12 points
        memo.run({"alpha": 1}, {"x": [1, 2, 3], "y": [1, 2, 3, 4]})
        # 'b': params a JSON encoder would choke on; 1 chunk, 2 points
        self.b_params = {
            "alpha": 2,
            "tags": ("t1", "t2"),
            "path": Path("/data/in.csv"),
            "seeds": {3, 1, 2},
            "scale": np.float64(0.5),
            "grid": np.arange(3),
            "eps": float("nan"),
        }
        memo.run(self.b_params, {"x": [1, 2], "y": [5]})
        # 'c': a custom enumerator (index records hold point digests): x<=y of 3x3 -> 6 points
        enum_memo = SwarmMemo(
            root,
            {"x": 3, "y": 3},
            4,
            enumerate_points=upper_triangle,
            exec_fn=product_fn,
            max_workers=1,
            verbose=0,
        )
        enum_memo.run({"alpha": 3}, {"x": [1, 2, 3], "y": [1, 2, 3]})
        ids: dict[int, str] = {}
        for d in root.iterdir():
            if d.is_dir() and not d.name.startswith("."):
                payload = json.loads((d / "params.json").read_bytes())
                ids[payload["params"]["alpha"]] = d.name
        assert len(ids) == 3
        self.a, self.b, self.c = ids[1], ids[2], ids[3]

    def chunks(self, set_id: str) -> list[Path]:
        return sorted((self.root / set_id / "chunks").glob("*.chunk"))

    def tree_bytes(self, set_id: str) -> int:
        return sum(p.stat().st_size for p in (self.root / set_id).rglob("*") if p.is_file())

    def age(self, set_id: str, seconds: float) -> None:
        """Make every file of a params set ``seconds`` old."""
        stamp = time.time() - seconds
        for p in (self.root / set_id).rglob("*"):
            os.utime(p, (stamp, stamp))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cache:
    return Cache(tmp_path / "cache")


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def invoke_json(*args: Any, exit_code: int = 0) -> Any:
    result = invoke(*args, "--json")
    assert result.exit_code == exit_code, result.output
    return json.loads(result.stdout)


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# --------------------------------------------------------------------------- ls


def test_ls_json_counts_and_fields(cache: Cache) -> None:
    rows = {row["digest"]: row for row in invoke_json("ls", cache.root)}
    assert set(rows) == {cache.a, cache.b, cache.c}
    a, b, c = rows[cache.a], rows[cache.b], rows[cache.c]
    assert (a["chunks"], a["points"]) == (4, 12)
    assert (b["chunks"], b["points"]) == (1, 2)
    assert (c["chunks"], c["points"]) == (1, 6)
    assert a["params"] == {"alpha": 1}
    assert a["cache_version"] == "v1"
    assert a["bytes"] == cache.tree_bytes(cache.a)
    newest = max(p.stat().st_mtime for p in cache.chunks(cache.a))
    assert dt.datetime.fromisoformat(a["last_written"]).timestamp() == pytest.approx(newest, abs=1)
    # params come from params.json: values JSON cannot hold are shown by their repr
    assert b["params"] == {
        "alpha": 2,
        "tags": ["t1", "t2"],
        "path": repr(Path("/data/in.csv")),
        "seeds": "{1, 2, 3}",
        "scale": 0.5,
        "grid": "array([0, 1, 2])",
        "eps": "nan",
    }
    assert all(row["points_exact"] for row in rows.values())


def test_ls_text(cache: Cache) -> None:
    result = invoke("ls", cache.root)
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines()}
    row_a = rows[cache.a[:12]].split()
    assert row_a[1:3] == ["4", "12"]
    assert "{'alpha': 1}" in rows[cache.a[:12]]
    assert rows[cache.c[:12]].split()[1:3] == ["1", "6"]
    assert "3 params set(s)" in result.stdout
    long_row = rows[cache.b[:12]]
    assert "..." in long_row
    assert len(long_row.split("v1", 1)[1].strip()) <= 60


def test_ls_points_come_from_chunk_files_not_the_index(cache: Cache) -> None:
    for idx in (cache.root / cache.a / "index").iterdir():
        idx.unlink()
    for idx in (cache.root / cache.c / "index").iterdir():
        idx.write_bytes(b"garbage")
    rows = {row["digest"]: row for row in invoke_json("ls", cache.root)}
    assert rows[cache.a]["points"] == 12
    assert rows[cache.c]["points"] == 6


def test_ls_and_info_count_points_held_by_several_chunk_files_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = {"x": [1, 2, 3, 4], "y": [1, 2]}
    for bins, root in ((3, tmp_path / "other"), (2, tmp_path)):
        memo = SwarmMemo(root, {"x": bins, "y": 2}, 4, exec_fn=product_fn, max_workers=1, verbose=0)
        memo.run({}, spec)
    # Copies of every point under another binning (runs never write copies themselves).
    (set_dir,) = (p for p in tmp_path.iterdir() if (p / "chunks").is_dir())
    for copy in chunk_files(tmp_path / "other"):
        shutil.copy(copy, set_dir / "chunks" / copy.name)
    shutil.rmtree(tmp_path / "other")
    memo.run({}, {"x": [0, 1, 2, 3, 4], "y": [1, 2]})  # an insert into axis x
    (row,) = invoke_json("ls", tmp_path)
    assert row["chunks"] > 3
    assert row["points"] == 10
    assert row["points_exact"] is True
    info = invoke_json("info", tmp_path, row["digest"])
    assert info["points"] == 10
    assert info["axes"]["x"] == {"count": 5, "values": [0, 1, 2, 3, 4]}


def test_ls_empty_and_sorted_newest_first(tmp_path: Path, cache: Cache) -> None:
    (tmp_path / "empty").mkdir()
    assert invoke_json("ls", tmp_path / "empty") == []
    assert "no params sets" in invoke("ls", tmp_path / "empty").stdout
    cache.age(cache.a, 3 * DAY)
    cache.age(cache.b, 1 * DAY)
    cache.age(cache.c, 2 * DAY)
    assert [r["digest"] for r in invoke_json("ls", cache.root)] == [cache.b, cache.c, cache.a]


def test_ls_unreadable_or_missing_params_file(cache: Cache) -> None:
    (cache.root / cache.a / "params.json").write_bytes(b"not json")
    (cache.root / cache.b / "params.json").unlink()
    rows = {row["digest"]: row for row in invoke_json("ls", cache.root)}
    assert "params.json is not a params description" in rows[cache.a]["params_error"]
    assert rows[cache.a]["points"] == 12
    assert rows[cache.b]["params_error"] == "params.json is missing"
    assert rows[cache.b]["points"] == 2
    assert "not a params description" in invoke("ls", cache.root).stdout


# --------------------------------------------------------------------------- info


def test_info_text_by_prefix(cache: Cache) -> None:
    result = invoke("info", cache.root, cache.a[:6])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert cache.a in out
    assert "{'alpha': 1}" in out
    assert "x  3 value(s): 1, 2, 3" in out
    assert "y  4 value(s): 1, 2, 3, 4" in out
    assert "points:        12" in out


def test_info_json(cache: Cache) -> None:
    info = invoke_json("info", cache.root, cache.b)
    assert info["digest"] == cache.b
    assert info["points"] == 2
    assert info["axes"] == {"x": {"count": 2, "values": [1, 2]}, "y": {"count": 1, "values": [5]}}
    assert info["params"]["tags"] == ["t1", "t2"]
    info_c = invoke_json("info", cache.root, cache.c[:12])
    assert info_c["points"] == 6
    assert info_c["axes"]["x"] == {"count": 3, "values": [1, 2, 3]}


def test_info_abbreviates_long_axes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    memo = SwarmMemo(tmp_path, {"x": 50, "y": 1}, 64, exec_fn=product_fn, max_workers=1, verbose=0)
    memo.run({}, {"x": list(range(100)), "y": [7]})
    (set_id,) = [d.name for d in tmp_path.iterdir() if d.is_dir()]
    line = next(
        ln for ln in invoke("info", tmp_path, set_id).stdout.splitlines() if ln.startswith("  x")
    )
    assert line.split(":", 1)[1].strip() == "0, 1, 2, 3, 4, 5, 6, 7, ..., 97, 98, 99"
    assert "100 value(s)" in line
    assert invoke_json("info", tmp_path, set_id)["axes"]["x"]["values"] == list(range(100))


# --------------------------------------------------------------------------- verify


def test_verify_clean_cache(cache: Cache) -> None:
    result = invoke("verify", cache.root)
    assert result.exit_code == 0, result.output
    assert "checked 6 chunk file(s) in 3 params set(s): OK" in result.stdout
    report = invoke_json("verify", cache.root)
    assert report["ok"] is True
    assert report["problems"] == []
    assert report["chunks_checked"] == 6


def test_verify_reports_each_damaged_file(cache: Cache) -> None:
    flipped, truncated, garbage, _ok = cache.chunks(cache.a)
    data = bytearray(flipped.read_bytes())
    data[-5] ^= 0xFF
    flipped.write_bytes(bytes(data))
    truncated.write_bytes(truncated.read_bytes()[:40])
    garbage.write_bytes(b"garbage, not a chunk file at all")
    foreign = cache.root / cache.b / "chunks" / "foreign.chunk"
    foreign.write_bytes(cache.chunks(cache.c)[0].read_bytes())

    result = invoke("verify", cache.root)
    assert result.exit_code == 1, result.output
    bad_lines = [ln for ln in result.stdout.splitlines() if ln.startswith("BAD ")]
    assert len(bad_lines) == 4
    by_path = {ln[4:].split(": ", 1)[0]: ln for ln in bad_lines}
    assert "checksum mismatch" in by_path[str(flipped)]
    assert "truncated" in by_path[str(truncated)]
    assert "bad magic" in by_path[str(garbage)]
    assert f"belongs to params set '{cache.c}'" in by_path[str(foreign)]
    assert "4 problem(s) found" in result.stdout

    report = invoke_json("verify", cache.root, exit_code=1)
    assert report["ok"] is False
    assert {p["path"] for p in report["problems"]} == {
        str(flipped),
        str(truncated),
        str(garbage),
        str(foreign),
    }
    assert report["chunks_checked"] == 7
    assert report["chunks_ok"] == 3


def test_verify_newer_format_is_a_note_and_bad_params_file_a_problem(cache: Cache) -> None:
    chunk = cache.chunks(cache.a)[0]
    data = chunk.read_bytes()
    chunk.write_bytes(data[:8] + (7).to_bytes(2, "big") + data[10:])
    (cache.root / cache.b / "params.json").write_bytes(b"\x80\x05junk")
    report = verify_cache(open_cache(str(cache.root)))
    notes = {p.path: p.reason for p in report.notes}
    assert "chunk format 7" in notes[str(chunk)]
    (problem,) = report.problems
    assert problem.path == str(cache.root / cache.b / "params.json")
    assert "not a params description" in problem.reason
    assert report.chunks_ok == 6  # b's chunk is still checked against its folder name


def test_verify_mentions_quarantine_and_temp_files(cache: Cache) -> None:
    chunk = cache.chunks(cache.a)[0]
    chunk.write_bytes(b"damaged")
    memo = SwarmMemo(cache.root, {"x": 2, "y": 3}, 4, exec_fn=product_fn, max_workers=1, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)
        memo.run({"alpha": 1}, {"x": [1, 2, 3], "y": [1, 2, 3, 4]})  # quarantines, recomputes
    temp = cache.root / cache.a / "chunks" / TEMP_NAME
    temp.write_bytes(b"half written")

    result = invoke("verify", cache.root)
    assert result.exit_code == 0, result.output
    assert "1 quarantined file(s)" in result.stdout
    assert str(temp) in result.stdout
    report = invoke_json("verify", cache.root)
    assert report["ok"] is True
    assert len(report["quarantined"]) == 1
    assert report["quarantined"][0]["path"].startswith(str(cache.root / ".quarantine" / cache.a))
    assert [f["path"] for f in report["temp_files"]] == [str(temp)]


# --------------------------------------------------------------------------- gc


def test_gc_params_dry_run_then_real(cache: Cache) -> None:
    size = cache.tree_bytes(cache.a)
    files_before = sorted(cache.root.rglob("*"))
    dry = invoke("gc", cache.root, "--params", cache.a[:8], "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run: nothing removed" in dry.stdout
    assert f"would free {size} bytes" in dry.stdout
    assert f"would remove params set {cache.a[:12]}" in dry.stdout
    assert sorted(cache.root.rglob("*")) == files_before

    real = invoke("gc", cache.root, "--params", cache.a[:8])
    assert real.exit_code == 0, real.output
    assert f"{size} bytes freed" in real.stdout
    assert "removed 1 params set(s)" in real.stdout
    assert not (cache.root / cache.a).exists()
    assert {r["digest"] for r in invoke_json("ls", cache.root)} == {cache.b, cache.c}
    assert (cache.root / ".gitignore").exists()


def test_gc_json(cache: Cache) -> None:
    size = cache.tree_bytes(cache.b) + cache.tree_bytes(cache.c)
    out = invoke_json("gc", cache.root, "--params", cache.b, "--params", cache.c[:5])
    assert out["dry_run"] is False
    assert {s["digest"] for s in out["sets"]} == {cache.b, cache.c}
    assert out["bytes"] == out["removed_bytes"] == size
    assert out["errors"] == []
    assert [r["digest"] for r in invoke_json("ls", cache.root)] == [cache.a]


def test_gc_older_than(cache: Cache) -> None:
    cache.age(cache.a, 40 * DAY)
    cache.age(cache.b, 10 * DAY)
    result = invoke("gc", cache.root, "--older-than", "30d")
    assert result.exit_code == 0, result.output
    assert not (cache.root / cache.a).exists()
    assert (cache.root / cache.b).exists()
    assert (cache.root / cache.c).exists()
    result = invoke("gc", cache.root, "--older-than", "240h", "--dry-run")
    assert f"would remove params set {cache.b[:12]}" in result.stdout
    assert cache.c[:12] not in result.stdout
    # --params with --older-than: only the given sets that are that old
    store = open_cache(str(cache.root))
    assert plan_gc(store, params=[cache.c], older_than=DAY).sets == []
    assert [s.set_id for s in plan_gc(store, params=[cache.b], older_than=DAY).sets] == [cache.b]


def test_gc_without_selection_only_removes_stale_temp_files(cache: Cache) -> None:
    old = cache.root / cache.a / "chunks" / TEMP_NAME
    fresh = cache.root / cache.b / "index" / ".x.idx.abcdefabcdef.17.tmp"
    lookalike = cache.root / cache.a / "chunks" / ".notes.tmp"
    for p in (old, fresh, lookalike):
        p.write_bytes(b"12345")
    stamp = time.time() - 2 * 3600
    os.utime(old, (stamp, stamp))
    os.utime(lookalike, (stamp, stamp))
    cache.age(cache.c, 400 * DAY)

    result = invoke("gc", cache.root)
    assert result.exit_code == 0, result.output
    assert f"removing temp file {old}" in result.stdout
    assert "5 bytes freed" in result.stdout
    assert not old.exists()
    assert fresh.exists()
    assert lookalike.exists()
    assert all((cache.root / s).exists() for s in (cache.a, cache.b, cache.c))
    assert invoke("gc", cache.root).stdout.strip() == "nothing to remove"


def test_gc_quarantine_only_on_request(cache: Cache) -> None:
    q = cache.root / ".quarantine" / cache.a / "chunks" / "x.chunk.123"
    q.parent.mkdir(parents=True)
    q.write_bytes(b"0123456789")
    assert invoke("gc", cache.root).stdout.strip() == "nothing to remove"
    assert q.exists()
    dry = invoke("gc", cache.root, "--quarantine", "--dry-run")
    assert "would remove quarantine" in dry.stdout
    assert q.exists()
    real = invoke("gc", cache.root, "--quarantine")
    assert "10 bytes freed" in real.stdout
    assert not (cache.root / ".quarantine").exists()
    assert len(invoke_json("ls", cache.root)) == 3


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["info", "{root}", "ffffffffffffzz"], "no params set matches digest 'ffffffffffffzz'"),
        (["gc", "{root}", "--params", "0000000000000000zz"], "no params set matches"),
        (["gc", "{root}", "--older-than", "30"], "--older-than: bad duration '30'"),
        (["gc", "{root}", "--older-than", "3 weeks"], "--older-than"),
        (["ls", "{root}/missing"], "does not exist"),
        (["verify", "{root}/missing"], "does not exist"),
        (["info", "{root}", ""], "empty digest"),
        (["ls", "{root}", "--storage-options", "[1]"], "must be a JSON object"),
        (["verify", "{root}", "--storage-options", "{bad"], "--storage-options is not valid JSON"),
        (["gc", "{root}", "--storage-options", '{"anon": true}'], "only apply to a URL"),
    ],
)
def test_user_errors_are_one_line_exit_2(cache: Cache, args: list[str], fragment: str) -> None:
    result = invoke(*(a.replace("{root}", str(cache.root)) for a in args))
    assert_one_line_error(result, fragment)


def test_ambiguous_digest(tmp_path: Path) -> None:
    for suffix in ("0" * 28, "1" * 28):
        d = tmp_path / f"abcd{suffix}"
        d.mkdir()
        (d / "params.json").write_text(json.dumps({"params": {}, "cache_version": "v1"}))
    assert_one_line_error(invoke("info", tmp_path, "abc"), "ambiguous", "2 params sets")
    store = open_cache(str(tmp_path))
    with pytest.raises(InspectError, match="ambiguous"):
        resolve_set(store, "ABCD")
    assert resolve_set(store, "ABCD1") == "abcd" + "1" * 28


def test_cache_root_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    assert_one_line_error(invoke("ls", tmp_path / "f"), "not a directory")


@pytest.mark.parametrize("command", [[], ["ls"], ["info"], ["verify"], ["gc"]])
def test_help(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.stdout


# --------------------------------------------------------------------------- helpers


def test_parse_duration() -> None:
    assert parse_duration("30d") == 30 * DAY
    assert parse_duration("90m") == 5400.0
    assert parse_duration("1.5h") == 5400.0
    assert parse_duration("45s") == 45.0
    assert parse_duration(" 2D ") == 2 * DAY
    for bad in ("", "30", "d", "-1d", "1y", "1 d x"):
        with pytest.raises(InspectError):
            parse_duration(bad)


def test_to_jsonable_never_fails() -> None:
    class Weird:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    value = {
        1: (1, 2),
        "inf": float("-inf"),
        "frozen": frozenset({"b", "a"}),
        "mixed": {1, "a"},
        "bytes": b"\x00",
        "weird": Weird(),
        "big": np.zeros(20_000),
        "scalar": np.int32(7),
    }
    out = to_jsonable(value)
    json.dumps(out, allow_nan=False)
    assert out["1"] == [1, 2]
    assert out["inf"] == "-inf"
    assert out["frozen"] == ["a", "b"]
    assert out["scalar"] == 7
    assert out["weird"].startswith("<Weird")
    assert isinstance(out["big"], str)
    assert math.isclose(to_jsonable(np.float32(0.25)), 0.25)


def test_list_sets_ignores_foreign_folders(tmp_path: Path, cache: Cache) -> None:
    (cache.root / "not-a-set").mkdir()
    (cache.root / "deadbeefdeadbeefdeadbeefdeadbeef").mkdir()  # no params.json, no chunks
    store = open_cache(str(cache.root))
    assert {s.set_id for s in list_sets(store)} == {cache.a, cache.b, cache.c}
    plan = plan_gc(store, older_than=0.0, now=time.time() + 10)
    assert {s.set_id for s in plan.sets} == {cache.a, cache.b, cache.c}


# --------------------------------------------------------------------------- entry point


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_python_dash_m_entry_point(cache: Cache) -> None:
    proc = _python("-m", "swarm_memo", "ls", str(cache.root), "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["digest"]: row for row in json.loads(proc.stdout)}
    assert rows[cache.a]["points"] == 12
    text = _python("-m", "swarm_memo", "ls", str(cache.root))
    assert text.returncode == 0
    assert cache.a[:12] in text.stdout
    err = _python("-m", "swarm_memo", "info", str(cache.root), "nope")
    assert err.returncode == 2
    assert err.stdout == ""
    assert len(err.stderr.strip().splitlines()) == 1
    assert "Traceback" not in err.stderr


def test_import_does_not_load_click() -> None:
    proc = _python("-c", "import sys, swarm_memo; print('click' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


# --------------------------------------------------------------------------- read-only, no code


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file and folder below ``root`` with its size, mtime and content."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(dirpath, name)
            st = path.lstat()
            content = path.read_bytes() if path.is_file() else b""
            out[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns, content)
    return out


def test_ls_info_verify_modify_nothing(cache: Cache) -> None:
    index = cache.root / cache.a / "index"
    (segment,) = index.iterdir()
    for i in range(40):  # more segments than a reading run would leave unfolded
        (index / f"{i:020d}-copy{i:08d}.idx").write_bytes(segment.read_bytes())
    cache.chunks(cache.b)[0].write_bytes(b"damaged")
    stale = time.time() - 2 * DAY
    temp = cache.root / cache.c / "chunks" / TEMP_NAME
    temp.write_bytes(b"half")
    os.utime(temp, (stale, stale))
    before = snapshot(cache.root)
    for args in (
        ["ls"],
        ["ls", "--json"],
        ["info", cache.a],
        ["info", cache.b, "--json"],
        ["verify"],
        ["verify", "--json"],
        ["gc", "--dry-run", "--quarantine", "--older-than", "0s"],
    ):
        result = invoke(args[0], cache.root, *args[1:])
        assert result.exit_code in (0, 1), result.output
    assert snapshot(cache.root) == before


class RunsCode:
    """Unpickling this creates ``marker``: proof that something unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (Path.touch, (self.marker,))


def crafted_chunk(set_id: str, body: bytes) -> bytes:
    """A chunk file with a valid header, meta and checksum around ``body``."""
    from swarm_memo.cache.codec import FORMAT_VERSION, MAGIC, PICKLE_XXH3, checksum

    meta = json.dumps(
        {"set": set_id, "cache_version": "v1", "axes": ["x"], "product": True, "points": 1}
    ).encode()
    fixed = b"".join(
        [
            MAGIC,
            FORMAT_VERSION.to_bytes(2, "big"),
            PICKLE_XXH3.to_bytes(2, "big"),
            len(meta).to_bytes(4, "big"),
            len(body).to_bytes(8, "big"),
        ]
    )
    return fixed + checksum(meta + body) + meta + body


def test_inspection_never_unpickles_anything(tmp_path: Path, cache: Cache) -> None:
    import pickle

    from swarm_memo.cache.index import INDEX_MAGIC

    marker = tmp_path / "code-ran"
    payload = pickle.dumps(RunsCode(marker))
    old = cache.root / ("0" * 32)  # a set of an older swarm-memo: params.pkl only
    (old / "chunks").mkdir(parents=True)
    (old / "params.pkl").write_bytes(payload)
    (old / "chunks" / "c.chunk").write_bytes(crafted_chunk(old.name, payload))
    (cache.root / cache.a / "params.json").write_bytes(payload)
    (cache.root / cache.a / "chunks" / "evil.chunk").write_bytes(crafted_chunk(cache.a, payload))
    (cache.root / cache.a / "index" / "evil.idx").write_bytes(INDEX_MAGIC + payload)

    rows = {row["digest"]: row for row in invoke_json("ls", cache.root)}
    assert "older swarm-memo" in rows[old.name]["params_error"]
    assert "not a params description" in rows[cache.a]["params_error"]
    for set_id in (old.name, cache.a):
        assert invoke("info", cache.root, set_id).exit_code == 0
    report = invoke_json("verify", cache.root, exit_code=1)  # a's params.json is damaged
    assert {p["path"] for p in report["problems"]} == {str(cache.root / cache.a / "params.json")}
    assert invoke("gc", cache.root, "--dry-run", "--older-than", "0s").exit_code == 0
    assert not marker.exists()
    pickle.loads(payload)  # the payload does run code when unpickled
    assert marker.exists()
