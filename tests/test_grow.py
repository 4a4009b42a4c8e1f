"""Studies that grow: defaults for new knobs, ignored arguments, sweep_wrap."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from helpers import CountingExec, expected_output
from swarm_memo import (
    Diagnostics,
    SpecError,
    SpecTypeError,
    SwarmMemo,
    UnhashableValueError,
)

XS = list(range(10))


def files_of(root: Path) -> dict[str, bytes]:
    """Every file under the cache root with its bytes (to prove nothing was written)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def memo_for(tmp_path: Path, exec_fn: Any, spec: dict[str, int], **options: Any) -> SwarmMemo:
    return SwarmMemo(
        tmp_path / "cache", spec, 3, exec_fn=exec_fn, max_workers=1, verbose=0, **options
    )


class WithBeta(CountingExec):
    """Records the call and returns what ``beta`` it was given."""

    def __call__(self, params: dict[str, Any], point: Any) -> Any:
        super().__call__(params, point)
        return (point, params.get("beta", "absent"))


# ---------------------------------------------------------------------- params defaults


def test_a_params_key_at_its_default_keeps_the_stored_set(tmp_path):
    log = WithBeta(tmp_path / "calls.log")
    memo_for(tmp_path, log, {"x": 4}).run({"alpha": 0.4}, {"x": XS})
    assert log.count() == 10
    memo = memo_for(tmp_path, log, {"x": 4}, defaults={"beta": 1.0})
    before = files_of(tmp_path / "cache")
    output, diag = memo.run({"alpha": 0.4, "beta": 1.0}, {"x": XS})
    assert log.count() == 10
    assert diag.executed_points == 0
    assert output == [((x,), "absent") for x in XS]  # the stored outputs
    assert files_of(tmp_path / "cache") == before  # declaring a default writes nothing


def test_exec_fn_receives_a_defaulted_key_and_other_values_are_new_sets(tmp_path):
    log = WithBeta(tmp_path / "calls.log")
    memo = memo_for(tmp_path, log, {"x": 4}, defaults={"beta": 1.0})
    output, _ = memo.run({"alpha": 0.4, "beta": 1.0}, {"x": [1, 2]})
    assert output == [((1,), 1.0), ((2,), 1.0)]
    memo.run({"alpha": 0.4, "beta": 2.0}, {"x": [1, 2]})
    assert log.count() == 4
    memo.run({"alpha": 0.4, "beta": 1}, {"x": [1, 2]})  # 1 is not 1.0: compared by encoding
    assert log.count() == 6
    memo.run({"alpha": 0.4}, {"x": [1, 2]})  # the same set as beta=1.0
    assert log.count() == 6


def test_removing_a_default_again_is_safe(tmp_path, counting):
    memo_for(tmp_path, counting, {"x": 4}, defaults={"beta": 1.0}).run(
        {"alpha": 0.4, "beta": 1.0}, {"x": XS}
    )
    plain = memo_for(tmp_path, counting, {"x": 4})
    output, diag = plain.run({"alpha": 0.4}, {"x": XS})  # the runs made under the default
    assert diag.executed_points == 0
    assert output == [expected_output({"alpha": 0.4}, (x,)) for x in XS]
    plain.run({"alpha": 0.4, "beta": 1.0}, {"x": XS})  # without it, beta=1.0 is a new set
    assert counting.count() == 20


# ---------------------------------------------------------------------- axis defaults


def test_a_new_axis_at_its_default_is_served_from_the_sweep_without_it(tmp_path, counting):
    memo_for(tmp_path, counting, {"x": 4}).run({"alpha": 0.4}, {"x": XS})
    counting.reset()
    memo = memo_for(tmp_path, counting, {"x": 3, "seed": 2}, defaults={"seed": 0})
    spec = {"x": XS, "seed": [0, 1, 2]}
    output, diag = memo.run({"alpha": 0.4}, spec)
    assert sorted(counting.counter()) == sorted(repr((x, s)) for x in XS for s in (1, 2))
    assert diag.executed_points == 20
    assert diag.reused_points == 10
    params = {"alpha": 0.4}
    assert output == [
        expected_output(params, (x,) if s == 0 else (x, s)) for x in XS for s in (0, 1, 2)
    ]
    again, diag = memo.run(params, spec)
    assert again == output
    assert diag.executed_points == 0
    assert counting.count() == 20


