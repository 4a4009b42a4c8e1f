"""The bytes swarm-memo writes do not change: chunk files (codec 1 and codec 2), index
segments and worker results of fixed records hash as they did before the ``Codec`` seam
(digests computed on main 9c31684), and a file written then still loads and re-encodes
to the very same bytes."""

from __future__ import annotations

import base64
import hashlib
import pickle

import pytest

from swarm_memo.cache.codec import ChunkRecord, decode_chunk, encode_chunk, read_header
from swarm_memo.cache.segments import IndexRecord, decode_segment, encode_segment
from swarm_memo.core.jobs import PointFailure
from swarm_memo.core.serial import DEFAULT_CODEC

INFO = {
    "compute_seconds": 1.5,
    "computed_points": 3,
    "computed_at": "2026-01-01T00:00:00+00:00",
    "host": "h",
    "pid": 7,
    "swarm_memo": "0",
    "python": "3",
}


def product() -> ChunkRecord:
    outputs = [
        {"i": i, "f": i / 3, "s": "é" * i, "t": (i, None, True), "b": bytes([i]) * 5}
        for i in range(6)
    ]
    key = (("a", range(0, 3)), ("b", ("x", "y")))
    return ChunkRecord(
        "set1", "v1", key, ("a", "b"), None, outputs, info=dict(INFO), key_digest="ab" * 16
    )


def enumerated() -> ChunkRecord:
    return ChunkRecord(
        "set1",
        "v1",
        (("a", (1, 5, 9)),),
        ("a",),
        [(1,), (9,)],
        [1.25, [2, 3]],
        partial=True,
        code="c0de",
        info=dict(INFO),
    )


def mixed() -> ChunkRecord:
    return ChunkRecord(
        "set1",
        "v1",
        (("a", (1, 5)),),
        ("a",),
        [(1,), (5,)],
        ["x", "y"],
        code="mixed",
        info=dict(INFO),
        point_codes=("c1", "c2"),
    )


def buffers() -> ChunkRecord:
    """Two large buffers: stored out of band (codec 2), no numpy needed."""
    outputs = [
        pickle.PickleBuffer(bytearray(range(256)) * 400),
        pickle.PickleBuffer(bytes(70000)),
    ]
    return ChunkRecord("set1", "v1", (("a", (0, 1)),), ("a",), None, outputs, info=dict(INFO))


GOLDEN = {
    "product": (846, 1, "b5f729d8418a0170eebb5b278fc26ca8cdbaa12e1cd75aee67c4eb6ea9e6ac51"),
    "enumerated": (601, 1, "a8bac4307786695b08376a1eaf7d80bbc014d2566d6478473fbd6818ed18baef"),
    "mixed": (582, 1, "5ba95addcc30f485b67163d2fb818a6eb0a96bf31898bc89af0053f0921275a9"),
    "buffers": (172912, 2, "39b3fa990a55bb187eb72750f0b3fb1e313992c7ff7874fb142c8a712654665e"),
}
RECORDS = {"product": product, "enumerated": enumerated, "mixed": mixed, "buffers": buffers}

PRODUCT_FILE = base64.b64decode(
    "U1dNRU1PQ0sAAgABAAABmQAAAAAAAAGNANp/WRAPSQlgilweZYz33HsiYXhlcyI6IFsiYSIsICJiIl0sICJj"
    "YWNoZV92ZXJzaW9uIjogInYxIiwgImNvZGUiOiBudWxsLCAiaW5mbyI6IHsiY29tcHV0ZV9zZWNvbmRzIjog"
    "MS41LCAiY29tcHV0ZWRfYXQiOiAiMjAyNi0wMS0wMVQwMDowMDowMCswMDowMCIsICJjb21wdXRlZF9wb2lu"
    "dHMiOiAzLCAiaG9zdCI6ICJoIiwgInBpZCI6IDcsICJweXRob24iOiAiMyIsICJzd2FybV9tZW1vIjogIjAi"
    "fSwgImtleSI6IFtbImEiLCB7InJhbmdlIjogWzAsIDMsIDFdfV0sIFsiYiIsIFsieCIsICJ5Il1dXSwgImtl"
    "eV9kaWdlc3QiOiAiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWIiLCAibmFtZSI6ICJjaHVuay1w"
    "cm9kdWN0IiwgInBhcnRpYWwiOiBmYWxzZSwgInBvaW50cyI6IDYsICJwcm9kdWN0IjogdHJ1ZSwgInNldCI6"
    "ICJzZXQxIn2ABZWCAQAAAAAAAH2UKIwJY2h1bmtfa2V5lIwBYZSMCGJ1aWx0aW5zlIwFcmFuZ2WUk5RLAEsD"
    "SwGHlFKUhpSMAWKUjAF4lIwBeZSGlIaUhpSMBnBvaW50c5ROjAdvdXRwdXRzlF2UKH2UKIwBaZRLAIwBZpRH"
    "AAAAAAAAAACMAXOUjACUjAF0lEsAToiHlGgJQwUAAAAAAJR1fZQoaBNLAWgURz/VVVVVVVVVaBWMAsOplGgX"
    "SwFOiIeUaAlDBQEBAQEBlHV9lChoE0sCaBRHP+VVVVVVVVVoFYwEw6nDqZRoF0sCToiHlGgJQwUCAgICApR1"
    "fZQoaBNLA2gURz/wAAAAAAAAaBWMBsOpw6nDqZRoF0sDToiHlGgJQwUDAwMDA5R1fZQoaBNLBGgURz/1VVVV"
    "VVVVaBWMCMOpw6nDqcOplGgXSwROiIeUaAlDBQQEBAQElHV9lChoE0sFaBRHP/qqqqqqqqtoFYwKw6nDqcOp"
    "w6nDqZRoF0sFToiHlGgJQwUFBQUFBZR1ZXUu"
)
"""The file ``product()`` was written as on main 9c31684."""


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_chunk_bytes_of_a_fixed_record_are_unchanged(name):
    data = encode_chunk(RECORDS[name](), f"chunk-{name}")
    size, codec, digest = GOLDEN[name]
    assert read_header(data).codec == codec
    assert len(data) == size
    assert hashlib.sha256(data).hexdigest() == digest


def test_a_file_written_before_loads_and_re_encodes_to_the_same_bytes():
    record = decode_chunk(PRODUCT_FILE)
    assert record.outputs == product().outputs
    assert record.chunk_key == product().chunk_key
    assert encode_chunk(record, "chunk-product") == PRODUCT_FILE


def test_segment_bytes_of_fixed_records_are_unchanged():
    records = {
        "n1": IndexRecord(("a",), (range(0, 3),), None, b"k" * 16, "c"),
        "n2": IndexRecord((), (), b"d" * 32, b"j" * 16, None),
    }
    data = encode_segment(records)
    assert len(data) == 177
    digest = "9d9cc216107a704fedd0d65e1e3a9bf23a7ebef52c61924a1f819833fcfb985b"
    assert hashlib.sha256(data).hexdigest() == digest
    assert decode_segment(data) == records


def test_worker_result_bytes_are_unchanged():
    failure = PointFailure(2, "ValueError", "m", "tb")
    data = DEFAULT_CODEC.encode_outcome([1, "two", failure], [2], True)
    digest = "4eb67b566712eca6e801b1a27c0895cb0104095c85d7c8e8528bd96b0bcb4cc1"
    assert (len(data), hashlib.sha256(data).hexdigest()) == (162, digest)
