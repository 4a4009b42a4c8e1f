"""End-to-end behaviour of run / run_streaming: outputs, caching, chunk files."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import swarm_memo
from helpers import CountingExec, chunk_files, expected_output, grid_expected
from swarm_memo import AxisOrderWarning, Diagnostics, SwarmMemo
from swarm_memo.cache.codec import decode_chunk

SPEC = {"strat": ["aaa", "bb"], "s": [1, 2, 3, 4]}


def seed_enumerate(params, split_spec):
    return [(strat, s) for strat in split_spec["strat"] for s in split_spec["s"]]


def seed_exec(params, point):
    strat, s = point
    return {"strat": strat, "s": s, "value": len(strat) + s}


def seed_merge(chunks):
    merged = []
    for chunk in chunks:
        merged.extend(chunk)
    return merged


def expected(params, spec, axis_order=("strat", "s")):
    """Plain recomputation of what run() must return with the default enumerator."""
    return grid_expected(params, spec, axis_order)


def assert_invariants(diag: Diagnostics) -> None:
    assert diag.cached_chunks + diag.executed_chunks == diag.total_chunks
    assert diag.cached_points + diag.executed_points == diag.total_points


def test_seed_quick_start_runs_and_second_run_executes_nothing(tmp_path, counting):
    memo = SwarmMemo(
        tmp_path / "memo_cache",
        {"strat": 1, "s": 3},
        2,
        seed_enumerate,
        counting,
        lambda outputs: outputs,
        seed_merge,
        verbose=0,
        max_workers=1,
    )
    output, diag = memo.run({"alpha": 0.4}, SPEC)
    # A custom merge_fn keeps chunk order: chunks run over axis_order, strat slowest.
    assert [o["point"] for o in output] == [
        ("aaa", 1),
        ("aaa", 2),
        ("aaa", 3),
        ("aaa", 4),
        ("bb", 1),
        ("bb", 2),
        ("bb", 3),
        ("bb", 4),
    ]
    assert (diag.total_chunks, diag.executed_chunks, diag.executed_points) == (4, 4, 8)
    assert diag.exec_chunks == 4  # chunks of 3, 3, 1, 1 points cut into batches of 2
    assert counting.count() == 8
    output2, diag2 = memo.run({"alpha": 0.4}, SPEC)
    assert output2 == output
    assert (diag2.cached_chunks, diag2.executed_points, diag2.exec_chunks) == (4, 0, 0)
    assert counting.count() == 8


def test_examples_basic_prints_output_and_caches_on_second_run(tmp_path):
    script = Path(__file__).parents[1] / "examples" / "basic.py"
    runs = [
        subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        for _ in range(2)
    ]
    assert "'value': 4" in runs[0].stdout
    assert "executed_points=8" in runs[0].stdout
    assert "cached_chunks=4" in runs[1].stdout
    assert "executed_points=0" in runs[1].stdout


@pytest.mark.parametrize(("exec_chunk_size", "max_workers"), [(1, 1), (2, 1), (5, 2), (100, 2)])
def test_output_does_not_depend_on_exec_chunk_size_or_workers(
    make_memo, exec_chunk_size, max_workers
):
    memo = make_memo(exec_chunk_size=exec_chunk_size, max_workers=max_workers)
    output, diag = memo.run({"alpha": 1}, SPEC)
    assert output == expected({"alpha": 1}, SPEC)
    assert diag.exec_chunks == -(-8 // exec_chunk_size)  # exec chunks span memo chunks
    assert_invariants(diag)


def test_output_does_not_depend_on_which_chunks_were_cached(make_memo, counting):
    memo = make_memo()
    partial = {"strat": ["bb"], "s": [1, 2, 3, 4]}
    memo.run({"alpha": 1}, partial)
    counting.reset()
    output, diag = memo.run({"alpha": 1}, SPEC)
    assert output == expected({"alpha": 1}, SPEC)
    assert (diag.cached_chunks, diag.executed_chunks) == (2, 2)
    assert sorted(counting.calls()) == sorted(repr(("aaa", s)) for s in (1, 2, 3, 4))


def test_process_pool_counts_each_point_once_across_processes(make_memo, counting):
    memo = make_memo(max_workers=2, exec_chunk_size=3)
    output, _diag = memo.run({"alpha": 2}, SPEC)
    assert output == expected({"alpha": 2}, SPEC)
    assert counting.count() == 8
    assert len(counting.counter()) == 8
    _, diag2 = memo.run({"alpha": 2}, SPEC)
    assert diag2.executed_points == 0
    assert counting.count() == 8


def test_lambdas_and_closures_run_in_the_process_pool(tmp_path):
    offset = 100
    memo = SwarmMemo(
        tmp_path,
        {"x": 2},
        2,
        exec_fn=lambda p, pt: pt[0] + offset + p["k"],
        max_workers=2,
        verbose=0,
    )
    output, _ = memo.run({"k": 1}, {"x": [1, 2, 3]})
    assert output == [102, 103, 104]


def test_changing_params_or_cache_version_misses_the_cache(make_memo, counting):
    make_memo().run({"alpha": 1}, SPEC)
    make_memo().run({"alpha": 2}, SPEC)
    assert counting.count() == 16
    _, diag = make_memo(cache_version="v2").run({"alpha": 1}, SPEC)
    assert diag.executed_points == 8
    assert counting.count() == 24
    _, diag = make_memo().run({"alpha": 1}, SPEC)
    assert diag.executed_points == 0


def test_appending_to_an_axis_reuses_every_unchanged_chunk(make_memo, counting):
    memo = make_memo()
    memo.run({"alpha": 1}, SPEC)
    counting.reset()
    bigger = {"strat": ["aaa", "bb", "c"], "s": [1, 2, 3, 4, 5, 6, 7]}
    output, diag = memo.run({"alpha": 1}, bigger)
    assert output == expected({"alpha": 1}, bigger)
    assert diag.total_chunks == 9
    assert diag.cached_chunks == 2  # the (strat, s=[1,2,3]) chunks of aaa and bb
    executed = {eval(call) for call in counting.calls()}
    assert len(executed) == counting.count()  # each point once
    stored = set(itertools.product(*SPEC.values()))
    assert not executed & stored  # stored points never ran again, even rebinned
    assert executed == set(itertools.product(*bigger.values())) - stored


def test_axis_order_sets_point_order_and_another_order_recomputes_with_a_warning(
    make_memo, counting
):
    bins = {"strat": 2, "s": 2}
    out_default, _ = make_memo(memo_chunk_spec=bins).run({"alpha": 1}, SPEC)
    # the default axis order is the key order of memo_chunk_spec: points are (strat, s)
    assert [o["point"] for o in out_default][:4] == [("aaa", 1), ("aaa", 2), ("aaa", 3), ("aaa", 4)]
    # Another order changes what `point` is: outputs of (strat, s) tuples are not served
    # as (s, strat) ones; they are computed again, with one warning naming both orders.
    with pytest.warns(AxisOrderWarning, match=r"\('strat', 's'\).*\('s', 'strat'\)") as caught:
        out, diag = make_memo(memo_chunk_spec=bins, axis_order=["s", "strat"]).run(
            {"alpha": 1}, SPEC
        )
    assert len(caught) == 1
    assert caught[0].filename == __file__  # points at the user's call
    assert (diag.cached_points, diag.executed_points) == (0, 8)
    assert counting.count() == 16
    # Output order follows (s, strat): s varies slowest, and every point is such a tuple.
    assert [o["point"] for o in out] == [
        (1, "aaa"),
        (1, "bb"),
        (2, "aaa"),
        (2, "bb"),
        (3, "aaa"),
        (3, "bb"),
        (4, "aaa"),
        (4, "bb"),
    ]
    # Both layouts stay stored: each order is served its own outputs, nothing executes.
    for order, first in ((["strat", "s"], ("aaa", 1)), (["s", "strat"], (1, "aaa"))):
        out, diag = make_memo(memo_chunk_spec=bins, axis_order=order).run({"alpha": 1}, SPEC)
        assert out[0]["point"] == first
        assert diag.executed_points == 0
    assert counting.count() == 16


def test_chunk_identity_ignores_axis_order_and_dict_key_order(tmp_path, counting):
    def memo(order):
        return SwarmMemo(
            tmp_path,
            {"strat": 1, "s": 3},
            2,
            seed_enumerate,
            counting,
            axis_order=order,
            verbose=0,
            max_workers=1,
        )

    memo(["s", "strat"]).run({"alpha": 1, "beta": 2}, SPEC)
    reordered_spec = {"s": [1, 2, 3, 4], "strat": ["aaa", "bb"]}
    _, diag = memo(["strat", "s"]).run({"beta": 2, "alpha": 1}, reordered_spec)
    assert diag.cached_chunks == 4
    assert counting.count() == 8


def test_enumerate_points_is_called_per_chunk_with_the_chunk_sub_spec(make_memo):
    seen = []

    def enumerate_points(params, chunk_spec):
        seen.append(chunk_spec)
        return [(st, s) for st in chunk_spec["strat"] for s in chunk_spec["s"]]

    memo = make_memo(enumerate_points=enumerate_points, exec_fn=seed_exec)
    memo.run({}, SPEC)
    assert {"s": [1, 2, 3], "strat": ["aaa"]} in seen
    assert {"s": [4], "strat": ["bb"]} in seen
    assert all(list(c) == ["strat", "s"] for c in seen)  # the memo_chunk_spec's key order


def test_custom_collate_and_merge_shape_the_output(make_memo):
    memo = make_memo(collate_fn=lambda outs: len(outs), merge_fn=lambda chunks: tuple(chunks))
    output, _ = memo.run({}, SPEC)
    assert output == (3, 1, 3, 1)  # chunk order: strat slowest, then bins of s
    cached, _ = memo.run({}, SPEC)
    assert cached == (3, 1, 3, 1)


def test_empty_axis_yields_zero_chunks_and_merge_of_nothing(make_memo, counting):
    output, diag = make_memo(merge_fn=lambda chunks: ("merged", chunks)).run(
        {}, {"strat": [], "s": [1, 2]}
    )
    assert output == ("merged", [])
    assert (diag.total_chunks, diag.total_points, counting.count()) == (0, 0, 0)


def test_run_streaming_writes_every_chunk_and_returns_diagnostics(make_memo, counting, tmp_path):
    memo = make_memo(exec_chunk_size=1)
    diag = memo.run_streaming({"alpha": 3}, SPEC)
    assert isinstance(diag, Diagnostics)
    assert diag.stream_flushes == 4 == len(chunk_files(tmp_path / "cache"))
    assert diag.max_stream_buffer <= 3  # never more than one unfinished chunk's worth
    assert_invariants(diag)
    output, diag2 = memo.run({"alpha": 3}, SPEC)
    assert output == expected({"alpha": 3}, SPEC)
    assert diag2.executed_points == 0
    assert memo.run_streaming({"alpha": 3}, SPEC).cached_points == 8
    assert counting.count() == 8


def test_chunk_files_are_self_describing(make_memo, tmp_path):
    make_memo(enumerate_points=seed_enumerate).run({"alpha": 5}, SPEC)
    files = chunk_files(tmp_path / "cache")
    records = [decode_chunk(p.read_bytes()) for p in files]
    assert len(records) == 4
    for path, record in zip(files, records, strict=True):
        assert record.set_id == path.parent.parent.name
        assert record.cache_version == "v1"
        bins = dict(record.chunk_key)
        # the seed's enumerator yields the product of the bins: stored as a product chunk
        assert record.points is None
        points = record.resolved_points()
        assert points == [(st, s) for st in bins["strat"] for s in bins["s"]]
        assert record.outputs == [expected_output({"alpha": 5}, p) for p in points]


def test_default_points_are_stored_compactly_and_rebuilt(make_memo, tmp_path):
    make_memo().run({"alpha": 5}, SPEC)
    record = decode_chunk(chunk_files(tmp_path / "cache")[0].read_bytes())
    assert record.points is None
    assert len(record.resolved_points()) == len(record.outputs)


def test_chunk_files_are_named_by_chunk_hash_fn(make_memo, tmp_path):
    seen = []

    def chunk_hash(params, chunk_key, version):
        seen.append((params, chunk_key, version))
        return "c-" + "-".join(f"{a}{len(v)}{v[0]}" for a, v in chunk_key) + version

    make_memo(chunk_hash_fn=chunk_hash).run({"alpha": 1}, SPEC)
    names = {p.stem for p in chunk_files(tmp_path / "cache")}
    assert "c-s31-strat1aaav1" in names
    assert len(names) == 4
    assert seen[0][0] == {"alpha": 1}
    assert seen[0][2] == "v1"
    assert seen[0][1] == (("s", (1, 2, 3)), ("strat", ("aaa",)))


def test_memo_without_exec_fn_serves_cache_but_refuses_to_execute(make_memo):
    make_memo().run({}, SPEC)
    bare = make_memo(exec_fn=None)
    _output, diag = bare.run({}, SPEC)
    assert diag.cached_points == 8
    with pytest.raises(swarm_memo.SpecError, match="no exec_fn"):
        bare.run({}, {"strat": ["new"], "s": [1]})


def test_finished_chunks_survive_an_exec_error_and_rerun_computes_the_rest(tmp_path):
    counting = CountingExec(tmp_path / "calls.log", fail_on=("bb", 4))
    memo = SwarmMemo(
        tmp_path / "cache", {"strat": 1, "s": 3}, 1, exec_fn=counting, max_workers=1, verbose=0,
        on_code_change="ignore",  # fail_on is part of the exec_fn's state, changed below
    )  # fmt: skip
    with pytest.raises(swarm_memo.ExecError) as info:
        memo.run({}, SPEC)
    assert info.value.point == ("bb", 4)
    assert len(chunk_files(tmp_path / "cache")) == 3
    counting.reset()
    counting.fail_on = None
    _, diag = memo.run({}, SPEC)
    assert diag.cached_chunks == 3
    assert counting.calls() == ["('bb', 4)"]


def test_run_in_subprocess_with_other_hash_seed_only_hits_the_cache(tmp_path, counting):
    memo = SwarmMemo(
        tmp_path / "cache", {"strat": 1, "s": 3}, 2, exec_fn=counting, verbose=0, max_workers=1
    )
    params = {"alpha": 0.5, "tags": {"x", "y", "z"}, "nested": {"b": [1, 2], "a": None}}
    memo.run(params, SPEC)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from helpers import CountingExec
        from swarm_memo import SwarmMemo
        counting = CountingExec({str(tmp_path / "calls.log")!r})
        memo = SwarmMemo({str(tmp_path / "cache")!r}, {{"s": 3, "strat": 1}}, 2,
                         exec_fn=counting, verbose=0, max_workers=1,
                         axis_order=["strat", "s"])
        params = {{"nested": {{"a": None, "b": [1, 2]}}, "tags": {{"z", "y", "x"}}, "alpha": 0.5}}
        out, diag = memo.run(params, {{"s": [1, 2, 3, 4], "strat": ["aaa", "bb"]}})
        print(diag.cached_chunks, diag.executed_points)
    """)
    for seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        assert result.stdout.split() == ["4", "0"]
    assert counting.count() == 8