def test_axis_default_serves_reads_without_writing(tmp_path, counting):
    memo_for(tmp_path, counting, {"x": 4}).run({"alpha": 0.4}, {"x": XS})
    before = files_of(tmp_path / "cache")
    memo = memo_for(tmp_path, counting, {"seed": 1, "x": 5}, defaults={"seed": 0})
    spec = {"seed": [3, 0], "x": XS[::-1]}
    output, diag = memo.load({"alpha": 0.4}, spec)
    assert diag.cached_points == 10
    assert diag.missing_points == 10
    assert output == [expected_output({"alpha": 0.4}, (x,)) for x in XS[::-1]]
    status = memo.status({"alpha": 0.4}, spec)
    assert status.cached_points == 10
    assert status.missing_points == 10
    assert files_of(tmp_path / "cache") == before
    assert counting.count() == 10


def test_axis_default_finds_points_of_partial_chunks(tmp_path):
    log = CountingExec(tmp_path / "calls.log", fail_on=(3,))
    memo_for(tmp_path, log, {"x": 10}, on_error="skip").run({}, {"x": XS})  # one partial file
    log.reset()
    healed = CountingExec(log.log)  # another fingerprint: its state differs
    spec = {"x": 10, "seed": 2}
    memo = memo_for(tmp_path, healed, spec, defaults={"seed": 0}, on_code_change="ignore")
    memo.run({}, {"x": XS, "seed": [0, 1]})
    expected = [repr((3, 0))] + [repr((x, 1)) for x in XS]
    assert sorted(log.calls()) == sorted(expected)


def test_two_axis_defaults_at_once(tmp_path, counting):
    memo_for(tmp_path, counting, {"x": 4}).run({}, {"x": XS})
    counting.reset()
    memo = memo_for(
        tmp_path, counting, {"x": 4, "seed": 1, "noise": 2}, defaults={"seed": 0, "noise": 0.0}
    )
    memo.run({}, {"x": XS, "seed": [0, 1], "noise": [0.0, 0.5]})
    assert counting.count() == 30  # the 10 points at seed=0, noise=0.0 are stored


def test_a_value_equal_but_not_identical_to_the_default_is_computed(tmp_path, counting):
    memo_for(tmp_path, counting, {"x": 4}).run({}, {"x": XS})
    counting.reset()
    memo = memo_for(tmp_path, counting, {"x": 4, "seed": 1}, defaults={"seed": 0})
    memo.run({}, {"x": XS, "seed": [0.0, False]})  # neither encodes like 0
    assert counting.count() == 20


# ---------------------------------------------------------------------- ignore


def test_ignored_params_reach_exec_fn_but_not_the_key(tmp_path):
    seen = []

    def exec_fn(params, point):
        seen.append(params["client"])
        return point[0] * params["k"]

    memo = memo_for(tmp_path, exec_fn, {"x": 4}, ignore=("client",))
    first, second = threading.Lock(), threading.Lock()  # no stable encoding
    output, _ = memo.run({"k": 2, "client": first}, {"x": [1, 2]})
    assert output == [2, 4]
    assert seen == [first, first]
    output, diag = memo.run({"k": 2, "client": second}, {"x": [1, 2]})
    assert output == [2, 4]
    assert diag.executed_points == 0
    memo.run({"k": 2}, {"x": [1, 2]})  # ignored keys never key the set
    assert len(seen) == 2


