"""The facade's typed core: the constructor's arguments are one frozen ``MemoOptions``,
validated once into a ``MemoConfig`` whose policies (``executor``, ``on_code_change``)
are parsed objects; ``launch`` and its tasks work on options and config, never on the
facade."""

from __future__ import annotations

import dataclasses
import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from helpers import CountingExec, expected_output
from swarm_memo import SwarmMemo
from swarm_memo.cache.serving import CodeChange
from swarm_memo.errors import SpecError, SpecTypeError
from swarm_memo.execution.executors import ExecutorSpec
from swarm_memo.identity.order import Share
from swarm_memo.run.config import MemoOptions, build_config
from swarm_memo.run.launch import task_config

PARAMS = {"alpha": 1}
SPEC = {"x": list(range(6))}


def plain_exec(params: dict[str, Any], point: Any) -> Any:
    return expected_output(params, point)


def new_memo(root: Path, exec_fn: Any = plain_exec, **kwargs: Any) -> SwarmMemo:
    return SwarmMemo(root, {"x": 2}, 2, exec_fn=exec_fn, verbose=0, **kwargs)


# ---------------------------------------------------------------------------- options


def test_the_options_are_the_constructor_arguments_as_given(tmp_path: Path) -> None:
    memo = new_memo(tmp_path, max_workers=2, executor="thread", on_code_change="ignore")
    options = memo.options
    assert options.cache_root == tmp_path
    assert dict(options.memo_chunk_spec) == {"x": 2}
    assert (options.exec_chunk_size, options.max_workers, options.executor) == (2, 2, "thread")
    assert options.on_code_change == "ignore"
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.verbose = 2  # type: ignore[misc]


def test_a_replaced_option_keeps_the_others(tmp_path: Path) -> None:
    memo = new_memo(tmp_path, claim_timeout=30.0, grace_seconds=5.0, cache_version="v7")
    changed = build_config(dataclasses.replace(memo.options, deadline=90.0))
    assert changed.deadline == 90.0
    assert memo.config.deadline is None  # the memo's own options are untouched
    for name in ("cache_root", "exec_chunk_size", "cache_version", "claim_timeout", "verbose"):
        assert getattr(changed, name) == getattr(memo.config, name), name
    assert changed.grace_seconds == 5.0
    assert changed.layout.bin_sizes == memo.config.layout.bin_sizes
    assert changed.exec_fn is plain_exec


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"executor": "gpu"}, SpecError, r"executor must be one of .*got 'gpu'"),
        ({"on_code_change": "sometimes"}, SpecError, r"on_code_change must be .*got 'sometimes'"),
        ({"exec_chunk_size": 0}, SpecError, r"exec_chunk_size"),
        ({"max_workers": "4"}, SpecTypeError, r"max_workers must be None or an int >= 1"),
    ],
)
def test_a_replaced_option_is_validated_again(
    tmp_path: Path, change: dict[str, Any], error: type[Exception], message: str
) -> None:
    memo = new_memo(tmp_path)
    with pytest.raises(error, match=message):
        build_config(dataclasses.replace(memo.options, **change))


def test_a_memo_pickles_as_its_options(tmp_path: Path) -> None:
    memo = new_memo(tmp_path, executor="serial", deadline=60.0, ignore=("log",))
    copy = pickle.loads(pickle.dumps(memo))
    assert copy.options == memo.options
    assert copy.config.deadline == 60.0
    assert copy.config.ignore == frozenset({"log"})


def test_a_swapped_exec_fn_is_in_the_options_too(tmp_path: Path) -> None:
    memo = new_memo(tmp_path)
    memo.exec_fn = CountingExec(tmp_path / "calls.log")
    assert memo.options.exec_fn is memo.exec_fn
    assert memo.config.exec_fn is memo.exec_fn


# ---------------------------------------------------------------------------- policies


@pytest.mark.parametrize(
    ("executor", "max_workers", "kind", "inline", "in_process"),
    [
        ("process", 2, "process", False, False),
        ("process", 1, "process", True, True),
        ("thread", 3, "thread", False, True),
        ("serial", None, "serial", True, True),
    ],
)
def test_the_executor_is_parsed_once_into_a_spec(
    tmp_path: Path,
    executor: str,
    max_workers: int | None,
    kind: str,
    inline: bool,
    in_process: bool,
) -> None:
    memo = new_memo(tmp_path, executor=executor, max_workers=max_workers)
    spec = memo.config.backends.spec
    assert spec == ExecutorSpec.parse(executor, max_workers)
    assert (spec.kind, spec.requested_workers) == (kind, max_workers)
    assert (spec.inline, spec.in_process) == (inline, in_process)
    assert spec.off_main_thread().kind == ("thread" if inline else kind)
    memo.close()


