"""The ``Codec`` seam: the codec in a memo's config (``MemoConfig.codec``) is the one that
pickles chunk bodies, index segments, the run sent to workers and the outputs they send
back, in the driver and in pool workers alike; a codec with another pickle protocol
writes files any codec reads, and nothing is recomputed."""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from helpers import LockAt, chunk_files, expected_output
from swarm_memo import ExecError, SwarmMemo
from swarm_memo.cache.codec import HEADER_SIZE, PICKLE_XXH3, read_header
from swarm_memo.core.serial import Codec, Outcome
from swarm_memo.core.types import ExecFn, Params

XS = {"x": [0, 1, 2, 3]}


@dataclass(frozen=True)
class TracingCodec(Codec):
    """The default codec that appends ``<method> <pid>`` to a file at each call."""

    log: str = ""

    def _note(self, what: str) -> None:
        with open(self.log, "a") as fh:
            fh.write(f"{what} {os.getpid()}\n")

    def dumps(self, obj: object) -> bytes:
        self._note("dumps")
        return super().dumps(obj)

    def loads(self, data: bytes | memoryview, buffers: Any = None) -> object:
        self._note("loads")
        return super().loads(data, buffers)

    def dumps_split(self, obj: object) -> tuple[bytes, list[memoryview]]:
        self._note("dumps_split")
        return super().dumps_split(obj)

    def dumps_run(self, exec_fn: ExecFn, params: Params) -> bytes:
        self._note("dumps_run")
        return super().dumps_run(exec_fn, params)

    def loads_run(self, blob: bytes) -> tuple[ExecFn, Params]:
        self._note("loads_run")
        return super().loads_run(blob)

    def encode_outcome(self, outputs: list[object], failed: list[int], skip: bool) -> bytes:
        self._note("encode_outcome")
        return super().encode_outcome(outputs, failed, skip)

    def decode_outcome(self, payload: bytes) -> Outcome:
        self._note("decode_outcome")
        return super().decode_outcome(payload)

    def check_outcome(self, outputs: list[object], failed: list[int], skip: bool) -> Outcome:
        self._note("check_outcome")
        return super().check_outcome(outputs, failed, skip)

    def calls(self) -> list[tuple[str, int]]:
        lines = Path(self.log).read_text().split("\n")
        return [(what, int(pid)) for what, pid in (line.split() for line in lines if line)]


def memo_with(tmp_path: Path, exec_fn: Any, codec: Codec, **kwargs: Any) -> SwarmMemo:
    memo = SwarmMemo(tmp_path / "cache", {"x": 2}, 1, exec_fn=exec_fn, verbose=0, **kwargs)
    memo.config = replace(memo.config, codec=codec)
    return memo


def test_the_configs_codec_pickles_workers_traffic_chunks_and_segments(tmp_path, counting):
    codec = TracingCodec(log=str(tmp_path / "codec.log"))
    memo = memo_with(tmp_path, counting, codec, executor="process", max_workers=2)
    outputs, _diag = memo.run({}, XS)
    memo.close()
    assert outputs == [expected_output({}, (x,)) for x in XS["x"]]
    calls = codec.calls()
    driver = os.getpid()
    in_workers = {what for what, pid in calls if pid != driver}
    in_driver = {what for what, pid in calls if pid == driver}
    assert {"loads_run", "encode_outcome"} <= in_workers
    assert {"dumps_run", "decode_outcome", "dumps_split", "dumps"} <= in_driver
    assert "check_outcome" not in in_driver  # only in-process backends check in the driver
    assert counting.count() == 4


@pytest.mark.parametrize("executor", ["serial", "thread"])
def test_in_process_backends_check_outputs_with_the_configs_codec(tmp_path, counting, executor):
    codec = TracingCodec(log=str(tmp_path / "codec.log"))
    memo_with(tmp_path, counting, codec, executor=executor).run({}, XS)
    whats = {what for what, _pid in codec.calls()}
    assert "check_outcome" in whats
    assert not whats & {"dumps_run", "encode_outcome", "decode_outcome"}


def test_reads_go_through_the_configs_codec(tmp_path, counting):
    SwarmMemo(tmp_path / "cache", {"x": 2}, 1, exec_fn=counting, executor="serial").run({}, XS)
    codec = TracingCodec(log=str(tmp_path / "codec.log"))
    outputs, diag = memo_with(tmp_path, counting, codec, executor="serial").run({}, XS)
    assert outputs == [expected_output({}, (x,)) for x in XS["x"]]
    assert counting.count() == 4  # all served
    assert diag.cached_points == 4
    assert ("loads", os.getpid()) in codec.calls()


def test_a_codec_with_protocol_4_writes_files_the_default_codec_reads(tmp_path, counting):
    np = pytest.importorskip("numpy")

    def big(params: dict[str, Any], point: Any) -> Any:
        counting(params, point)
        return np.full(20_000, float(point[0]))  # out of band with protocol 5

    writer = memo_with(tmp_path, big, Codec(protocol=4), executor="process", max_workers=2)
    writer.run({}, XS)
    writer.close()
    files = chunk_files(tmp_path / "cache")
    for path in files:
        data = path.read_bytes()
        header = read_header(data[:HEADER_SIZE])
        assert header.codec == PICKLE_XXH3  # protocol 4 keeps every buffer in band
        assert data[HEADER_SIZE + header.meta_length :][:2] == b"\x80\x04"
    reader = SwarmMemo(tmp_path / "cache", {"x": 2}, 1, exec_fn=big, executor="serial")
    outputs, _diag = reader.run({}, XS)
    assert counting.count() == 4
    assert [float(o[0]) for o in outputs] == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("protocol", [4, pickle.HIGHEST_PROTOCOL])
def test_an_unstorable_output_names_its_point_whatever_the_protocol(tmp_path, protocol):
    exec_fn = LockAt(tmp_path / "calls.log", lock_at=(2,))
    memo = memo_with(tmp_path, exec_fn, Codec(protocol=protocol), executor="serial")
    with pytest.raises(ExecError, match=r"cannot be pickled .*at point \(2,\)"):
        memo.run({}, XS)


def test_default_codec_is_in_every_config(tmp_path, counting):
    memo = SwarmMemo(tmp_path / "cache", {"x": 2}, 1, exec_fn=counting, executor="serial")
    assert memo.config.codec == Codec()