def test_run_wrap_and_streaming_wrap_ignore_arguments(tmp_path):
    memo = SwarmMemo(tmp_path / "cache", {"x": 2}, 2, max_workers=1, verbose=0)
    log = CountingExec(tmp_path / "calls.log")

    @memo.run_wrap(ignore=("log_dir",))
    def scaled(params, point, log_dir=None):
        log(params, point)
        return point[0] * params["k"]

    scaled({"k": 2}, split_spec={"x": [1, 2]}, log_dir=threading.Lock())
    output, diag = scaled({"k": 2}, split_spec={"x": [1, 2]}, log_dir="elsewhere")
    assert output == [2, 4]
    assert diag.executed_points == 0
    streamed = memo.streaming_wrap(ignore=("log_dir",))(scaled.__wrapped__)
    assert streamed({"k": 2}, split_spec={"x": [1, 2, 3]}, log_dir=1).executed_points == 1
    assert log.count() == 3


@pytest.mark.parametrize("where", ["memo", "run_wrap", "streaming_wrap", "sweep_wrap"])
def test_naming_an_axis_in_ignore_is_a_spec_error(tmp_path, where):
    if where == "memo":
        with pytest.raises(SpecError, match="'x'"):
            SwarmMemo(tmp_path / "c", {"x": 2}, 2, ignore=("x",))
        return
    decorator = getattr(SwarmMemo(tmp_path / "c", {"x": 2}, 2), where)(ignore=["x"])
    with pytest.raises(SpecError, match="'x'"):
        decorator(lambda params, x: x)


def test_bad_defaults_and_ignore_are_refused_naming_them(tmp_path):
    root = tmp_path / "c"
    with pytest.raises(SpecTypeError, match="defaults"):
        SwarmMemo(root, {"x": 2}, 2, defaults=[("beta", 1)])
    with pytest.raises(UnhashableValueError, match=r"defaults\['beta'\]"):
        SwarmMemo(root, {"x": 2}, 2, defaults={"beta": threading.Lock()})
    with pytest.raises(SpecError, match=r"defaults\['x'\]"):
        SwarmMemo(root, {"x": 2}, 2, defaults={"x": 0}, enumerate_points=lambda p, s: [])
    with pytest.raises(SpecTypeError, match="ignore"):
        SwarmMemo(root, {"x": 2}, 2, ignore="client")
    with pytest.raises(SpecError, match="'client'"):
        SwarmMemo(root, {"x": 2}, 2, ignore=["client"], defaults={"client": None})
    assert not root.exists()


# ---------------------------------------------------------------------- sweep_wrap


@pytest.fixture
def swept(tmp_path):
    memo = SwarmMemo(tmp_path / "cache", {"x": 2, "y": 1}, 2, max_workers=1, verbose=0)
    calls: list[tuple[Any, ...]] = []

    @memo.sweep_wrap()
    def simulate(alpha, x, y, scale=1):
        calls.append((alpha, x, y, scale))
        return {"v": (alpha + x) * y * scale}

    return memo, simulate, calls


def test_sweep_wrap_runs_the_grid_with_scalars_in_grid_order(swept):
    _, simulate, calls = swept
    output, diag = simulate(alpha=0.5, x=[1, 2, 3], y=[10, 20])
    assert isinstance(diag, Diagnostics)
    grid = [(x, y) for x in (1, 2, 3) for y in (10, 20)]
    assert output == [{"v": (0.5 + x) * y} for x, y in grid]
    assert sorted(calls) == [(0.5, x, y, 1) for x, y in grid]  # chunk by chunk
    output, diag = simulate(0.5, y=[20], x=[3, 1])  # a subset, another order: nothing runs
    assert output == [{"v": 70.0}, {"v": 30.0}]
    assert diag.executed_points == 0
    simulate(alpha=0.5, x=[1, 4], y=[10], scale=2)  # another param: another set
    assert len(calls) == 8