def test_a_user_executor_is_kept_in_the_spec_never_shut_down(tmp_path: Path) -> None:
    with ThreadPoolExecutor(2) as pool:
        memo = new_memo(tmp_path, executor=pool)
        spec = memo.config.backends.spec
        assert (spec.kind, spec.target) == ("executor", pool)
        assert memo.run(PARAMS, SPEC)[0] == [expected_output(PARAMS, (x,)) for x in range(6)]
        memo.close()
        assert pool.submit(sum, [1, 2]).result() == 3


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ("slurm", SpecError, r"executor must be one of \['process', 'thread', 'serial'\].*'slurm'"),
        (4, SpecTypeError, r"executor must be .*got int"),
        (None, SpecTypeError, r"executor must be .*got NoneType"),
    ],
)
def test_a_bad_executor_is_named_before_any_work(
    tmp_path: Path, value: object, error: type[Exception], message: str
) -> None:
    counting = CountingExec(tmp_path / "calls.log")
    with pytest.raises(error, match=message):
        new_memo(tmp_path / "cache", counting, executor=value)
    assert not (tmp_path / "cache").exists()
    assert counting.count() == 0


@pytest.mark.parametrize("value", ["warn", "recompute", "ignore"])
def test_on_code_change_is_parsed_once_into_a_policy(tmp_path: Path, value: str) -> None:
    policy = new_memo(tmp_path, on_code_change=value).config.on_code_change
    assert policy is CodeChange(value)
    assert policy == value  # still compares equal to its name
    assert policy.serves_other_code == (value != "recompute")
    assert policy.warns == (value == "warn")


@pytest.mark.parametrize("value", ["Warn", "", 1, None])
def test_a_bad_on_code_change_is_named(tmp_path: Path, value: object) -> None:
    with pytest.raises(SpecError, match=r"on_code_change must be one of 'warn', 'recompute', "):
        new_memo(tmp_path, on_code_change=value)


# ---------------------------------------------------------------------------- launch


class PicklingExecutor(ThreadPoolExecutor):
    """Runs submitted tasks on threads of this process, each on a cloudpickled copy of its
    arguments (as a process boundary would), and records what each task received."""

    def __init__(self) -> None:
        super().__init__(2)
        self.received: list[tuple[Any, ...]] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.received.append(args)
        return super().submit(fn, *cloudpickle.loads(cloudpickle.dumps(args)))


def test_launch_tasks_rebuild_their_config_from_the_options(tmp_path: Path) -> None:
    counting = CountingExec(tmp_path / "calls.log")
    memo = new_memo(tmp_path / "cache", counting, max_workers=1, claim_timeout=42.0)
    with PicklingExecutor() as executor:
        handle = memo.launch(PARAMS, SPEC, executor, tasks=2)
        output, diag = handle.result(timeout=60)
    assert output == [expected_output(PARAMS, (x,)) for x in range(6)]
    assert sorted(counting.calls()) == sorted(repr((x,)) for x in range(6))
    assert [args[3] for args in executor.received] == [Share(0, 2), Share(1, 2)]
    for args in executor.received:
        assert type(args[0]) is MemoOptions  # the options, never the facade
        assert args[0] == memo.options
    assert diag.missing_points == 0


def test_a_task_config_runs_off_the_main_thread_with_its_share(tmp_path: Path) -> None:
    memo = new_memo(tmp_path, max_workers=1, claim_timeout=42.0)  # process, one worker: inline
    config = task_config(memo.options, Share(1, 3))
    assert config.backends.spec == ExecutorSpec("thread", 1)
    assert config.share == Share(1, 3)
    assert config.claim_timeout == 42.0
    assert memo.config.backends.spec.kind == "process"
    assert task_config(new_memo(tmp_path, max_workers=2).options, None).backends.spec.kind == (
        "process"
    )


@pytest.mark.parametrize("max_workers", [None, 1, 4])
def test_a_serial_task_runs_on_one_worker_thread(tmp_path: Path, max_workers: int | None) -> None:
    """Serial runs exec_fn on the calling thread, whatever max_workers says: a task moves
    it to one worker thread (one point at a time still)."""
    memo = new_memo(tmp_path, executor="serial", max_workers=max_workers)
    spec = task_config(memo.options, None).backends.spec
    assert spec == ExecutorSpec("thread", 1)
    assert not spec.inline


def test_a_wrapped_frame_names_a_split_spec_that_is_no_dict(tmp_path: Path) -> None:
    counting = CountingExec(tmp_path / "calls.log")
    memo = new_memo(tmp_path / "cache", counting, executor="serial")
    wrapped = memo.run_wrap()(counting)
    with pytest.raises(SpecTypeError, match=r"split_spec must be a dict .*got list"):
        wrapped.to_dataframe(PARAMS, split_spec=[1, 2])
    assert counting.count() == 0
