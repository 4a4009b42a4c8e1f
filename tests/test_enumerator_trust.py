"""Warm hits trust a stored enumerator fingerprint (issue 23, lever 2): a chunk file whose
points a custom ``enumerate_points`` listed is stamped with its fingerprint (helpers and
module constants included); an exact hit with the same fingerprint serves the file
without calling the enumerator, and an edited enumerator is called again."""

from __future__ import annotations

import dataclasses
import json
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import CountingExec, chunk_files, edit_module, module_file
from swarm_memo import SwarmMemo
from swarm_memo.cache.codec import HEADER_SIZE, decode_chunk, encode_chunk, read_header

SOURCE = """
LOG = {log!r}
STEP = 1


def pick(values):
    return [(v,) for v in values[::STEP]]


def enumerate_points(params, split_spec):
    with open(LOG, "a") as f:
        f.write(repr(split_spec["i"][0]) + "\\n")
    return pick(split_spec["i"])
"""
SPLIT = {"i": list(range(12))}


@pytest.fixture
def user_module(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[types.ModuleType]:
    """The user's enumerator in a real module file under ``tmp_path``, edited by tests."""
    name = "enumtrust_" + "".join(c if c.isalnum() else "_" for c in request.node.name)
    source = textwrap.dedent(SOURCE.format(log=str(tmp_path / "e.log")))
    with module_file(tmp_path / "code", name, source) as module:
        yield module


def enumerated(tmp_path: Path) -> int:
    log = tmp_path / "e.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def memo_for(tmp_path: Path, module: types.ModuleType, counting: CountingExec) -> SwarmMemo:
    return SwarmMemo(
        tmp_path / "cache",
        {"i": 4},
        2,
        exec_fn=counting,
        enumerate_points=module.enumerate_points,
        max_workers=1,
        verbose=0,
    )


def meta_of(path: Path) -> dict:
    data = path.read_bytes()
    return json.loads(data[HEADER_SIZE : HEADER_SIZE + read_header(data).meta_length])


def test_a_warm_hit_does_not_call_the_enumerator(tmp_path, user_module):
    counting = CountingExec(tmp_path / "calls.log")
    memo = memo_for(tmp_path, user_module, counting)
    cold, _ = memo.run({}, SPLIT)
    assert enumerated(tmp_path) >= 3
    assert counting.count() == 12
    stamps = {meta_of(path).get("enumerator") for path in chunk_files(tmp_path / "cache")}
    assert len(stamps) == 1
    assert None not in stamps
    (tmp_path / "e.log").unlink()
    for call in (memo.run, memo.load, memo.run_streaming, memo.status):
        result = call({}, SPLIT)
        diag = result[1] if isinstance(result, tuple) else result
        assert diag.cached_points == 12, call
    assert memo.run({}, SPLIT)[0] == cold
    assert memo.to_dataframe({}, SPLIT)["i"].tolist() == list(range(12))
    assert enumerated(tmp_path) == 0
    assert counting.count() == 12


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("values[::STEP]", "values[::-STEP]"),  # the enumerator's helper
        ("STEP = 1", "STEP = 2"),  # a module constant the helper reads
    ],
)
def test_an_edited_enumerator_is_called_again(tmp_path, user_module, old, new):
    counting = CountingExec(tmp_path / "calls.log")
    memo_for(tmp_path, user_module, counting).run({}, SPLIT)
    (tmp_path / "e.log").unlink()
    edited = edit_module(user_module, old, new)
    memo = memo_for(tmp_path, edited, counting)
    points = [p for c in (SPLIT["i"][k : k + 4] for k in (0, 4, 8)) for p in edited.pick(c)]
    status = memo.status({}, SPLIT)
    assert enumerated(tmp_path) >= 3
    outputs, diag = memo.run({}, SPLIT)
    assert [o["point"] for o in outputs] == points  # in the edited enumerator's order
    assert diag.total_points == len(points)
    assert counting.count() == 12  # every point the edit lists was stored already
    assert status.cached_points == len(points)
    assert (memo.run({}, SPLIT)[0]) == outputs


def test_files_without_a_stamp_are_checked_as_before(tmp_path, user_module):
    """A file written before the stamp has none: its hit calls the enumerator and compares
    the points, and the file is served as before (and left as it is)."""
    counting = CountingExec(tmp_path / "calls.log")
    memo = memo_for(tmp_path, user_module, counting)
    cold, _ = memo.run({}, SPLIT)
    for path in chunk_files(tmp_path / "cache"):  # as an older swarm-memo wrote them
        record = dataclasses.replace(decode_chunk(path.read_bytes()), enumerator=None)
        path.write_bytes(encode_chunk(record, path.name.removesuffix(".chunk")))
    unstamped = {path: path.read_bytes() for path in chunk_files(tmp_path / "cache")}
    (tmp_path / "e.log").unlink()
    outputs, diag = memo.run({}, SPLIT)
    assert outputs == cold
    assert diag.cached_points == 12
    assert counting.count() == 12
    assert enumerated(tmp_path) == 3
    assert {path: path.read_bytes() for path in unstamped} == unstamped