def test_gitignore_is_written_into_a_new_cache_root(make_memo, tmp_path):
    make_memo().run({}, SPEC)
    assert (tmp_path / "cache" / ".gitignore").read_text().splitlines()[-1] == "*"


def test_diagnostics_repr_is_readable():
    text = repr(Diagnostics(total_chunks=3, wall_time=1.23456))
    assert text.startswith("Diagnostics(total_chunks=3,")
    assert "wall_time=1.235" in text


def test_runs_of_consecutive_ints_are_stored_as_ranges_and_read_back(make_memo, tmp_path):
    from swarm_memo.cache.codec import compact_key, read_key

    key = (("s", (1, 2, 3, 4)), ("strat", ("a",)), ("t", (5, 3, 1)), ("u", (1, 2, 4)))
    compact = compact_key(key)
    assert compact[0][1] == range(1, 5)
    assert compact[2][1] == range(5, 0, -2)
    assert compact[3][1] == (1, 2, 4)
    read = read_key(compact)
    assert [(axis, tuple(values)) for axis, values in read] == list(key)
    assert read[0][1] == range(1, 5)  # read back as the range: no tuple of every value
    assert compact_key((("b", (True, False, True)),))[0][1] == (True, False, True)
    memo = make_memo(memo_chunk_spec={"strat": 2, "s": 4})
    spec = {"strat": ["aaa", "bb"], "s": list(range(100))}
    output, _ = memo.run({}, spec)
    record = decode_chunk(chunk_files(tmp_path / "cache")[0].read_bytes())
    assert len(dict(record.chunk_key)["s"]) == 4
    assert memo.run({}, spec)[0] == output


def test_one_axis_points_are_the_product_only_when_they_are_the_bin_values_themselves():
    from swarm_memo.run.plan import is_product

    bin_values = (1, 2.5, "a", 10**30)
    assert is_product([(v,) for v in bin_values], (bin_values,))
    assert not is_product([(1.0,), (2.5,), ("a",), (10**30,)], (bin_values,))  # 1.0 == 1
    assert not is_product([(v,) for v in bin_values[:3]], (bin_values,))
    assert not is_product([v for v in bin_values], (bin_values,))
    assert not is_product([(v, v) for v in bin_values], (bin_values,))
