"""Codec 2: large numpy arrays are stored out of band and loaded over the file's bytes,
read once; files without them stay codec 1, and codec-1 files keep loading."""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from helpers import CountingExec, chunk_files
from swarm_memo import SwarmMemo
from swarm_memo.cache import codec as _codec
from swarm_memo.cache.codec import HEADER_SIZE, read_header
from swarm_memo.core.serial import Codec
from swarm_memo.errors import CorruptChunkError

np = pytest.importorskip("numpy")

VALUES = 20_000  # 160 KB of float64: stored out of band


class ArrayExec(CountingExec):
    """Counts calls; the output at point ``(i,)`` is ``VALUES`` floats equal to ``i``,
    plus a small array that stays in the pickle stream."""

    def __call__(self, params: dict[str, Any], point: Any) -> Any:
        super().__call__(params, point)
        return {"big": np.full(VALUES, float(point[0])), "small": np.arange(3) + point[0]}


def make(tmp_path: Path, exec_fn: Any) -> SwarmMemo:
    return SwarmMemo(tmp_path / "cache", {"x": 2}, 1, exec_fn=exec_fn, executor="serial", verbose=0)


def codecs(tmp_path: Path) -> list[int]:
    files = chunk_files(tmp_path / "cache")
    return [read_header(f.read_bytes()[:HEADER_SIZE]).codec for f in files]


def check_outputs(outputs: list[Any], xs: list[int]) -> None:
    assert len(outputs) == len(xs)
    for x, out in zip(xs, outputs, strict=True):
        assert out["big"].shape == (VALUES,)
        assert (out["big"] == float(x)).all()
        assert out["small"].tolist() == [x, x + 1, x + 2]


def test_large_arrays_load_from_codec_2_files_writable_without_recompute(tmp_path):
    counting = ArrayExec(tmp_path / "calls.log")
    xs = [0, 1, 2]
    make(tmp_path, counting).run({}, {"x": xs})
    assert codecs(tmp_path) == [_codec.PICKLE_BUFFERS_XXH3] * 2
    outputs, diag = make(tmp_path, counting).run({}, {"x": xs})
    assert counting.count() == 3
    assert diag.cached_points == 3
    check_outputs(outputs, xs)
    big = outputs[0]["big"]
    assert big.flags.writeable
    assert big.ctypes.data % 16 == 0
    big += 1.0  # the loaded array is the user's to change
    assert (big == 1.0).all()


def test_codec_1_files_still_load(tmp_path):
    counting = ArrayExec(tmp_path / "calls.log")
    before_codec_2 = make(tmp_path, counting)  # no buffer leaves the pickle stream
    before_codec_2.config = replace(before_codec_2.config, codec=Codec(out_of_band_bytes=10**9))
    before_codec_2.run({}, {"x": [0, 1]})
    assert codecs(tmp_path) == [_codec.PICKLE_XXH3]
    outputs, _diag = make(tmp_path, counting).run({}, {"x": [0, 1]})
    assert counting.count() == 2
    check_outputs(outputs, [0, 1])


def test_small_outputs_stay_codec_1(tmp_path, counting):
    make(tmp_path, counting).run({}, {"x": [1, 2, 3]})
    assert codecs(tmp_path) == [_codec.PICKLE_XXH3] * 2


@pytest.mark.parametrize("writable", [True, False])
def test_arrays_decode_from_bytes_and_bytearray(tmp_path, writable):
    make(tmp_path, ArrayExec(tmp_path / "calls.log")).run({}, {"x": [5]})
    (path,) = chunk_files(tmp_path / "cache")
    data = path.read_bytes()
    record = _codec.decode_chunk(bytearray(data) if writable else data)
    check_outputs(record.outputs, [5])
    assert record.outputs[0]["big"].flags.writeable


def test_buffer_outside_the_body_is_a_corrupt_file(tmp_path):
    make(tmp_path, ArrayExec(tmp_path / "calls.log")).run({}, {"x": [5]})
    (path,) = chunk_files(tmp_path / "cache")
    data = bytearray(path.read_bytes())
    header = read_header(bytes(data[:HEADER_SIZE]))
    entry = HEADER_SIZE + header.meta_length + 12  # the first buffer's (offset, length)
    offset, size = struct.unpack_from(">QQ", data, entry)
    struct.pack_into(">QQ", data, entry, offset, size + 10**6)
    fixed = len(_codec.MAGIC) + 16  # re-checksum: a well-formed file, wrongly written
    data[fixed : fixed + 16] = _codec.checksum(memoryview(data)[HEADER_SIZE:])
    with pytest.raises(CorruptChunkError, match="cannot be unpickled"):
        _codec.decode_chunk(bytes(data))
