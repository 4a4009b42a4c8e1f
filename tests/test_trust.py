"""The cache never gives a wrong, partial or stale answer without saying so, and reads never
write. Each test is named after a behaviour that failed before it was fixed."""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

import pytest

import swarm_memo
from helpers import CountingExec, chunk_files, expected_output
from swarm_memo import (
    CacheMissError,
    CacheWarning,
    CodeChangedWarning,
    SwarmMemo,
)
from swarm_memo.cache import params_set as cache_module


def memo_at(root: Path, counting, **kwargs) -> SwarmMemo:
    options = {"exec_fn": counting, "max_workers": 1, "verbose": 0}
    options.update(kwargs)
    return SwarmMemo(root, {"x": 2}, 2, **options)


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file and folder under root: size, mtime and a digest of the content."""
    state = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        content = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        state[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns, content)
    return state


# ---------------------------------------------------------------- wrong or partial answers


def test_enumerated_float_point_is_never_served_the_output_of_the_equal_int_point(
    tmp_path, counting
):
    ints = memo_at(tmp_path, counting, enumerate_points=lambda p, c: [(int(x),) for x in c["x"]])
    ints.run({}, {"x": [1, 2]})
    floats = memo_at(
        tmp_path, counting, enumerate_points=lambda p, c: [(float(x),) for x in c["x"]]
    )
    counting.reset()
    output, diag = floats.run({}, {"x": [1, 2]})
    assert output == [expected_output({}, (1.0,)), expected_output({}, (2.0,))]
    assert sorted(counting.calls()) == ["(1.0,)", "(2.0,)"]
    assert diag.cached_points == 0


def test_status_and_strict_load_see_points_a_changed_enumerator_adds(tmp_path, counting):
    def two(params, chunk):
        return [(x, 0) for x in chunk["x"]]

    def four(params, chunk):
        return [(x, k) for x in chunk["x"] for k in (0, 1)]

    memo_at(tmp_path, counting, enumerate_points=two).run({}, {"x": [1, 2]})
    grown = memo_at(tmp_path, counting, enumerate_points=four)
    status = grown.status({}, {"x": [1, 2]})
    assert (status.total_points, status.cached_points, status.missing_points) == (4, 2, 2)
    with pytest.raises(CacheMissError) as info:
        grown.load({}, {"x": [1, 2]}, strict=True)
    assert info.value.missing_points == 2
    output, diag = grown.load({}, {"x": [1, 2]})
    assert output == [expected_output({}, (1, 0)), expected_output({}, (2, 0))]
    assert diag.missing_points == 2
    counting.reset()
    grown.run({}, {"x": [1, 2]})
    assert sorted(counting.calls()) == ["(1, 1)", "(2, 1)"]


# ---------------------------------------------------------------- function identity


def test_two_wrapped_lambdas_never_read_each_others_results(tmp_path):
    memo = SwarmMemo(tmp_path, {"x": 2}, 2, max_workers=1, verbose=0)
    double = memo.run_wrap()(lambda params, point: point[0] * 2)
    square = memo.run_wrap()(lambda params, point: point[0] ** 2)
    assert double({}, split_spec={"x": [3, 4]})[0] == [6, 8]
    assert square({}, split_spec={"x": [3, 4]})[0] == [9, 16]


def test_closures_from_one_factory_never_read_each_others_results(tmp_path):
    memo = SwarmMemo(tmp_path, {"x": 2}, 2, max_workers=1, verbose=0)

    def scale(k):
        return lambda params, point: point[0] * k

    by_ten = memo.run_wrap()(scale(10))
    by_hundred = memo.run_wrap()(scale(100))
    assert by_ten({}, split_spec={"x": [1, 2]})[0] == [10, 20]
    assert by_hundred({}, split_spec={"x": [1, 2]})[0] == [100, 200]


SOURCE = textwrap.dedent(
    """
    def measure(params, point):
        return point[0] + 0.5
    """
)


def test_wrapped_function_shares_results_between_a_script_and_an_import(tmp_path):
    """The same function run as ``python sweep.py`` (module ``__main__``) and imported from a
    notebook (module ``sweep``) reads the same results."""
    memo = SwarmMemo(tmp_path, {"x": 2}, 2, max_workers=1, verbose=0)
    as_script: dict = {"__name__": "__main__"}
    as_module: dict = {"__name__": "sweep"}
    exec(compile(SOURCE, "/somewhere/sweep.py", "exec"), as_script)
    exec(compile("\n\n\n" + SOURCE, "<notebook>", "exec"), as_module)
    _, first = memo.run_wrap()(as_script["measure"])({}, split_spec={"x": [1, 2, 3]})
    _, second = memo.run_wrap()(as_module["measure"])({}, split_spec={"x": [1, 2, 3]})
    assert first.executed_points == 3
    assert second.cached_points == 3


def version_one(params, point):
    return point[0]


def version_two(params, point):  # the bug fix: a changed function
    return point[0] + 1


def test_changed_exec_fn_warns_once_and_reuses_by_default(tmp_path):
    SwarmMemo(tmp_path, {"x": 2}, 2, exec_fn=version_one, max_workers=1, verbose=0).run(
        {}, {"x": [1, 2, 3]}
    )
    changed = SwarmMemo(tmp_path, {"x": 2}, 2, exec_fn=version_two, max_workers=1, verbose=0)
    with pytest.warns(CodeChangedWarning, match="version_two") as record:
        output, diag = changed.run({}, {"x": [1, 2, 3]})
    assert len([w for w in record if issubclass(w.category, CodeChangedWarning)]) == 1
    assert output == [1, 2, 3]  # the stored results, as the warning says
    assert diag.executed_points == 0


def test_on_code_change_recompute_treats_results_of_other_code_as_missing(tmp_path):
    SwarmMemo(tmp_path, {"x": 2}, 2, exec_fn=version_one, max_workers=1, verbose=0).run(
        {}, {"x": [1, 2, 3]}
    )
    fixed = SwarmMemo(
        tmp_path,
        {"x": 2},
        2,
        exec_fn=version_two,
        max_workers=1,
        verbose=0,
        on_code_change="recompute",
    )
    assert fixed.status({}, {"x": [1, 2, 3]}).missing_points == 3
    output, diag = fixed.run({}, {"x": [1, 2, 3]})
    assert output == [2, 3, 4]
    assert diag.executed_points == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # results of the current code match: no warning
        again = SwarmMemo(tmp_path, {"x": 2}, 2, exec_fn=version_two, max_workers=1, verbose=0)
        assert again.run({}, {"x": [1, 2, 3]})[0] == output


def test_on_code_change_ignore_reuses_silently(tmp_path):
    SwarmMemo(tmp_path, {"x": 2}, 2, exec_fn=version_one, max_workers=1, verbose=0).run(
        {}, {"x": [1]}
    )
    ignoring = SwarmMemo(
        tmp_path, {"x": 2}, 2, exec_fn=version_two, max_workers=1, verbose=0,
        on_code_change="ignore",
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ignoring.run({}, {"x": [1]})[0] == [1]


# ---------------------------------------------------------------- reads never write


def test_load_and_status_never_create_move_or_rewrite_anything(tmp_path, counting):
    from swarm_memo.cache import index as _index

    memo = memo_at(tmp_path, counting)
    for k in range(_index.FOLD_ABOVE + 3):  # one index segment per run: more than a fold
        memo.run({}, {"x": [k]})
    values = list(range(_index.FOLD_ABOVE + 3))
    victim = chunk_files(tmp_path)[0]
    victim.write_bytes(victim.read_bytes()[:-5])  # damaged
    for index_file in sorted(tmp_path.glob("*/index/*.idx"))[:3]:
        index_file.unlink()  # records a run would rebuild
    before = snapshot(tmp_path)
    rebinned = SwarmMemo(tmp_path, {"x": 5}, 2, exec_fn=counting, max_workers=1, verbose=0)
    with pytest.warns(CacheWarning):
        status = rebinned.status({}, {"x": values})
    with pytest.warns(CacheWarning):
        _, diag = rebinned.load({}, {"x": values})
    assert status.missing_points == diag.missing_points == 1
    assert snapshot(tmp_path) == before
    assert counting.count() == len(values)


WRITER = textwrap.dedent(
    """
    import sys
    from dataclasses import dataclass
    from swarm_memo import SwarmMemo

    @dataclass
    class Result:
        value: int

    def compute(params, point):
        return Result(point[0])

    memo = SwarmMemo(sys.argv[1], {"x": 2}, 2, exec_fn=compute, max_workers=1, verbose=0)
    memo.run({}, {"x": [1, 2, 3, 4]})
    """
)


def test_outputs_of_a_class_missing_here_are_unreadable_not_quarantined(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, str(script), str(tmp_path / "cache")], check=True, env=env)
    files = chunk_files(tmp_path / "cache")
    before = snapshot(tmp_path / "cache")
    reader = SwarmMemo(tmp_path / "cache", {"x": 2}, 2, max_workers=1, verbose=0)
    with pytest.warns(CacheWarning, match="cannot read cache file"):
        _, diag = reader.load({}, {"x": [1, 2, 3, 4]})
    assert diag.missing_points == 4
    assert diag.quarantined_files == 0
    assert snapshot(tmp_path / "cache") == before
    assert all(f.exists() for f in files)


def test_quarantine_leaves_a_file_another_process_replaced_meanwhile(
    tmp_path, counting, monkeypatch
):
    memo = memo_at(tmp_path, counting)
    memo.run({}, {"x": [1, 2]})
    (victim,) = chunk_files(tmp_path)
    good = victim.read_bytes()
    victim.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))  # this run reads a damaged copy
    real_decode = cache_module.decode_chunk

    def racing_decode(data, *codec):
        # While this run decodes the damaged copy, another process writes the file anew.
        fresh = victim.with_name("fresh.tmp")
        fresh.write_bytes(good)
        os.replace(fresh, victim)
        monkeypatch.setattr(cache_module, "decode_chunk", real_decode)
        return real_decode(data, *codec)

    monkeypatch.setattr(cache_module, "decode_chunk", racing_decode)
    memo.run({}, {"x": [1, 2]})
    assert victim.exists()  # still in place: it was not the damaged one
    assert not (tmp_path / ".quarantine").exists()


# ---------------------------------------------------------------- side effects of exec_fn


def grow_params(params, point):
    params["seen"].append(point)
    params["new"] = True
    return point[0]


@pytest.mark.parametrize("executor", ["serial", "thread"])
def test_exec_fn_mutating_params_changes_neither_the_callers_dict_nor_the_keys(tmp_path, executor):
    memo = SwarmMemo(tmp_path, {"x": 2}, 2, exec_fn=grow_params, verbose=0, executor=executor)
    params = {"seen": []}
    memo.run(params, {"x": [1, 2, 3]})
    assert params == {"seen": []}
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # nothing quarantined
        _, diag = memo.run(params, {"x": [1, 2, 3]})
    assert diag.executed_points == 0


def test_two_runs_in_threads_of_one_process_compute_each_point_once(tmp_path):
    counting = CountingExec(tmp_path / "calls.log", sleep=0.01)
    memo = SwarmMemo(tmp_path / "cache", {"x": 1}, 1, exec_fn=counting, max_workers=1, verbose=0)
    spec = {"x": list(range(24))}
    start = threading.Barrier(2)
    outputs: list = []

    def run() -> None:
        start.wait()
        outputs.append(memo.run({}, spec)[0])

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outputs[0] == outputs[1] == [expected_output({}, (x,)) for x in spec["x"]]
    assert sorted(counting.counter().values()) == [1] * 24


def test_chunk_files_do_not_grow_with_the_params(tmp_path, counting):
    memo = memo_at(tmp_path, counting)
    table = list(range(100_000))
    memo.run({"table": table}, {"x": [1, 2, 3, 4]})
    sizes = [p.stat().st_size for p in chunk_files(tmp_path)]
    assert len(sizes) == 2
    assert max(sizes) < 4096 < len(pickle.dumps(table))


def test_params_description_is_plain_json_for_humans(tmp_path, counting):
    memo_at(tmp_path, counting).run({"alpha": 0.5, "path": Path("/x")}, {"x": [1]})
    (description,) = tmp_path.glob("*/params.json")
    text = description.read_text()
    assert '"alpha": 0.5' in text
    assert "PosixPath('/x')" in text or "WindowsPath" in text


# ---------------------------------------------------------------- conveniences


def worker_pid(params, point):
    return os.getpid()


def test_memo_is_a_context_manager_that_closes_its_pools(tmp_path):
    psutil = pytest.importorskip("psutil")
    with SwarmMemo(tmp_path, {"x": 1}, 1, exec_fn=worker_pid, max_workers=2, verbose=0) as memo:
        pids = set(memo.run({}, {"x": list(range(8))})[0])
    assert os.getpid() not in pids
    _gone, alive = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], 10)
    assert not alive


def test_memo_pickles_and_its_copy_serves_the_same_cache(tmp_path, counting):
    memo = memo_at(tmp_path, counting)
    memo.run({}, {"x": [1, 2, 3]})
    copy = pickle.loads(pickle.dumps(memo))
    output, diag = copy.run({}, {"x": [1, 2, 3]})
    assert output == [expected_output({}, (x,)) for x in (1, 2, 3)]
    assert diag.executed_points == 0


def test_wrapped_function_has_status_load_and_to_dataframe(tmp_path):
    pytest.importorskip("pandas")
    memo = SwarmMemo(tmp_path, {"x": 2}, 2, max_workers=1, verbose=0)

    @memo.run_wrap()
    def scaled(params, point, factor=2):
        return point[0] * factor

    assert scaled.status({}, split_spec={"x": [1, 2]}, factor=3).missing_points == 2
    scaled({}, split_spec={"x": [1, 2]}, factor=3)
    assert scaled.status({}, split_spec={"x": [1, 2]}, factor=3).complete
    assert scaled.status({}, split_spec={"x": [1, 2]}).missing_points == 2  # factor=2
    assert scaled.load({}, split_spec={"x": [1, 2]}, factor=3, strict=True)[0] == [3, 6]
    frame = scaled.to_dataframe({}, split_spec={"x": [1, 2]}, factor=3, load_only=True)
    assert list(frame["value"]) == [3, 6]


def test_cache_copied_elsewhere_keeps_serving(tmp_path, counting):
    memo_at(tmp_path / "a", counting).run({}, {"x": [1, 2]})
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    _, diag = memo_at(tmp_path / "b", counting).run({}, {"x": [1, 2]})
    assert diag.executed_points == 0


def test_compact_rewrites_inserts_and_rebins_into_the_current_layout(tmp_path, counting):
    values = list(range(0, 40, 2))
    memo_at(tmp_path, counting).run({}, {"x": values})
    for inserted in (5, 13, 27):  # single-value inserts mid-axis: new files each time
        values = sorted([*values, inserted])
        memo_at(tmp_path, counting).run({}, {"x": values})
    rebinned = SwarmMemo(tmp_path, {"x": 7}, 2, exec_fn=counting, max_workers=1, verbose=0)
    rebinned.run({}, {"x": values})
    assert len(chunk_files(tmp_path)) > 4
    computed = counting.count()
    report = rebinned.compact({}, {"x": values})
    assert (report.stored_points, report.missing_points) == (len(values), 0)
    assert len(chunk_files(tmp_path)) == 4  # ceil(23 / 7) chunk files
    output, diag = rebinned.run({}, {"x": values})
    assert output == [expected_output({}, (x,)) for x in values]
    assert (diag.cached_chunks, diag.reused_points, counting.count()) == (4, 0, computed)
    other = memo_at(tmp_path, counting)  # another binning still finds every point
    assert other.load({}, {"x": values}, strict=True)[0] == output


def test_compact_keeps_files_holding_points_outside_the_request(tmp_path, counting):
    memo_at(tmp_path, counting).run({}, {"x": [1, 2, 3, 4]})
    SwarmMemo(tmp_path, {"x": 3}, 2, exec_fn=counting, max_workers=1, verbose=0).compact(
        {}, {"x": [1, 2]}
    )
    assert memo_at(tmp_path, counting).load({}, {"x": [1, 2, 3, 4]}, strict=True)
    assert counting.count() == 4


def test_clear_forgets_one_params_set_only(tmp_path, counting):
    memo = memo_at(tmp_path, counting)
    memo.run({"a": 1}, {"x": [1, 2, 3]})
    memo.run({"a": 2}, {"x": [1, 2, 3]})
    assert memo.clear({"a": 1}) == 2
    assert memo.status({"a": 1}, {"x": [1, 2, 3]}).missing_points == 3
    assert memo.status({"a": 2}, {"x": [1, 2, 3]}).complete


def test_a_stale_index_record_of_a_rewritten_partial_chunk_never_hides_its_points(tmp_path):
    """Run A stores a partial chunk; run B completes it; A's index record, written late,
    still describes the partial file: reads must describe the file as it is now."""
    spec = {"x": [1, 2, 3, 4]}
    failing = CountingExec(tmp_path / "a.log", fail_on=(2,))
    quiet = {"on_code_change": "ignore"}  # fail_on is part of the exec_fn's state
    memo_at(tmp_path / "c", failing, on_error="skip", **quiet).run({}, spec)
    (index_dir,) = (tmp_path / "c").glob("*/index")
    stale = {p.name: p.read_bytes() for p in index_dir.iterdir()}
    failing.fail_on = None
    memo_at(tmp_path / "c", failing, **quiet).run({}, spec)  # completes the partial chunk
    for name, data in stale.items():  # the late segment sorts after B's: it wins the merge
        (index_dir / ("99999999999999999999-" + name)).write_bytes(data)
    before = snapshot(tmp_path / "c")
    rebinned = SwarmMemo(tmp_path / "c", {"x": 4}, 2, max_workers=1, verbose=0, **quiet)
    output, _ = rebinned.load({}, spec, strict=True)
    assert output == [expected_output({}, (x,)) for x in spec["x"]]
    assert snapshot(tmp_path / "c") == before


def test_a_partial_chunks_index_record_is_written_before_its_claim_is_released(
    tmp_path, monkeypatch
):
    from swarm_memo.cache.claims import Claims

    real_release = Claims.release
    on_disk_at_release = []

    def release(self, name):
        segments = list((tmp_path / "c").glob("*/index/*.idx"))
        on_disk_at_release.append(bool(segments))
        real_release(self, name)

    monkeypatch.setattr(Claims, "release", release)
    failing = CountingExec(tmp_path / "a.log", fail_on=(2,))
    memo_at(tmp_path / "c", failing, on_error="skip").run({}, {"x": [1, 2]})
    assert on_disk_at_release == [True]


def fail_sometimes(params, point):
    if point[0] % 100 == 7:
        raise ValueError(f"bad value {point[0]}")
    return point[0]


def test_skip_keeps_good_points_so_reruns_execute_only_the_failures(tmp_path):
    counting = CountingExec(tmp_path / "calls.log")

    def flaky(params, point):
        counting(params, point)
        return fail_sometimes(params, point)

    memo = SwarmMemo(tmp_path / "c", {"x": 100}, 50, exec_fn=flaky, max_workers=1, verbose=0,
                     on_error="skip")  # fmt: skip
    spec = {"x": list(range(1000))}
    memo.run({}, spec)
    assert counting.count() == 1000
    counting.reset()
    diag = memo.run_streaming({}, spec)
    assert counting.count() == 10  # 1% of points fail every time; only they run again
    assert diag.failed_points == [(x,) for x in range(7, 1000, 100)]
    assert diag.failures[0] == ((7,), "ValueError: bad value 7")
    assert memo.status({}, spec).missing_points == 10


def test_exec_error_messages_stay_short_with_huge_params(tmp_path):
    memo = SwarmMemo(tmp_path, {"x": 2}, 2, exec_fn=fail_sometimes, max_workers=1, verbose=0)
    with pytest.raises(swarm_memo.ExecError) as info:
        memo.run({"table": list(range(300_000))}, {"x": [7]})
    assert len(str(info.value)) < 12_000
    assert "digest" in str(info.value)
    assert len(info.value.params["table"]) == 300_000  # the full value stays an attribute


@pytest.mark.parametrize("values", [[1, 2, 3, 4], [0.5, 1.5, math.nan, -0.0]])
def test_a_chunk_file_copied_under_another_chunks_name_is_never_served(tmp_path, values):
    counting = CountingExec(tmp_path / "calls.log")
    memo = SwarmMemo(tmp_path / "c", {"x": 2}, 2, exec_fn=counting, max_workers=1, verbose=0)
    memo.run({}, {"x": values})
    first, second = chunk_files(tmp_path / "c")
    second.write_bytes(first.read_bytes())  # intact, same params, another chunk's points
    counting.reset()
    with pytest.warns(CacheWarning, match="another chunk than its name says"):
        output, _ = memo.run({}, {"x": values})
    assert [o["point"] for o in output] == [(v,) for v in values]
    assert counting.count() == 2


def test_sweeping_many_params_sets_in_one_process_keeps_no_files_open(tmp_path, counting):
    memo = memo_at(tmp_path, counting)
    memo.run({"k": -1}, {"x": [1, 2]})
    before = len(os.listdir("/proc/self/fd"))
    for k in range(40):
        memo.run({"k": k}, {"x": [1, 2]})
    assert len(os.listdir("/proc/self/fd")) <= before