def test_sweep_wrap_takes_numpy_axes_and_hands_out_python_scalars(swept):
    np = pytest.importorskip("numpy")
    _, simulate, calls = swept
    output, _ = simulate(alpha=0.0, x=np.arange(2), y=np.array([1.5]))
    assert output == [{"v": 0.0}, {"v": 1.5}]
    assert [type(c[1]) for c in calls] == [int, int]
    _, diag = simulate(alpha=0.0, x=[0, 1], y=[1.5])
    assert diag.executed_points == 0


def test_sweep_wrap_reads(swept):
    _, simulate, calls = swept
    simulate(alpha=1.0, x=[1, 2], y=[1])
    status = simulate.status(alpha=1.0, x=[1, 2, 3], y=[1])
    assert (status.cached_points, status.missing_points) == (2, 1)
    output, diag = simulate.load(alpha=1.0, x=[2, 3], y=[1])
    assert output == [{"v": 3.0}]
    assert diag.missing_points == 1
    frame = simulate.to_dataframe(alpha=1.0, x=[1, 2, 3], y=[1], load_only=True)
    assert frame.to_dict("list") == {"x": [1, 2], "y": [1, 1], "v": [2.0, 3.0]}
    pytest.importorskip("xarray")
    dataset = simulate.to_xarray(alpha=1.0, x=[1, 2], y=[1], load_only=True)
    assert dataset["v"].values.tolist() == [[2.0], [3.0]]
    assert len(calls) == 2


def test_sweep_wrap_bad_calls_name_the_argument_before_any_work(swept, tmp_path):
    memo, simulate, calls = swept
    with pytest.raises(SpecError, match="'x' is missing"):
        simulate(alpha=1.0, y=[1])
    with pytest.raises(SpecError, match="'y'"):
        simulate(alpha=1.0, x=[1], y=3)
    with pytest.raises(SpecError, match="'y'"):
        simulate(alpha=1.0, x=[1], y="ab")
    with pytest.raises(SpecTypeError, match="simulate"):
        simulate(x=[1], y=[1])  # alpha is missing
    with pytest.raises(SpecError, match="'y'"):
        memo.sweep_wrap()(lambda x: x)
    custom = SwarmMemo(tmp_path / "c2", {"x": 2}, 2, enumerate_points=lambda p, s: [])
    with pytest.raises(SpecError, match="enumerate_points"):
        custom.sweep_wrap()(lambda x: x)
    assert calls == []
    assert not (tmp_path / "cache").exists()


def test_sweep_wrap_keys_by_function(tmp_path):
    memo = SwarmMemo(tmp_path / "cache", {"x": 2}, 2, max_workers=1, verbose=0)
    one = memo.sweep_wrap()(lambda x, k: x * k)
    two = memo.sweep_wrap()(lambda x, k: x + k)
    assert one(x=[1, 2], k=10)[0] == [10, 20]
    assert two(x=[1, 2], k=10)[0] == [11, 12]
    output, diag = memo.sweep_wrap()(lambda x, k: x * k)(x=[1, 2], k=10)
    assert output == [10, 20]
    assert diag.executed_points == 0


def test_sweep_wrap_ignores_arguments(tmp_path):
    memo = SwarmMemo(tmp_path / "cache", {"x": 2}, 2, max_workers=1, verbose=0)
    calls = []

    @memo.sweep_wrap(ignore=("client",))
    def f(x, client):
        calls.append(client)
        return x

    f(x=[1, 2], client=threading.Lock())
    assert f(x=[1, 2], client=None)[0] == [1, 2]
    assert len(calls) == 2
    with pytest.raises(SpecError, match="'nope'"):
        memo.sweep_wrap(ignore=("nope",))(lambda x: x)


def test_example_grow_runs(tmp_path):
    import subprocess
    import sys

    script = Path(__file__).parents[1] / "examples" / "grow.py"
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "with beta and seed: 16 computed, 8 stored" in result.stdout


# ---------------------------------------------------------------------- gc --max-bytes


