from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import swarm_memo
from helpers import CountingExec


@pytest.fixture
def counting(tmp_path: Path) -> CountingExec:
    return CountingExec(tmp_path / "calls.log")


@pytest.fixture
def make_memo(tmp_path: Path, counting: CountingExec):
    """Build a SwarmMemo on a fresh cache with the counting exec function (serial by default)."""

    def make(**kwargs):
        options = {
            "cache_root": tmp_path / "cache",
            "memo_chunk_spec": {"strat": 1, "s": 3},
            "exec_chunk_size": 2,
            "exec_fn": counting,
            "max_workers": 1,
            "verbose": 0,
        }
        options.update(kwargs)
        return swarm_memo.SwarmMemo(**options)

    return make
