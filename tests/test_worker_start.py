"""The preloaded start of the memo's workers (Linux): forked by swarm-memo's own fork
server, yet as loky's own start behaves: a killed worker is detected and the pool is
replaced, workers die with their driver, the driver's ``__main__`` is never imported in a
worker, and workers see the driver's environment as it is when the pool starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import swarm_memo
from swarm_memo import SwarmMemo, WorkerDiedError
from swarm_memo.execution import pool as _pool

pytestmark = pytest.mark.skipif(
    not _pool.preloaded_start(), reason="no preloaded start on this platform"
)

SRC = str(Path(swarm_memo.__file__).resolve().parents[1])
XS = {"x": list(range(6))}


def parent_of(params: object, point: tuple[int]) -> tuple[int, int]:
    return os.getpid(), os.getppid()


def env_of(params: object, point: tuple[int]) -> str:
    return os.environ.get("SWARM_MEMO_TEST_VALUE", "")


def die_at_3(params: object, point: tuple[int]) -> int:
    if point[0] == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return point[0]


def make(tmp_path: Path, fn: object) -> SwarmMemo:
    return SwarmMemo(tmp_path, {"x": 1}, 1, exec_fn=fn, max_workers=2, verbose=0)


def test_workers_are_forked_by_the_server_not_the_driver(tmp_path):
    memo = make(tmp_path, parent_of)
    pairs, _ = memo.run({}, XS)
    memo.close()
    parents = {parent for _pid, parent in pairs}
    assert os.getpid() not in parents  # not spawned by the driver: by the server
    assert len(parents) == 1


def test_the_loky_start_is_kept_when_asked_for(tmp_path, monkeypatch):
    monkeypatch.setenv(_pool.START_VARIABLE, "loky")
    memo = make(tmp_path, parent_of)
    pairs, _ = memo.run({}, XS)
    memo.close()
    assert {parent for _pid, parent in pairs} == {os.getpid()}


def test_a_killed_worker_is_detected_and_the_pool_is_replaced(tmp_path):
    memo = make(tmp_path, die_at_3)
    with pytest.raises(WorkerDiedError) as info:
        memo.run({}, XS)
    assert (3,) in info.value.points
    memo.exec_fn = parent_of
    pairs, _ = memo.run({"again": 1}, XS)  # a new pool, forked by the same server
    memo.close()
    assert len(pairs) == 6


def test_workers_see_the_environment_of_the_driver_when_their_pool_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("SWARM_MEMO_TEST_VALUE", "first")
    memo = make(tmp_path / "a", env_of)
    assert set(memo.run({}, XS)[0]) == {"first"}  # the server starts here
    memo.close()
    monkeypatch.setenv("SWARM_MEMO_TEST_VALUE", "second")
    memo = make(tmp_path / "b", env_of)
    assert set(memo.run({}, XS)[0]) == {"second"}
    memo.close()


UNGUARDED = """
import os, sys
from swarm_memo import SwarmMemo

with open(sys.argv[2], "a") as fh:  # each import of this script as a main module
    fh.write("imported\\n")

def pid_of(params, point):
    return os.getpid()

memo = SwarmMemo(sys.argv[1], {"x": 1}, 1, exec_fn=pid_of, max_workers=2, verbose=0)
pids, _ = memo.run({}, {"x": [0, 1, 2, 3]})
memo.close()
print(len(pids))
"""


def test_a_script_without_a_main_guard_is_not_imported_by_its_workers(tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    log = tmp_path / "imports.log"
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "cache"), str(log)],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["4"]
    assert log.read_text().splitlines() == ["imported"]  # by the driver only
