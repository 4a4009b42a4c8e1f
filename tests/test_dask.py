"""Scale-out on a real Dask LocalCluster (2 worker processes on loopback)."""

from __future__ import annotations

import os

import pytest

from helpers import CountingExec, expected_output
from swarm_memo import ExecError, SwarmMemo

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
        ) as cluster,
        distributed.Client(cluster) as dask_client,
    ):
        yield dask_client


def worker_pid(params, point):
    return os.getpid()


def test_dask_results_match_and_the_cache_is_reused(tmp_path, client):
    counting = CountingExec(tmp_path / "calls.log")
    memo = SwarmMemo(
        tmp_path / "c", {"x": 7, "y": 2}, 5, exec_fn=counting, executor=client, verbose=0
    )
    spec = {"x": list(range(30)), "y": ["a", "b", "c"]}
    output, diag = memo.run({"alpha": 3}, spec)
    serial = SwarmMemo(
        tmp_path / "serial",
        {"x": 7, "y": 2},
        5,
        exec_fn=lambda p, pt: expected_output(p, pt),
        max_workers=1,
        verbose=0,
    )
    assert output == serial.run({"alpha": 3}, spec)[0]
    assert counting.count() == 90
    assert diag.exec_chunks == 18
    bigger = {"x": list(range(35)), "y": ["a", "b", "c"]}
    _, diag = memo.run({"alpha": 3}, bigger)
    assert counting.count() == 105
    assert diag.executed_points == 15


def test_dask_workers_compute_and_the_driver_writes(tmp_path, client):
    memo = SwarmMemo(tmp_path, {"x": 4}, 2, exec_fn=worker_pid, executor=client, verbose=0)
    diag = memo.run_streaming({}, {"x": list(range(16))})
    assert diag.stream_flushes == 4
    output, _ = memo.load({}, {"x": list(range(16))}, strict=True)
    worker_pids = set(client.run(os.getpid).values())
    assert set(output) <= worker_pids
    assert os.getpid() not in output


def test_dask_exec_error_names_the_point(tmp_path, client):
    counting = CountingExec(tmp_path / "calls.log", fail_on=(5,))
    memo = SwarmMemo(tmp_path / "c", {"x": 3}, 2, exec_fn=counting, executor=client, verbose=0)
    with pytest.raises(ExecError) as info:
        memo.run({}, {"x": list(range(9))})
    assert info.value.point == (5,)


def lock_at_4(params, point):
    import threading

    return threading.Lock() if point == (4,) else point[0]


def exits_at_4(params, point):
    import sys

    if point == (4,):
        sys.exit(0)
    return point[0]


@pytest.mark.parametrize(
    ("exec_fn", "exc_type"), [(lock_at_4, "TypeError"), (exits_at_4, "SystemExit")]
)
def test_dask_unpicklable_output_or_sys_exit_is_a_failure_of_its_point(
    tmp_path, client, exec_fn, exc_type
):
    memo = SwarmMemo(tmp_path, {"x": 3}, 2, exec_fn=exec_fn, executor=client, verbose=0)
    with pytest.raises(ExecError) as info:
        memo.run({}, {"x": list(range(9))})
    assert info.value.point == (4,)
    assert info.value.exc_type == exc_type
