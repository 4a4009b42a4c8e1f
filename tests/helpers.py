"""Exec functions for tests that record every call in a file, across processes."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import itertools
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any


class CountingExec:
    """``exec_fn`` that appends one line per call to a log file (safe across processes)."""

    def __init__(self, log: Path, fail_on: Any = None, sleep: float = 0.0) -> None:
        self.log = str(log)
        self.fail_on = fail_on
        self.sleep = sleep

    def __call__(self, params: dict[str, Any], point: Any) -> Any:
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (repr(point) + "\n").encode())
        finally:
            os.close(fd)
        if self.sleep:
            time.sleep(self.sleep)
        if self.fail_on is not None and point == self.fail_on:
            raise ValueError(f"boom at {point!r}")
        return expected_output(params, point)

    def calls(self) -> list[str]:
        try:
            return Path(self.log).read_text().splitlines()
        except FileNotFoundError:
            return []

    def count(self) -> int:
        return len(self.calls())

    def counter(self) -> Counter[str]:
        return Counter(self.calls())

    def reset(self) -> None:
        Path(self.log).unlink(missing_ok=True)


class LockAt(CountingExec):
    """``CountingExec`` whose output at point ``lock_at`` is a lock: it cannot be pickled,
    so it can be neither sent back from a worker process nor stored."""

    def __init__(self, log: Path, lock_at: Any) -> None:
        super().__init__(log)
        self.lock_at = lock_at

    def __call__(self, params: dict[str, Any], point: Any) -> Any:
        output = super().__call__(params, point)
        return threading.Lock() if point == self.lock_at else output


def chunk_files(root: Path) -> list[Path]:
    """Every chunk file under a cache root (any params set), sorted."""
    return sorted(Path(root).glob("*/chunks/*.chunk"))


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def meet(folder: Path, parties: int, timeout: float = 60.0) -> None:
    """A barrier between processes: the caller leaves its pid in ``folder`` and returns
    once ``parties`` distinct processes have (a process may call again: it counts once).
    Fails naming the processes seen when fewer arrive within ``timeout`` seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(os.getpid())).touch()
    wait_until(
        lambda: len(os.listdir(folder)) >= parties,
        timeout,
        f"{parties} processes at {folder} (came: {sorted(os.listdir(folder))})",
    )


class MeetingPids:
    """``exec_fn`` returning its process id, each call first meeting the other workers of
    the same run (same params) at a barrier of ``parties`` processes: a run that returns
    proves ``parties`` processes got work, whatever the timing; with fewer its first
    point fails after ``timeout`` seconds."""

    def __init__(self, folder: Path, parties: int, timeout: float = 60.0) -> None:
        self.folder, self.parties, self.timeout = str(folder), parties, timeout

    def __call__(self, params: dict[str, Any], point: Any) -> int:
        run = hashlib.blake2b(repr(sorted(params.items())).encode(), digest_size=8).hexdigest()
        meet(Path(self.folder) / run, self.parties, self.timeout)
        return os.getpid()


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def bench_smoke(script: str, *args: str, timeout: float = 120) -> str:
    """``benchmarks/<script> --smoke *args`` run from the repository root: its stdout,
    after asserting that it exited 0 (the assertion shows its output)."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--smoke", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=BENCHMARKS.parent,
    )
    assert proc.returncode == 0, f"{script} --smoke failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def expected_output(params: dict[str, Any], point: Any) -> Any:
    """What ``CountingExec`` returns: depends on params and point, cheap to recompute."""
    return {"point": point, "alpha": params.get("alpha"), "pid_free": repr(point) + "!"}


def grid_points(spec: dict[str, list[Any]], axis_order: Sequence[str]) -> list[tuple[Any, ...]]:
    """Every point of a split spec in grid order: row-major over ``axis_order``."""
    return list(itertools.product(*(spec[axis] for axis in axis_order)))


def grid_expected(
    params: dict[str, Any], spec: dict[str, list[Any]], axis_order: Sequence[str]
) -> list[Any]:
    """The grid-order oracle: what ``run()`` returns with the default collate and merge."""
    return [expected_output(params, point) for point in grid_points(spec, axis_order)]


def outputs_under_hash_seeds(code: str, seeds: Sequence[str]) -> set[str]:
    """The distinct stdouts of ``python -c code`` run once per ``PYTHONHASHSEED``, with
    only this checkout's ``swarm_memo`` importable: one element when the output does not
    depend on str hashing."""
    import subprocess
    import sys

    import swarm_memo

    source_root = str(Path(swarm_memo.__file__).parents[1])
    return {
        subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed, "PATH": "", "PYTHONPATH": source_root},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in seeds
    }


NOBODY = 65534
"""The unprivileged uid and gid a root test process drops to (``nobody``)."""


def read_only_base() -> Path:
    """A folder for a cache that ``run_read_only`` can make read-only for real: made by
    this process (root or not) in the system's temp folder (pytest's is closed to other
    users), traversable by everyone, with a ``log/`` folder anyone may write (for the
    ``CountingExec`` log of the unprivileged child). The caller removes it."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="swarm-memo-ro-"))
    base.chmod(0o755)
    (base / "log").mkdir()
    (base / "log").chmod(0o777)
    return base


def run_read_only(cache: Path, fn: Any) -> Any:
    """``fn()`` in a forked child for which ``cache`` is really read-only: as root, the
    child drops to uid/gid ``nobody`` (root ignores file modes); otherwise the cache's
    folders lose their write bits while the child runs. Returns ``("ok", result)`` or
    ``("raised", exception)``; no new interpreter starts, so the child needs no access to
    the interpreter's or the venv's files (``/root`` is often closed to ``nobody``)."""
    import pickle

    as_root = os.geteuid() == 0
    folders = [cache, *(p for p in cache.rglob("*") if p.is_dir() and not p.is_symlink())]
    if not as_root:
        for folder in folders:
            folder.chmod(0o555)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        try:
            if as_root:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            try:
                outcome: tuple[str, Any] = ("ok", fn())
            except BaseException as exc:  # handed to the parent
                outcome = ("raised", exc)
            try:
                data = pickle.dumps(outcome)
            except Exception as exc:  # an unpicklable result
                data = pickle.dumps(("raised", RuntimeError(f"{outcome!r}: {exc}")))
            with os.fdopen(write, "wb") as out:
                out.write(data)
        finally:
            os._exit(0)
    os.close(write)
    try:
        with os.fdopen(read, "rb") as inp:
            data = inp.read()
        os.waitpid(pid, 0)
    finally:
        if not as_root:
            for folder in folders:
                folder.chmod(0o755)
    return pickle.loads(data)


@contextlib.contextmanager
def module_file(folder: Path, name: str, source: str) -> Iterator[ModuleType]:
    """A user's module in a real file ``folder/name.py``, importable while the context
    lasts; a test may edit the file and reload it (no bytecode is written, so a reload
    compiles the edited source)."""
    import pytest

    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(source)
    mp = pytest.MonkeyPatch()
    mp.setattr(sys, "dont_write_bytecode", True)
    mp.syspath_prepend(str(folder))
    importlib.invalidate_caches()
    try:
        yield importlib.import_module(name)
    finally:
        mp.undo()
        sys.modules.pop(name, None)


def edit_module(module: ModuleType, old: str, new: str) -> ModuleType:
    """Replace ``old`` by ``new`` in a :func:`module_file` module's source, and reload it."""
    path = Path(str(module.__file__))
    source = path.read_text()
    assert old in source
    path.write_text(source.replace(old, new))
    importlib.invalidate_caches()
    return importlib.reload(module)
