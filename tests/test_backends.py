"""Backends: how ``executor=`` and ``max_workers`` resolve, per-memo pools, point failures."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import warnings
import weakref
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest

import swarm_memo
from helpers import MeetingPids, wait_until
from swarm_memo import (
    CodeChangedWarning,
    ExecError,
    PointFailure,
    SpecTypeError,
    SwarmMemo,
    WorkerDiedError,
)
from swarm_memo.core.serial import DEFAULT_CODEC
from swarm_memo.execution.backends import (
    ProcessBackend,
    SerialBackend,
    ThreadBackend,
    UserExecutorBackend,
    usable_cpus,
)
from swarm_memo.execution.executors import BackendFactory, ExecutorSpec

SRC = str(Path(swarm_memo.__file__).resolve().parents[1])
XS = {"x": list(range(6))}


def pid_of(params, point):
    return os.getpid()


def exits_at_2(params, point):
    if point == (2,):
        sys.exit(0)
    return point[0]


def interrupts_at_2(params, point):
    if point == (2,):
        raise KeyboardInterrupt
    return point[0]


def lock_at_3(params, point):
    return threading.Lock() if point == (3,) else point[0]


def die_at_1(params, point):
    if point == (1,):
        os._exit(3)
    return point[0]


def signals_itself(params, point):
    if point == (0,):
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
    return os.getpid()


def make(root: Path, fn, **kwargs) -> SwarmMemo:
    options = {"exec_fn": fn, "verbose": 0}
    options.update(kwargs)
    return SwarmMemo(root, {"x": 2}, 1, **options)


# ---------------------------------------------------------------------------- resolution


@pytest.mark.parametrize(
    ("executor", "max_workers", "kind"),
    [
        ("serial", 4, SerialBackend),
        ("thread", 2, ThreadBackend),
        ("process", 2, ProcessBackend),
        ("process", 1, SerialBackend),  # one worker: in-process, no pool
    ],
)
def test_named_executors_resolve_to_their_backend(executor, max_workers, kind):
    factory = BackendFactory(ExecutorSpec.parse(executor, max_workers))
    backend = factory.backend()
    assert isinstance(backend, kind)
    assert backend.workers == (1 if kind is SerialBackend else max_workers)
    factory.close()


def test_a_user_executor_counts_max_workers_or_the_usable_cpus_never_its_private_size():
    with ThreadPoolExecutor(7) as pool:
        backend = BackendFactory(ExecutorSpec.parse(pool, None)).backend()
        assert isinstance(backend, UserExecutorBackend)
        assert backend.workers == usable_cpus()
        assert BackendFactory(ExecutorSpec.parse(pool, 3)).backend().workers == 3


def test_an_object_from_a_module_named_distributed_is_not_taken_for_a_client():
    fake = type("Client", (), {"get_executor": lambda self, **kw: None})
    fake.__module__ = "distributed.client"
    with pytest.raises(SpecTypeError, match="got Client"):
        ExecutorSpec.parse(fake(), None)


def test_resolving_executors_never_imports_distributed():
    script = textwrap.dedent(
        """
        import sys
        from swarm_memo import SwarmMemo
        memo = SwarmMemo(sys.argv[1], {"x": 2}, 1, exec_fn=lambda p, x: x, verbose=0,
                         max_workers=2)
        memo.run({}, {"x": [1, 2]})
        memo.close()
        assert "distributed" not in sys.modules
        """
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run(
        [sys.executable, "-c", script, "cache"], cwd=Path(SRC).parent, env=env, check=False
    )
    assert done.returncode == 0


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("100000", None), ("junk", None)])
def test_slurm_cpus_per_task_caps_the_default_worker_count(monkeypatch, value, expected):
    from loky import cpu_count

    monkeypatch.setenv("SLURM_CPUS_PER_TASK", value)
    assert usable_cpus() == (expected or cpu_count())


def test_a_default_memo_under_slurm_with_one_cpu_runs_in_process(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    output, _ = make(tmp_path, pid_of).run({}, XS)
    assert set(output) == {os.getpid()}


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs sched_setaffinity")
def test_a_default_memo_pinned_to_one_cpu_runs_in_process(tmp_path):
    script = textwrap.dedent(
        """
        import os, sys
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        from swarm_memo import SwarmMemo
        memo = SwarmMemo(sys.argv[1], {"x": 2}, 1, exec_fn=lambda p, x: os.getpid(),
                         verbose=0)
        assert memo.config.backends.max_workers == 1
        output, _ = memo.run({}, {"x": [1, 2, 3]})
        assert set(output) == {os.getpid()}, output
        """
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    env.pop("SLURM_CPUS_PER_TASK", None)
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------- per-memo pools


def every_worker(folder: Path, workers: int) -> MeetingPids:
    """exec_fn returning the worker's pid; a run returns only once ``workers`` processes
    met at a barrier (under ``folder``): every worker of the pool got work, whatever the
    timing."""
    return MeetingPids(folder, workers)


def test_memos_with_different_sizes_keep_their_own_pools(tmp_path):
    small = make(tmp_path / "a", every_worker(tmp_path / "meet-a", 2), max_workers=2)
    large = make(tmp_path / "b", every_worker(tmp_path / "meet-b", 3), max_workers=3)
    grid = {"x": list(range(12))}
    runs = {"small": [], "large": []}
    for call in range(2):
        runs["small"].append(set(small.run({"call": call}, grid)[0]))
        runs["large"].append(set(large.run({"call": call}, grid)[0]))
    assert len(runs["small"][0]) == 2
    assert len(runs["large"][0]) == 3
    assert runs["small"][1] == runs["small"][0]  # not resized by the other memo
    assert runs["large"][1] == runs["large"][0]
    assert not runs["small"][0] & runs["large"][0]
    small.close()
    large.close()


def test_a_worker_death_in_one_memo_leaves_another_memos_pool_alone(tmp_path):
    victim = make(tmp_path / "a", die_at_1, max_workers=2)
    bystander = make(tmp_path / "b", every_worker(tmp_path / "meet", 2), max_workers=2)
    before = set(bystander.run({"call": 1}, XS)[0])
    with pytest.raises(WorkerDiedError):
        victim.run({}, XS)
    after = set(bystander.run({"call": 2}, XS)[0])
    assert after == before
    victim.exec_fn = pid_of
    with warnings.catch_warnings():  # chunks finished before the death may be die_at_1's
        warnings.simplefilter("ignore", CodeChangedWarning)
        pids = victim.run({}, XS)[0]
    assert os.getpid() not in pids  # the victim got a new pool
    victim.close()
    bystander.close()


@pytest.mark.parametrize("ending", ["close", "garbage collection"])
def test_a_memos_workers_exit_when_it_is_closed_or_collected(tmp_path, ending):
    psutil = pytest.importorskip("psutil")
    memo = make(tmp_path, every_worker(tmp_path / "meet", 2), max_workers=2)
    workers = [psutil.Process(pid) for pid in set(memo.run({}, XS)[0])]
    assert len(workers) == 2
    if ending == "close":
        memo.close()
        _gone, alive = psutil.wait_procs(workers, timeout=20)
        assert not alive
        return
    del memo

    def collected_and_gone() -> bool:
        # The memo is garbage as soon as its run returns (tested below); collecting on
        # each poll keeps this test about the workers, not about when gc runs.
        gc.collect()
        return not psutil.wait_procs(workers, timeout=0.2)[1]

    wait_until(collected_and_gone, 30, "the collected memo's workers to exit")


@pytest.mark.parametrize("executor", ["serial", "process"])
def test_a_memo_is_garbage_as_soon_as_its_run_returns(tmp_path, executor):
    # No thread of the run (the request log's timer included) outlives it holding the memo.
    memo = make(tmp_path, pid_of, executor=executor, max_workers=2)
    assert len(memo.run({}, XS)[0]) == len(XS["x"])
    assert not [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
    ref = weakref.ref(memo)
    del memo
    gc.collect()
    assert ref() is None


def test_workers_ignore_sigterm_and_sigint_and_the_run_completes(tmp_path):
    memo = make(tmp_path, signals_itself, max_workers=2)
    output, diag = memo.run({}, {"x": list(range(8))})
    assert diag.executed_points == 8
    assert os.getpid() not in output
    memo.close()


# ---------------------------------------------------------------------------- point failures


@pytest.mark.parametrize("executor", ["serial", "thread", "process"])
def test_sys_exit_in_exec_fn_is_a_failure_of_its_point(tmp_path, executor):
    memo = make(tmp_path, exits_at_2, max_workers=2, executor=executor)
    with pytest.raises(ExecError) as info:
        memo.run({}, XS)
    assert info.value.point == (2,)
    assert info.value.exc_type == "SystemExit"
    memo.close()


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_keyboard_interrupt_raised_by_exec_fn_in_a_worker_is_a_point_failure(tmp_path, executor):
    memo = make(tmp_path, interrupts_at_2, max_workers=2, executor=executor, on_error="skip")
    output, diag = memo.run({}, XS)
    assert diag.failed_points == [(2,)]
    assert isinstance(output[2], PointFailure)
    assert output[2].exc_type == "KeyboardInterrupt"
    memo.close()


def test_keyboard_interrupt_in_the_drivers_own_thread_stays_an_interrupt(tmp_path):
    memo = make(tmp_path, interrupts_at_2, executor="serial")
    with pytest.raises(KeyboardInterrupt):
        memo.run({}, XS)


@pytest.mark.parametrize("executor", ["process", "user processes", "user threads"])
def test_an_unpicklable_output_is_a_failure_of_its_point(tmp_path, executor):
    pools = {"user processes": ProcessPoolExecutor, "user threads": ThreadPoolExecutor}
    pool = pools[executor](2) if executor in pools else None
    memo = make(tmp_path, lock_at_3, max_workers=2, executor=pool or executor)
    with pytest.raises(ExecError, match=r"cannot be pickled .*at point \(3,\)") as info:
        memo.run({}, XS)
    assert info.value.point == (3,)
    assert "lock" in info.value.exc_message
    memo.close()
    if pool is not None:
        pool.shutdown()


def test_skip_mode_lists_every_unpicklable_output_and_keeps_the_rest():
    outputs = [0, threading.Lock(), 2, lambda: 3, 4]
    codec = DEFAULT_CODEC
    decoded, failed = codec.decode_outcome(codec.encode_outcome(outputs, [], skip_errors=True))
    assert failed == [1, 3]
    assert decoded[0::2] == [0, 2, 4]
    assert all(isinstance(decoded[i], PointFailure) for i in failed)
    assert decoded[3].stage == "pickle"
    decoded, failed = codec.decode_outcome(codec.encode_outcome(outputs, [], skip_errors=False))
    assert failed == [1]
    assert len(decoded) == 2  # evaluation stops at the first failure


def test_a_pool_broken_between_runs_is_replaced_before_the_next_run(tmp_path):
    psutil = pytest.importorskip("psutil")
    memo = make(tmp_path, every_worker(tmp_path / "meet", 2), max_workers=2)
    workers = [psutil.Process(pid) for pid in set(memo.run({"call": 1}, XS)[0])]
    assert len(workers) == 2
    workers[0].kill()  # e.g. the OOM killer, while the pool is idle
    _gone, alive = psutil.wait_procs(workers, timeout=20)  # loky kills the rest
    assert not alive
    output, diag = memo.run({"call": 2}, XS)
    assert diag.executed_points == 6
    assert not set(output) & {w.pid for w in workers}
    memo.close()


# ---------------------------------------------------------------------------- background start


def pool_started(memo: SwarmMemo) -> bool:
    pool = memo.config.backends._process
    return pool is not None and pool._executor is not None


def test_a_run_on_a_new_params_set_starts_its_workers_while_planning(tmp_path, monkeypatch):
    from swarm_memo.run import plan as _plan

    memo = make(tmp_path, pid_of, max_workers=2)
    seen = []
    build = _plan.Grid.build

    def watched_build(*args, **kwargs):
        seen.append(pool_started(memo))
        return build(*args, **kwargs)

    monkeypatch.setattr(_plan.Grid, "build", watched_build)
    pids = memo.run({}, XS)[0]
    assert seen == [True]  # the pool was starting before the grid was planned
    assert os.getpid() not in pids
    memo.close()


def test_reads_and_warm_runs_start_no_workers(tmp_path):
    make(tmp_path, pid_of, max_workers=2).run({}, XS)
    memo = make(tmp_path, pid_of, max_workers=2)
    memo.status({"other": 1}, XS)  # a new params set, but a read
    memo.load({"other": 1}, XS)
    memo.run({}, XS)  # everything stored
    assert not pool_started(memo)
    memo.close()
