"""The execution engine: executors, pool reuse, bounded window, failures, progress."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers import CountingExec, chunk_files, expected_output
from swarm_memo import CodeChangedWarning, ExecError, RunInterrupted, SwarmMemo, WorkerDiedError
from swarm_memo.execution.window import MAX_IN_FLIGHT_PER_WORKER, Window

SPEC = {"x": list(range(20))}


def pid_of(params, point):
    return os.getpid()


def die_at_13(params, point):
    if point == (13,):
        os._exit(3)
    return point[0]


def chunk_count(root: Path) -> int:
    return len(chunk_files(root))


@pytest.mark.parametrize("executor", ["serial", "thread", "process"])
def test_every_named_executor_gives_the_same_output(tmp_path, executor):
    counting = CountingExec(tmp_path / "calls.log")
    memo = SwarmMemo(
        tmp_path / "c", {"x": 3}, 2, exec_fn=counting, max_workers=2, executor=executor, verbose=0
    )
    output, diag = memo.run({"alpha": 1}, SPEC)
    assert output == [expected_output({"alpha": 1}, (x,)) for x in range(20)]
    assert counting.count() == 20
    assert diag.exec_chunks == 10
    memo.close()


@pytest.mark.parametrize("pool_type", [ThreadPoolExecutor, ProcessPoolExecutor])
def test_a_user_executor_is_used_and_never_shut_down(tmp_path, pool_type):
    counting = CountingExec(tmp_path / "calls.log")
    with pool_type(2) as pool:
        memo = SwarmMemo(tmp_path / "c", {"x": 4}, 3, exec_fn=counting, executor=pool, verbose=0)
        output, _ = memo.run({}, SPEC)
        assert output == [expected_output({}, (x,)) for x in range(20)]
        assert pool.submit(sum, [1, 2]).result() == 3  # still alive
    assert counting.count() == 20


def test_process_pool_is_reused_across_runs(tmp_path):
    psutil = pytest.importorskip("psutil")
    memo = SwarmMemo(tmp_path, {"x": 1}, 1, exec_fn=pid_of, max_workers=2, verbose=0)
    first, _ = memo.run({"run": 1}, {"x": list(range(8))})
    pool = {child.pid for child in psutil.Process().children(recursive=True)}
    second, _ = memo.run({"run": 2}, {"x": list(range(8))})
    assert os.getpid() not in first
    assert set(first) | set(second) <= pool  # the same worker processes served both runs
    memo.close()


def test_in_flight_exec_chunks_stay_within_the_window(tmp_path):
    memo = SwarmMemo(tmp_path, {"x": 10}, 5, exec_fn=pid_of, max_workers=2, verbose=0)
    diag = memo.run_streaming({}, {"x": list(range(1000))})
    limit = MAX_IN_FLIGHT_PER_WORKER * 2
    assert 4 <= diag.max_in_flight <= limit  # two per worker, grown while workers starve
    assert diag.exec_chunks == 200
    assert diag.stream_flushes == 100
    # Memory: only the window's points plus the unfinished chunks, not the grid.
    assert diag.max_stream_buffer <= limit * 5 + 10


def test_a_memos_next_run_starts_with_the_window_its_last_run_grew_to(tmp_path):
    memo = SwarmMemo(tmp_path, {"x": 10}, 1, exec_fn=pid_of, max_workers=2, verbose=0)
    first = memo.run_streaming({"run": 1}, {"x": list(range(400))})
    assert first.max_in_flight >= 8  # one-point exec chunks: workers starved, it grew
    second = memo.run_streaming({"run": 2}, {"x": list(range(8))})
    # All 8 exec chunks go at once (a run that started from 2 per worker would hold 4 and
    # grow only once each worker has finished two): short runs keep the workers fed.
    assert second.max_in_flight == 8
    memo.close()


def test_the_window_grows_only_while_workers_wait_between_exec_chunks():
    window = Window(workers=2, per_worker=2)
    assert window.size == 4
    window.observe("w1", 0.0, 1.0, fed=True)  # a worker's first exec chunk: no gap yet
    window.observe("w1", 1.001, 2.0, fed=True)  # waited 1 ms for a 1 s exec chunk: fed
    assert window.size == 4
    window.observe("w1", 2.5, 3.0, fed=False)  # waited, but there was nothing to send
    assert window.size == 4
    window.observe("w1", 3.5, 4.0, fed=True)  # starved while work was queued
    assert window.size == 5
    for step in range(100):
        window.observe("w2", 10.0 * step, 10.0 * step + 1, fed=True)
    assert window.size == window.limit == MAX_IN_FLIGHT_PER_WORKER * 2


def test_max_workers_one_runs_in_process(tmp_path):
    memo = SwarmMemo(tmp_path, {"x": 5}, 2, exec_fn=pid_of, max_workers=1, verbose=0)
    output, _ = memo.run({}, {"x": [1, 2, 3]})
    assert set(output) == {os.getpid()}


@pytest.mark.parametrize("max_workers", [1, 2])
def test_exec_error_names_point_params_and_original_exception(tmp_path, max_workers):
    counting = CountingExec(tmp_path / "calls.log", fail_on=(15,))
    memo = SwarmMemo(
        tmp_path / "c", {"x": 5}, 1, exec_fn=counting, max_workers=max_workers, verbose=0,
        on_code_change="ignore",  # fail_on is part of the exec_fn's state, changed below
    )  # fmt: skip
    with pytest.raises(ExecError) as info:
        memo.run({"alpha": 9}, SPEC)
    error = info.value
    assert error.point == (15,)
    assert error.exc_type == "ValueError"
    assert "boom at (15,)" in str(error)
    assert "{'alpha': 9}" in str(error)
    assert "ValueError: boom" in error.worker_traceback
    # chunks 0-4, 5-9, 10-14 finished first; points of 15-19 that finished in flight are
    # stored as a partial chunk
    assert chunk_count(tmp_path / "c") in (3, 4)
    first = set(counting.calls())
    counting.fail_on = None
    counting.reset()
    _, diag = memo.run({"alpha": 9}, SPEC)
    second = set(counting.calls())
    assert "(15,)" in second
    assert first & second == {"(15,)"}  # a finished point is never computed again
    assert first | second == {repr((x,)) for x in range(20)}
    assert diag.cached_chunks == 3


def test_on_error_skip_completes_the_rest_and_lists_failures(tmp_path):
    counting = CountingExec(tmp_path / "calls.log", fail_on=(7,))
    memo = SwarmMemo(
        tmp_path / "c", {"x": 5}, 2, exec_fn=counting, max_workers=2, verbose=0, on_error="skip",
        on_code_change="ignore",  # fail_on is part of the exec_fn's state, changed below
    )  # fmt: skip
    output, diag = memo.run({}, SPEC)
    assert diag.failed_points == [(7,)]
    assert output[7].exc_type == "ValueError"
    assert output[6] == expected_output({}, (6,))
    assert chunk_count(tmp_path / "c") == 4  # the chunk holding (7,) is stored partially
    counting.fail_on = None
    counting.reset()
    output, diag = memo.run({}, SPEC)
    assert output[7] == expected_output({}, (7,))
    assert diag.failed_points == []
    assert counting.calls() == ["(7,)"]  # only the failed point runs again


def test_worker_death_is_a_clear_error_and_keeps_finished_chunks(tmp_path):
    memo = SwarmMemo(tmp_path, {"x": 4}, 2, exec_fn=die_at_13, max_workers=2, verbose=0)
    with pytest.raises(WorkerDiedError) as info:
        memo.run({}, SPEC)
    assert (13,) in info.value.points
    assert "(13,)" in str(info.value)
    assert chunk_count(tmp_path) >= 2  # chunks 0-3 and 4-7 completed before point 13
    stored = memo.status({}, SPEC).cached_points  # partial chunks included
    memo.exec_fn = pid_of
    with pytest.warns(CodeChangedWarning):  # the finished chunks came from die_at_13
        _output, diag = memo.run({}, SPEC)  # the pool is replaced; the next run works
    assert diag.cached_points == stored >= 8
    assert diag.executed_points == 20 - stored


def test_progress_bar_counts_points_and_stays_silent_when_nothing_runs(tmp_path, capsys):
    memo = SwarmMemo(tmp_path, {"x": 5}, 5, exec_fn=pid_of, max_workers=1, verbose=1)
    memo.run({}, SPEC)
    err = capsys.readouterr().err
    assert "swarm-memo: 20/20 points (100%)" in err
    assert "\r" not in err  # stderr is not a terminal here: plain lines, no redraws
    assert "20 points in 4 chunks: 0 cached, 20 executed" in err
    memo.run({}, SPEC)
    err = capsys.readouterr().err
    assert "20/20" not in err
    assert "20 cached, 0 executed" in err
    SwarmMemo(tmp_path, {"x": 5}, 5, exec_fn=pid_of, max_workers=1, verbose=0).run({}, SPEC)
    assert capsys.readouterr().err == ""


def test_progress_starts_at_the_cached_points(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    memo = SwarmMemo(tmp_path, {"x": 5}, 5, exec_fn=pid_of, max_workers=1, verbose=1)
    memo.run({}, {"x": list(range(10))})
    capsys.readouterr()
    memo.run({}, SPEC)
    err = capsys.readouterr().err
    assert "10/20" in err
    assert "20/20" in err


def uses_big_params(params, point):
    return len(params["table"]) + point[0]


def test_big_params_reach_process_workers_through_a_file_once_per_run(tmp_path, monkeypatch):
    import tempfile

    from swarm_memo.execution import backends as _backends

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    shared = []
    original_share = _backends._LocalBlobs.share

    def spy(self, blob):
        shared.append(original_share(self, blob))
        return shared[-1]

    monkeypatch.setattr(_backends._LocalBlobs, "share", spy)
    memo = SwarmMemo(tmp_path / "c", {"x": 2}, 1, exec_fn=uses_big_params, max_workers=2, verbose=0)
    table = list(range(100_000))  # pickles to far more than the inline limit
    output, diag = memo.run({"table": table}, {"x": [1, 2, 3, 4]})
    assert output == [100_001, 100_002, 100_003, 100_004]
    assert diag.exec_chunks == 4
    assert len(shared) == 1
    assert isinstance(shared[0], _backends.BlobFile)
    assert not list((tmp_path / "tmp").iterdir())  # the payload file is gone after the run


def test_verbose_two_prints_each_chunk_written_without_logging_config(tmp_path, capsys):
    memo = SwarmMemo(tmp_path, {"x": 5}, 5, exec_fn=pid_of, max_workers=1, verbose=2)
    memo.run({}, SPEC)
    written = [line for line in capsys.readouterr().err.splitlines() if "wrote chunk" in line]
    assert len(written) == 4


def test_fully_reused_chunks_are_handed_on_without_reading_ahead():
    """A rebinned stream serves whole chunks from other files: the engine must pass each
    on at once instead of pulling the whole request into memory first."""
    from swarm_memo.core.diagnostics import Diagnostics
    from swarm_memo.core.jobs import ChunkJob
    from swarm_memo.execution.scheduler import Engine, ExecPlan

    pulled = []

    def jobs():
        for index in range(1000):
            pulled.append(index)
            yield ChunkJob(index, f"c{index}", [(index,)], [index], [], reused=1)

    engine = Engine(lambda: None, ExecPlan(pid_of, {}, 1, False), Diagnostics())
    stream = engine.run(jobs())
    first = next(stream)
    assert first.index == 0
    assert len(pulled) == 1
    assert [job.index for job in stream] == list(range(1, 1000))


def test_writer_threads_are_kept_across_runs(tmp_path):
    import threading

    memo = SwarmMemo(tmp_path, {"x": 1}, 1, exec_fn=pid_of, max_workers=1, verbose=0)
    seen = []
    for call in range(5):
        memo.run({"call": call}, {"x": [1, 2, 3]})
        seen.append({t.ident for t in threading.enumerate() if "swarm-memo-writer" in t.name})
    assert 1 <= len(seen[0]) <= 4
    assert all(threads == seen[0] or threads >= seen[0] for threads in seen)
    assert len(set().union(*seen)) <= 4


def test_garbage_collection_is_back_on_after_a_run_even_a_failing_one(tmp_path):
    import gc

    memo = SwarmMemo(tmp_path, {"x": 4}, 2, exec_fn=die_at_13, max_workers=2, verbose=0)
    with pytest.raises(WorkerDiedError):
        memo.run({}, SPEC)
    assert gc.isenabled()
    memo.close()


def test_an_exec_fn_that_cannot_be_sent_to_workers_is_a_clear_error(tmp_path):
    import threading

    from swarm_memo import SpecTypeError

    lock = threading.Lock()

    def locked(params, point):
        with lock:
            return point[0]

    memo = SwarmMemo(tmp_path, {"x": 2}, 2, exec_fn=locked, max_workers=2, verbose=0)
    with pytest.raises(SpecTypeError, match=r"exec_fn .*locked.* cannot be sent"):
        memo.run({}, {"x": [1, 2, 3]})
    assert chunk_count(tmp_path) == 0
    threads = SwarmMemo(tmp_path, {"x": 2}, 2, exec_fn=locked, executor="thread", verbose=0)
    assert threads.run({}, {"x": [1, 2, 3]})[0] == [1, 2, 3]


class BreaksAtSubmit(ThreadPoolExecutor):
    """A user executor whose pool breaks after a few exec chunks were sent."""

    def __init__(self, works: int) -> None:
        super().__init__(2)
        self.works = works

    def submit(self, fn, /, *args, **kwargs):
        from concurrent.futures import BrokenExecutor

        if self.works == 0:
            raise BrokenExecutor("the pool broke")
        self.works -= 1
        return super().submit(fn, *args, **kwargs)


def test_a_pool_broken_at_submit_keeps_every_finished_point(tmp_path, counting):
    broken = BreaksAtSubmit(works=3)
    memo = SwarmMemo(tmp_path, {"x": 2}, 2, exec_fn=counting, executor=broken, verbose=0)
    with pytest.raises(WorkerDiedError, match="the pool broke"):
        memo.run({}, SPEC)
    computed = set(counting.calls())
    assert len(computed) == 6  # three exec chunks of two points went through
    counting.reset()
    healthy = SwarmMemo(tmp_path, {"x": 2}, 2, exec_fn=counting, max_workers=1, verbose=0)
    output, _ = healthy.run({}, SPEC)
    assert output == [expected_output({}, (x,)) for x in range(20)]
    assert set(counting.calls()).isdisjoint(computed)
    broken.shutdown()


def test_a_run_of_tiny_chunks_holds_a_bounded_number_of_claims(tmp_path, monkeypatch):
    from swarm_memo.cache.claims import Claims
    from swarm_memo.run import pipeline as _pipeline

    monkeypatch.setattr(_pipeline, "CLAIMS_AHEAD", 16)
    most = []
    real = Claims.try_claim

    def spy(self, name):
        most.append(self.held)
        return real(self, name)

    monkeypatch.setattr(Claims, "try_claim", spy)
    memo = SwarmMemo(tmp_path, {"x": 1}, 4, exec_fn=pid_of, executor="thread", max_workers=2,
                     verbose=0)  # fmt: skip
    output, diag = memo.run({}, {"x": list(range(400))})
    assert len(output) == 400
    assert diag.executed_points == 400
    assert max(most) <= 16  # one-point chunks: without the bound, the whole window


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, RunInterrupted])
def test_an_inline_write_a_second_signal_interrupts_is_written_by_finish(interrupt):
    from swarm_memo.execution.writer import ChunkWriter

    writer = ChunkWriter(background=False)
    attempts: list[int] = []
    done: list[str] = []

    def write() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise interrupt("a second Ctrl-C")  # lands inside the write
        return "stored"

    with pytest.raises(interrupt):
        writer.submit(write, done.append)
    assert done == []
    writer.finish(raising=False)  # what a run does on its way out
    assert (len(attempts), done) == (2, ["stored"])


def test_an_inline_write_that_fails_surfaces_like_a_threads_failure():
    from swarm_memo.execution.writer import ChunkWriter

    writer = ChunkWriter(background=False)
    done: list[str] = []
    writer.submit(lambda: "first", done.append)

    def disk_full() -> str:
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space"):
        writer.submit(disk_full, done.append)
    writer.finish()
    assert done == ["first"]
