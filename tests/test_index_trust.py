"""Nothing is served on the index's word alone, and no chunk file counts as stored without
its key being checked (issue 17, items 5 and 6). Each test failed before its fix."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helpers import CountingExec, expected_output
from swarm_memo import CacheWarning, SpecError, SwarmMemo
from swarm_memo.cache.index import IndexRecord, decode_segment, encode_segment
from swarm_memo.cli import cli

SPEC = {"x": [0, 1, 2, 3], "y": ["a", "b"]}
"""Two chunk files of the stored layout (x bins of 2, y bins of 2)."""


def stored_layout(root: Path, counting: CountingExec, **kwargs: Any) -> SwarmMemo:
    memo = SwarmMemo(root, {"x": 2, "y": 2}, 4, exec_fn=counting, executor="serial", verbose=0)
    memo.run({}, SPEC)
    return SwarmMemo(
        root, {"x": 1, "y": 2}, 4, exec_fn=counting, executor="serial", verbose=0, **kwargs
    )


def expected() -> list[Any]:
    return [expected_output({}, (x, y)) for x in SPEC["x"] for y in SPEC["y"]]


def only_segment(root: Path) -> Path:
    segments = list(root.rglob("*.idx"))
    assert len(segments) == 1
    return segments[0]


def test_single_bit_flips_of_a_segment_serve_right_outputs_or_warn(tmp_path, counting):
    """One flipped bit per byte of a segment, each bit position in turn (every bit of every
    byte takes 8 times longer: benchmarks/stress_index_flips.py scans them all, with runs
    and reads)."""
    rebinned = stored_layout(tmp_path, counting)  # a rebinned request is served by the index
    segment = only_segment(tmp_path)
    data = segment.read_bytes()
    problems: list[tuple[int, str]] = []
    for bit in range(0, 8 * len(data), 9):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        segment.write_bytes(bytes(flipped))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                output, diag = rebinned.load({}, SPEC)  # reads never write: the flip stays
            except Exception as exc:
                problems.append((bit, repr(exc)))
                continue
        problems += [(bit, w.category.__name__) for w in caught if w.category is not CacheWarning]
        if output != expected() or diag.missing_points:
            problems.append((bit, "wrong output"))
    assert problems == []
    assert counting.count() == 8  # only the first run computed anything


def test_a_damaged_segment_is_ignored_with_a_warning_and_a_run_rebuilds_it(tmp_path, counting):
    rebinned = stored_layout(tmp_path, counting)
    segment = only_segment(tmp_path)
    data = bytearray(segment.read_bytes())
    data[-5] ^= 0x04
    segment.write_bytes(bytes(data))
    with pytest.warns(CacheWarning, match="index segment .* checksum mismatch"):
        output, diag = rebinned.run({}, SPEC)
    assert output == expected()
    assert diag.executed_points == 0
    assert counting.count() == 8
    assert not segment.exists()  # the run replaced it by records rebuilt from the files
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rebinned.load({}, SPEC)[0] == expected()  # and warns no more


def test_a_segment_without_checksum_is_not_trusted(tmp_path, counting):
    rebinned = stored_layout(tmp_path, counting)
    segment = only_segment(tmp_path)
    records = decode_segment(segment.read_bytes())
    (first, a), (second, b) = sorted(records.items())
    swapped = {first: IndexRecord(b.axes, b.bins, None, a.checksum), second: b}
    # What an older swarm-memo wrote (format 4, no checksum), here describing a wrongly.
    import pickle

    rows = [(name, *record.to_tuple()) for name, record in swapped.items()]
    segment.write_bytes(b"SWMEMOIX4" + pickle.dumps(rows, protocol=5))
    assert rebinned.load({}, SPEC)[0] == expected()


def test_a_record_that_does_not_describe_its_file_is_rebuilt_before_serving(tmp_path, counting):
    """A segment whose checksum holds but whose record gives file a the bins of file b
    (a writer bug, a hand-made segment): served points are confirmed against the file."""
    rebinned = stored_layout(tmp_path, counting)
    segment = only_segment(tmp_path)
    records = decode_segment(segment.read_bytes())
    (first, a), (second, b) = sorted(records.items())
    wrong = {first: IndexRecord(b.axes, b.bins, None, a.checksum), second: b}
    segment.write_bytes(encode_segment(wrong))
    assert rebinned.load({}, SPEC)[0] == expected()
    output, _ = rebinned.run({}, SPEC)
    assert output == expected()
    assert counting.count() == 8
    fresh = SwarmMemo(tmp_path, {"x": 1, "y": 2}, 4, exec_fn=counting, verbose=0)
    assert fresh.load({}, SPEC)[0] == expected()  # the files the run wrote are right too


def test_a_point_list_that_does_not_match_its_file_is_not_served(tmp_path, counting):
    def listed(params: dict[str, Any], chunk: dict[str, Any]) -> list[Any]:
        return [(x, y) for y in chunk["y"] for x in chunk["x"]]  # not the product order

    def memo(bins: int) -> SwarmMemo:
        return SwarmMemo(
            tmp_path,
            {"x": bins, "y": 2},
            4,
            exec_fn=counting,
            enumerate_points=listed,
            executor="serial",
            verbose=0,
        )

    memo(2).run({}, SPEC)
    segment = only_segment(tmp_path)
    records = decode_segment(segment.read_bytes())
    (first, a), (second, b) = sorted(records.items())
    assert a.digests is not None
    wrong = {
        first: IndexRecord((), (), a.digests[16:32] + a.digests[:16] + a.digests[32:], a.checksum),
        second: b,
    }
    segment.write_bytes(encode_segment(wrong))
    output, _ = memo(1).load({}, SPEC)
    assert output == [
        expected_output({}, p) for x in SPEC["x"] for p in listed({}, {"x": [x], "y": SPEC["y"]})
    ]


# ---------------------------------------------------------------- item 6: keys and bodies


def two_files(root: Path, counting: CountingExec) -> tuple[SwarmMemo, Path, Path]:
    """Chunk files of x=(0, 1) and x=(2, 3); returns the memo and both files."""
    memo = SwarmMemo(root, {"x": 2}, 4, exec_fn=counting, executor="serial", verbose=0)
    memo.run({}, {"x": [0, 1]})
    (first,) = root.rglob("*.chunk")
    memo.run({}, {"x": [0, 1, 2, 3]})
    (second,) = set(root.rglob("*.chunk")) - {first}
    counting.reset()
    return memo, first, second


def test_a_chunk_hash_fn_naming_two_chunks_alike_is_a_spec_error_before_any_work(
    tmp_path, counting
):
    def by_size(params: dict[str, Any], key: Any, version: str) -> str:
        return f"x{len(key[0][1])}"  # (0, 1) and (2, 3) both get "x2"

    memo = SwarmMemo(
        tmp_path, {"x": 2}, 4, exec_fn=counting, chunk_hash_fn=by_size, executor="serial"
    )
    for call in (memo.run, memo.run_streaming, memo.status, memo.load):
        with pytest.raises(SpecError, match="same name 'x2'") as info:
            call({}, {"x": [0, 1, 2, 3]})
        assert "(('x', (0, 1)),)" in str(info.value)
        assert "(('x', (2, 3)),)" in str(info.value)
    assert counting.count() == 0
    assert not list(tmp_path.rglob("*.chunk"))
    memo.run({}, {"x": [0, 1, 2]})  # (0, 1) and (2,): distinct names, fine


def test_a_copied_chunk_file_under_another_chunks_name_is_not_stored(tmp_path, counting):
    memo, first, second = two_files(tmp_path, counting)
    shutil.copyfile(first, second)  # second's name, first's key
    spec = {"x": [0, 1, 2, 3]}
    report = CliRunner().invoke(cli, ["verify", str(tmp_path)])
    assert report.exit_code != 0
    assert str(second) in report.output
    assert str(first) not in report.output
    with pytest.warns(CacheWarning, match="another chunk than its name says"):
        status = memo.status({}, spec)
    assert (status.cached_points, status.missing_points) == (2, 2)
    with pytest.warns(CacheWarning, match="another chunk than its name says"):
        diag = memo.run_streaming({}, spec)
    assert diag.executed_points == 2
    assert sorted(counting.calls()) == ["(2,)", "(3,)"]
    assert memo.load({}, spec, strict=True)[0] == [expected_output({}, (x,)) for x in range(4)]
    assert CliRunner().invoke(cli, ["verify", str(tmp_path)]).exit_code == 0


def test_a_chunk_file_with_a_damaged_body_counts_as_missing_and_is_repaired(tmp_path, counting):
    memo, _, second = two_files(tmp_path, counting)
    data = bytearray(second.read_bytes())
    data[-3] ^= 0x10  # the body: header, size and meta still check out
    second.write_bytes(bytes(data))
    spec = {"x": [0, 1, 2, 3]}
    with pytest.warns(CacheWarning, match="checksum mismatch"):
        status = memo.status({}, spec)
    assert (status.cached_points, status.missing_points) == (2, 2)
    with pytest.warns(CacheWarning, match="checksum mismatch"):
        diag = memo.run_streaming({}, spec)
    assert diag.executed_points == 2
    assert sorted(counting.calls()) == ["(2,)", "(3,)"]
    assert memo.load({}, spec, strict=True)[0] == [expected_output({}, (x,)) for x in range(4)]


def test_status_of_a_rebinned_request_counts_a_damaged_file_as_missing(tmp_path, counting):
    _, _, second = two_files(tmp_path, counting)
    data = bytearray(second.read_bytes())
    data[-3] ^= 0x10
    second.write_bytes(bytes(data))
    rebinned = SwarmMemo(tmp_path, {"x": 1}, 4, exec_fn=counting, executor="serial", verbose=0)
    with pytest.warns(CacheWarning, match="checksum mismatch"):
        status = rebinned.status({}, {"x": [0, 1, 2, 3]})  # served through the index
    assert (status.cached_points, status.missing_points) == (2, 2)
    with pytest.warns(CacheWarning, match="checksum mismatch"):
        output, diag = rebinned.run({}, {"x": [0, 1, 2, 3]})
    assert (diag.cached_points, diag.executed_points) == (2, 2)
    assert output == [expected_output({}, (x,)) for x in range(4)]
