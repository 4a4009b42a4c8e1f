"""Nothing is lost and nothing wrong is returned: damaged files, kills, Ctrl-C, races."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from helpers import CountingExec, chunk_files, expected_output, wait_until
from swarm_memo import CacheMissError, CacheWarning, SwarmMemo
from swarm_memo.cache.codec import FORMAT_VERSION, MAGIC

SWEEPER = Path(__file__).parent / "sweeper.py"
SPEC = {"x": list(range(12))}


def make(root: Path, counting: CountingExec, **kwargs) -> SwarmMemo:
    # Processes count calls in their own log files: the same code, other instance state.
    options = {"exec_fn": counting, "max_workers": 1, "verbose": 0, "on_code_change": "ignore"}
    options.update(kwargs)
    return SwarmMemo(root, {"x": 4}, 2, **options)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def garbage(path: Path) -> None:
    path.write_bytes(b"not a chunk at all")


def empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize("damage", [truncate, flip_byte, garbage, empty])
def test_damaged_chunk_is_reported_by_a_read_and_left_in_place(tmp_path, counting, damage):
    memo = make(tmp_path / "cache", counting)
    memo.run({"alpha": 1}, SPEC)
    victim = chunk_files(tmp_path / "cache")[1]
    damage(victim)
    damaged = victim.read_bytes()
    counting.reset()
    with pytest.warns(CacheWarning, match=str(victim.name)):
        output, diag = memo.load({"alpha": 1}, SPEC)
    assert diag.missing_points == 4
    assert len(output) == 8
    assert diag.quarantined_files == 0
    assert victim.read_bytes() == damaged  # a read never moves or rewrites anything
    with pytest.raises(CacheMissError), pytest.warns(CacheWarning):
        memo.load({"alpha": 1}, SPEC, strict=True)
    assert counting.count() == 0


@pytest.mark.parametrize("damage", [truncate, flip_byte, garbage, empty])
@pytest.mark.parametrize("mode", ["run", "run_streaming"])
def test_damaged_chunk_is_quarantined_by_a_run_and_only_it_is_recomputed(
    tmp_path, counting, damage, mode
):
    memo = make(tmp_path / "cache", counting)
    expected, _ = memo.run({"alpha": 1}, SPEC)
    victim = chunk_files(tmp_path / "cache")[1]
    damage(victim)
    counting.reset()
    with pytest.warns(CacheWarning, match=str(victim.name)):
        result = getattr(memo, mode)({"alpha": 1}, SPEC)
    diag = result if mode == "run_streaming" else result[1]
    if mode == "run":
        assert result[0] == expected
    assert counting.count() == 4  # exactly the damaged chunk's points
    assert diag.executed_chunks == 1
    assert memo.load({"alpha": 1}, SPEC, strict=True)[0] == expected
    assert diag.quarantined_files == 1
    quarantined = list((tmp_path / "cache" / ".quarantine").rglob("*"))
    assert any(victim.name in q.name for q in quarantined)  # set aside, not deleted
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        memo.run({"alpha": 1}, SPEC)


@pytest.mark.parametrize("mode", ["run", "load"])
def test_newer_format_file_is_unreadable_here_not_damaged(tmp_path, counting, mode):
    memo = make(tmp_path / "cache", counting)
    expected, _ = memo.run({"alpha": 1}, SPEC)
    victim = chunk_files(tmp_path / "cache")[1]
    data = victim.read_bytes()
    newer = MAGIC + (FORMAT_VERSION + 1).to_bytes(2, "big") + data[len(MAGIC) + 2 :]
    victim.write_bytes(newer)
    counting.reset()
    with pytest.warns(CacheWarning, match="cannot read cache file .* here"):
        output, diag = getattr(memo, mode)({"alpha": 1}, SPEC)
    assert diag.quarantined_files == 0
    assert not (tmp_path / "cache" / ".quarantine").exists()
    if mode == "load":
        assert diag.missing_points == 4
        assert victim.read_bytes() == newer  # a read leaves it exactly as it was
    else:
        assert output == expected
        assert counting.count() == 4


def test_chunk_of_other_params_under_this_name_is_never_served(tmp_path, counting):
    memo = make(tmp_path / "cache", counting)
    memo.run({"alpha": 1}, SPEC)
    memo.run({"alpha": 2}, SPEC)
    mine, theirs = (
        sorted(d.glob("chunks/*.chunk"))
        for d in (tmp_path / "cache").iterdir()
        if d.is_dir() and not d.name.startswith(".")
    )
    mine[0].write_bytes(theirs[0].read_bytes())
    counting.reset()
    with pytest.warns(CacheWarning, match="other params"):
        first, _ = memo.run({"alpha": 1}, SPEC)
    second, _ = memo.run({"alpha": 2}, SPEC)
    assert first == [expected_output({"alpha": 1}, (x,)) for x in range(12)]
    assert second == [expected_output({"alpha": 2}, (x,)) for x in range(12)]
    assert counting.count() == 4


def test_stray_files_are_ignored_and_old_temp_files_cleaned(tmp_path, counting):
    memo = make(tmp_path / "cache", counting)
    memo.run({"alpha": 1}, SPEC)
    chunks_dir = chunk_files(tmp_path / "cache")[0].parent
    strays = [".DS_Store", "backup.chunk~", "notes.txt", "#x.chunk#"]
    for name in strays:
        (chunks_dir / name).write_bytes(b"junk")
    old_temp = chunks_dir / ".abc.chunk.1234.99.tmp"
    fresh_temp = chunks_dir / ".def.chunk.5678.99.tmp"
    for temp in (old_temp, fresh_temp):
        temp.write_bytes(b"half-written")
    os.utime(old_temp, (time.time() - 2 * 3600,) * 2)
    counting.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        _output, diag = memo.run({"alpha": 1}, {"x": list(range(13))})
    assert diag.cached_points == 12
    assert counting.count() == 1
    assert not old_temp.exists()
    assert fresh_temp.exists()  # might belong to a live writer
    assert all((chunks_dir / name).exists() for name in strays)


def test_no_temp_files_are_left_after_a_run(tmp_path, counting):
    make(tmp_path / "cache", counting).run({"alpha": 1}, SPEC)
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def run_sweeper(tmp_path: Path, points: int, sleep: float, workers: int, *extra: str):
    return subprocess.Popen(
        [
            sys.executable,
            str(SWEEPER),
            str(tmp_path / "cache"),
            str(tmp_path / "calls.log"),
            str(points),
            "4",
            str(sleep),
            str(workers),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for_chunks(root: Path, count: int, timeout: float = 60) -> None:
    wait_until(lambda: len(chunk_files(root)) >= count, timeout, f"{count} chunk files")


def rerun_counts(tmp_path: Path, points: int) -> tuple[int, CountingExec]:
    counting = CountingExec(tmp_path / "rerun.log")
    memo = SwarmMemo(
        tmp_path / "cache",
        {"x": 4},
        1,
        exec_fn=counting,
        max_workers=1,
        verbose=0,
        on_code_change="ignore",  # the sweep's processes logged calls to other files
    )
    output, diag = memo.run({"alpha": 1}, {"x": list(range(points))})
    assert output == [expected_output({"alpha": 1}, (x,)) for x in range(points)]
    return diag.cached_chunks, counting


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_mid_run_keeps_every_finished_chunk(tmp_path, workers):
    proc = run_sweeper(tmp_path, 200, 0.01, workers)
    wait_for_chunks(tmp_path / "cache", 3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    stored = chunk_files(tmp_path / "cache")
    cached_chunks, counting = rerun_counts(tmp_path, 200)
    assert cached_chunks >= len(stored) >= 3
    assert counting.count() == 200 - 4 * cached_chunks


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_keeps_finished_chunks_and_stops_the_workers(tmp_path, workers):
    psutil = pytest.importorskip("psutil")
    proc = run_sweeper(tmp_path, 400, 0.01, workers)
    wait_for_chunks(tmp_path / "cache", 3)
    children = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in stderr
    _gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"orphan worker processes: {alive}"
    # Every finished point is stored: whole chunks, and partial chunks for the points of
    # chunks left unfinished; the next run computes exactly the rest.
    probe = make(tmp_path / "cache", CountingExec(tmp_path / "probe.log"))
    stored = probe.status({"alpha": 1}, {"x": list(range(400))}).cached_points
    assert stored >= 12
    _, counting = rerun_counts(tmp_path, 400)
    assert counting.count() == 400 - stored


def wait_until_ready(procs: list[subprocess.Popen[str]], barriers: list[Path]) -> None:
    """Wait until every sweeper built its memo and waits at its barrier."""
    deadline = time.monotonic() + 60
    for proc, barrier in zip(procs, barriers, strict=True):
        while not Path(f"{barrier}.ready").exists():
            if proc.poll() is not None:
                pytest.fail(f"sweeper exited before its barrier: {proc.communicate()[1]}")
            assert time.monotonic() < deadline, "sweeper never reached its barrier"
            time.sleep(0.01)


def release(barrier: Path) -> None:
    Path(f"{barrier}.go").touch()


@pytest.mark.parametrize("head_start", [0, 3])
def test_two_processes_on_one_cache_share_the_work(tmp_path, head_start):
    """Two sweeps of one grid on one cache, started together (or the second once the
    first has written ``head_start`` chunks): every point is computed exactly once in
    all, both return every output, and the second never redoes a chunk written before it
    started. How the work splits between them is left to timing, so it is not asserted."""
    points = 120
    barriers = [tmp_path / "first", tmp_path / "second"]
    procs = [run_sweeper(tmp_path, points, 0.03, 2, f"--barrier={b}") for b in barriers]
    try:
        wait_until_ready(procs, barriers)
        release(barriers[0])
        if head_start:
            wait_for_chunks(tmp_path / "cache", head_start)
        release(barriers[1])
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
    for proc, (stdout, stderr) in zip(procs, results, strict=True):
        assert proc.returncode == 0, stderr  # each checked its output against the oracle
        assert stdout.startswith("DONE")
    executed, cached = zip(*((int(n) for n in out.split()[1:3]) for out, _ in results), strict=True)
    calls = CountingExec(tmp_path / "calls.log").counter()
    assert set(calls) == {repr((x,)) for x in range(points)}
    assert set(calls.values()) == {1}, "some points were computed by both processes"
    assert sum(executed) == points
    assert cached[1] >= 4 * head_start  # chunks written before it started were loaded
    cached_chunks, counting = rerun_counts(tmp_path, points)
    assert cached_chunks == points // 4
    assert counting.count() == 0


def test_claim_of_a_killed_process_is_taken_over(tmp_path, counting):
    from swarm_memo.cache.claims import claim_offset
    from swarm_memo.run.cells import chunk_claim_names
    from swarm_memo.run.plan import Access, plan_run

    memo = make(tmp_path / "cache", counting)
    plan = plan_run(memo.config, {"alpha": 1}, SPEC, access=Access.READ)
    lock = tmp_path / "cache" / plan.pset.set_id / "claims.lock"
    lock.parent.mkdir(parents=True)
    offsets = [claim_offset(chunk_claim_names(plan, n)[0]) for _, n in plan.named_chunks]
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "for offset in sys.argv[2:]:\n"
            "    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, int(offset))\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
            str(lock),
            *map(str, offsets),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    from swarm_memo.cache.claims import Claims

    probe = Claims(str(lock))
    first = chunk_claim_names(plan, plan.named_chunks[0][1])[0]
    assert not probe.try_claim(first)  # the live holder's claim counts
    probe.release_all()
    holder.kill()  # dies holding every claim
    holder.communicate(timeout=10)
    _, diag = memo.run({"alpha": 1}, SPEC)
    assert diag.executed_points == 12
    assert counting.count() == 12


def test_chunk_claimed_by_a_live_process_is_loaded_once_it_is_written(tmp_path, counting):
    from swarm_memo.cache.claims import claim_offset
    from swarm_memo.run.cells import chunk_claim_names
    from swarm_memo.run.plan import Access, plan_run

    memo = make(tmp_path / "cache", counting)
    plan = plan_run(memo.config, {"alpha": 1}, SPEC, access=Access.READ)
    lock = tmp_path / "cache" / plan.pset.set_id / "claims.lock"
    lock.parent.mkdir(parents=True)
    # Another process claims chunk 0, then computes and writes it, then exits.
    script = (
        "import fcntl, os, sys, time\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from helpers import CountingExec\n"
        "from swarm_memo import SwarmMemo\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, int(sys.argv[2]))\n"
        "print('held', flush=True)\n"
        "time.sleep(0.5)\n"
        "memo = SwarmMemo(sys.argv[3], {'x': 4}, 2, exec_fn=CountingExec(sys.argv[4]),\n"
        "                 max_workers=1, verbose=0, on_code_change='ignore')\n"
        "memo.run({'alpha': 1}, {'x': [0, 1, 2, 3]})\n"
    )
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            script,
            str(lock),
            str(claim_offset(chunk_claim_names(plan, plan.named_chunks[0][1])[0])),
            str(tmp_path / "cache"),
            str(tmp_path / "other.log"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    output, diag = memo.run({"alpha": 1}, SPEC)
    holder.communicate(timeout=30)
    assert holder.returncode == 0
    assert output == [expected_output({"alpha": 1}, (x,)) for x in range(12)]
    assert sorted(counting.calls()) == sorted(repr((x,)) for x in range(4, 12))
    assert CountingExec(tmp_path / "other.log").count() == 4
    assert diag.cached_chunks == 1


def test_chunks_written_by_another_process_after_listing_are_loaded(tmp_path, monkeypatch):
    """A run lists the cache, then is slow to start (say its pool spawns) while another
    process writes chunks without ever holding a claim this run sees: they are loaded."""
    from swarm_memo.cache.params_set import ParamsSet

    counting = CountingExec(tmp_path / "calls.log")
    make(tmp_path / "cache", counting).run({"alpha": 1}, SPEC)  # "the other process"
    counting.reset()
    real = ParamsSet.stored_names
    listings = []

    def stale_first_listing(self):
        listings.append(1)
        return set() if len(listings) == 1 else real(self)

    monkeypatch.setattr(ParamsSet, "stored_names", stale_first_listing)
    output, diag = make(tmp_path / "cache", counting).run({"alpha": 1}, SPEC)
    assert output == [expected_output({"alpha": 1}, (x,)) for x in range(12)]
    assert counting.count() == 0
    assert diag.cached_chunks == 3
    assert diag.stream_flushes == 0
