"""A point counts as stored only once its chunk file is durable: with folder fsyncs
shared by the writer threads (group commit), an index record still never names a chunk
file whose rename no successful folder fsync covered, whatever moment a crash hits."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from helpers import CountingExec
from swarm_memo import StoreError, SwarmMemo
from swarm_memo.cache.index import decode_segment
from swarm_memo.stores import durable

SPEC = {"x": list(range(40))}


class CrashingFolderSync:
    """``_fsync_folder`` that succeeds ``good`` times on chunk folders, then fails as a
    crash would (EIO); it notes the chunk files each successful fsync made durable."""

    def __init__(self, good: int) -> None:
        self.good = good
        self.durable: set[str] = set()
        self.calls = 0
        self.lock = threading.Lock()
        self.real = durable._fsync_folder

    def __call__(self, folder: str) -> None:
        if not folder.endswith("chunks"):
            self.real(folder)
            return
        with self.lock:
            self.calls += 1
            crash = self.calls > self.good
        if crash:
            raise OSError(errno.EIO, "simulated crash before the folder fsync")
        renamed = {name for name in os.listdir(folder) if name.endswith(".chunk")}
        self.real(folder)
        with self.lock:
            self.durable |= renamed  # renamed before this fsync started: now durable


def indexed_names(root: Path) -> set[str]:
    names: set[str] = set()
    for segment in root.glob("*/index/*.idx"):
        names |= set(decode_segment(segment.read_bytes()))
    return names


@pytest.mark.parametrize("good", [0, 1, 3, 6])
def test_no_index_record_names_a_chunk_file_before_its_folder_fsync(tmp_path, monkeypatch, good):
    crashing = CrashingFolderSync(good)
    monkeypatch.setattr(durable, "_fsync_folder", crashing)
    counting = CountingExec(tmp_path / "calls.log")
    memo = SwarmMemo(tmp_path / "cache", {"x": 2}, 2, exec_fn=counting, executor="thread",
                     max_workers=2, verbose=0)  # fmt: skip
    with pytest.raises(StoreError):
        memo.run({}, SPEC)
    memo.close()
    indexed = indexed_names(tmp_path / "cache")
    assert indexed <= {name.removesuffix(".chunk") for name in crashing.durable}
    if good == 0:
        assert not indexed