def _aged_sets(tmp_path: Path, counting: CountingExec) -> tuple[Path, list[str], list[int]]:
    """Three params sets, written 3, 2 and 1 days ago: (root, set ids oldest first, bytes)."""
    from swarm_memo.cache.listing import list_sets
    from swarm_memo.cache.listing import open_cache as open_store

    root = tmp_path / "cache"
    memo = memo_for(tmp_path, counting, {"x": 4})
    now = time.time()
    ids = []
    for age, alpha in ((3, 0.1), (2, 0.2), (1, 0.3)):
        memo.run({"alpha": alpha}, {"x": XS})
        new = {p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
        (folder,) = new - {root / i for i in ids}
        for chunk in folder.rglob("*.chunk"):
            os.utime(chunk, (now - age * 86400, now - age * 86400))
        ids.append(folder.name)
    sizes = {s.set_id: s.bytes for s in list_sets(open_store(str(root)))}
    return root, ids, [sizes[i] for i in ids]


def _gc(root: Path, *args: str) -> Any:
    from click.testing import CliRunner

    from swarm_memo.cli import cli

    return CliRunner().invoke(cli, ["gc", str(root), *args])


def _total(root: Path) -> int:
    """The cache's size as gc counts it (every file the store lists)."""
    from swarm_memo.cache.listing import open_cache as open_store
    from swarm_memo.inspection.sizecap import cache_bytes

    return cache_bytes(open_store(str(root)))


def test_gc_max_bytes_removes_least_recently_written_sets_until_the_cache_fits(tmp_path, counting):
    root, ids, sizes = _aged_sets(tmp_path, counting)
    cap = _total(root) - sizes[0] - 1  # the oldest set alone is not enough
    before = files_of(root)
    result = _gc(root, "--max-bytes", str(cap), "--dry-run")
    assert result.exit_code == 0, result.output
    assert ids[0][:12] in result.output
    assert ids[1][:12] in result.output
    assert ids[2][:12] not in result.output
    assert files_of(root) == before  # a dry run removes nothing
    result = _gc(root, "--max-bytes", str(cap))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [ids[2]]
    assert _total(root) <= cap
    memo = memo_for(tmp_path, counting, {"x": 4})
    counting.reset()
    memo.run({"alpha": 0.3}, {"x": XS})  # the newest set is intact
    assert counting.count() == 0
    memo.run({"alpha": 0.1}, {"x": XS})
    assert counting.count() == 10
    assert _gc(root, "--max-bytes", "10G").output.strip() == "nothing to remove"


def test_gc_max_bytes_never_removes_a_set_a_live_run_holds_claims_on(tmp_path, counting):
    import subprocess
    import sys

    root, ids, _sizes = _aged_sets(tmp_path, counting)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from swarm_memo.cache.claims import Claims\n"
            f"claims = Claims({str(root / ids[0] / 'claims.lock')!r})\n"
            "assert claims.try_claim('somechunk')\n"
            "print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        result = _gc(root, "--max-bytes", str(_total(root) - 1))
    finally:
        holder.communicate("", timeout=30)
    assert result.exit_code == 0, result.output
    assert "a running process holds claims" in result.output
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted([ids[0], ids[2]])
    result = _gc(root, "--max-bytes", str(_total(root) - 1))  # released: now it goes
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [ids[2]]


def test_gc_max_bytes_sizes():
    from swarm_memo.errors import InspectError
    from swarm_memo.inspection.sizecap import parse_size

    assert parse_size("10G") == 10 * 2**30
    assert parse_size("500M") == 500 * 2**20
    assert parse_size("1.5k") == 1536
    assert parse_size("2GiB") == 2 * 2**30
    assert parse_size("123") == 123
    for bad in ("10X", "-1G", "G", ""):
        with pytest.raises(InspectError, match="bad size"):
            parse_size(bad)


def test_gc_bad_max_bytes_exits_2_naming_it(tmp_path, counting):
    root, _, _ = _aged_sets(tmp_path, counting)
    before = files_of(root)
    result = _gc(root, "--max-bytes", "ten")
    assert result.exit_code == 2
    assert "--max-bytes" in result.output
    assert files_of(root) == before
