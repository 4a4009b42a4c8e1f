"""Shared helpers for the swarm-memo benchmarks: CLI, timing, RSS, GC time, bare baselines,
memo pools, ratio lines, summary.

Not a benchmark itself; imported by the ``bench_*.py`` scripts (run them from the
repository root, e.g. ``python benchmarks/bench_engine.py --smoke``).

Every measurement that compares swarm-memo with a baseline goes through :func:`report`,
which prints one line of the form::

    RATIO cold/pool warm: swarm-memo 1.234 s | <baseline> 1.000 s | ratio 1.23 (target <= 1.3: ok)

and remembers it for :func:`print_summary`, which prints all of them again as a table at
the end of the run. Lines starting with ``INFO`` are extra figures without a target.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import swarm_memo

RATIO_PREFIX = "RATIO"
INFO_PREFIX = "INFO"
SKIP_PREFIX = "SKIP"


# ---------------------------------------------------------------------------- CLI


def parse_args(
    description: str, names: list[str], argv: list[str] | None = None
) -> argparse.Namespace:
    """``--smoke`` (tiny sizes, for the test suite) and ``--only NAME`` (one benchmark)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes: checks the benchmark runs, not speed"
    )
    parser.add_argument(
        "--only",
        choices=names,
        action="append",
        help="run only this benchmark (repeatable); default: all of them",
    )
    return parser.parse_args(argv)


def selected(args: argparse.Namespace, names: list[str]) -> list[str]:
    return list(args.only) if args.only else list(names)


# ---------------------------------------------------------------------------- timing


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """``(fn(), seconds)`` measured with ``time.perf_counter``."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def median_seconds(repeats: int, fn: Callable[[], float]) -> float:
    """Median of ``repeats`` calls of ``fn``, each returning the seconds it measured."""
    return statistics.median(fn() for _ in range(max(1, repeats)))


@contextlib.contextmanager
def fresh_dir(prefix: str = "swarm-memo-bench-") -> Iterator[Path]:
    """A new empty temp directory, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def chunk_files(cache_root: Path) -> list[Path]:
    """Every chunk file of a cache: ``cache_root/*/chunks/*.chunk`` (sorted)."""
    return sorted(Path(cache_root).glob("*/chunks/*.chunk"))


def index_files(cache_root: Path) -> list[Path]:
    return sorted(Path(cache_root).glob("*/index/*.idx"))


def total_size(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


# ---------------------------------------------------------------------------- memory


def rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def ru_maxrss_bytes() -> int:
    """Peak RSS of this process so far (Linux reports KiB)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class PeakRSS:
    """Samples this process's RSS in a thread; ``growth`` is peak minus the baseline.

    The baseline is the RSS when the context is entered. ``maxrss_growth`` is the same
    from ``getrusage`` (exact peak, but only meaningful if the process never was larger
    before entering; both are reported).
    """

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.baseline = 0
        self.peak = 0
        self.maxrss_before = 0
        self.maxrss_after = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        import psutil

        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self.baseline = rss_bytes()
        self.peak = self.baseline
        self.maxrss_before = ru_maxrss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())
        self.maxrss_after = ru_maxrss_bytes()

    @property
    def growth(self) -> int:
        return self.peak - self.baseline

    @property
    def maxrss_growth(self) -> int | None:
        """Peak growth from ``getrusage``; None if the peak predates the measurement."""
        if self.maxrss_after <= self.maxrss_before:
            return None
        return self.maxrss_after - self.baseline


MB = 1024 * 1024


# ---------------------------------------------------------------------------- GC time


class GCTime:
    """Seconds the interpreter spends in cyclic garbage collection while the context is open.

    Timed with ``gc.callbacks`` (a ``start`` and a ``stop`` call around every collection,
    whichever thread triggers it: the GIL keeps collections from overlapping).
    ``collections`` counts them by generation.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0

    def _callback(self, phase: str, gc_info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self._started
        self.collections[gc_info["generation"]] += 1

    def __enter__(self) -> GCTime:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


# ---------------------------------------------------------------------------- bare files


def write_batches(folder: Path, outputs: list[Any], chunk: int, fsync: bool = False) -> None:
    """The bare way to store outputs: ``pickle.dump`` batches of ``chunk`` into files."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, start in enumerate(range(0, len(outputs), chunk)):
        with open(folder / f"{i:06d}.pkl", "wb") as fh:
            pickle.dump(outputs[start : start + chunk], fh, protocol=5)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())


def read_batches(folder: Path) -> list[Any]:
    """The bare way to load them back: read + unpickle every file, in name order."""
    outputs: list[Any] = []
    for path in sorted(folder.iterdir()):
        with open(path, "rb") as fh:
            outputs.extend(pickle.loads(fh.read()))
    return outputs


def chunk_body_reader() -> Callable[[bytes], Any]:
    """``body(data)``: the pickled body of a chunk file's bytes, for bare read loops.

    The chunk layout belongs to ``swarm_memo.cache.codec`` (``body_of``); never hard-code its
    offsets here. The legacy engine (before ``body_of`` existed) had a fixed-size header.
    """
    from swarm_memo.cache import codec as _codec

    body_of = getattr(_codec, "body_of", None)
    if body_of is not None:
        return body_of  # type: ignore[no-any-return]
    header_size = _codec.HEADER_SIZE
    return lambda data: memoryview(data)[header_size:]


# ---------------------------------------------------------------------------- memo pools


def legacy_engine() -> bool:
    """True for swarm-memo before memos owned their pool (it used loky's global one)."""
    import importlib.util

    return importlib.util.find_spec("swarm_memo.execution.backends") is None


def _stop_global_loky() -> None:
    try:
        from loky import reusable_executor

        executor = getattr(reusable_executor._executor_storage, "executor", None)
    except (ImportError, AttributeError):
        executor = None
    if executor is not None:
        executor.shutdown(wait=True)


def close_memo(memo: Any) -> None:
    """Shut down the memo's worker pool (``memo.close()``), so the next memo starts cold.

    On the legacy engine the pool was loky's process-global reusable executor, which
    ``close`` did not touch: stop that one too.
    """
    memo.close()
    if legacy_engine():
        _stop_global_loky()


def ensure_cold_pools() -> None:
    """Before a "pool cold" measurement: no pool may survive from earlier work."""
    if legacy_engine():
        _stop_global_loky()


# ---------------------------------------------------------------------------- reporting


@dataclass
class Row:
    bench: str
    case: str
    memo: float
    baseline_name: str
    baseline: float
    unit: str
    ratio: float
    target: str
    verdict: str


_ROWS: list[Row] = []


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "B":
        return f"{value:.1f} B"
    if unit == "MB/s":
        return f"{value:.0f} MB/s"
    if unit in ("ns", "us"):
        return f"{value:.1f} {unit}"
    if unit == "%":
        return f"{value:.1f} %"
    return f"{value:.3f}{(' ' + unit) if unit else ''}"


def report(
    bench: str,
    case: str,
    memo: float,
    baseline_name: str,
    baseline: float,
    unit: str = "s",
    *,
    max_ratio: float | None = None,
    min_ratio: float | None = None,
    note: str = "",
) -> float:
    """Print one ``RATIO`` line (swarm-memo vs baseline, ratio = memo / baseline)."""
    ratio = memo / baseline if baseline else float("inf")
    if max_ratio is not None:
        target = f"<= {max_ratio:g}"
        verdict = "ok" if ratio <= max_ratio else "MISS"
    elif min_ratio is not None:
        target = f">= {min_ratio:g}"
        verdict = "ok" if ratio >= min_ratio else "MISS"
    else:
        target, verdict = "-", "-"
    row = Row(bench, case, memo, baseline_name, baseline, unit, ratio, target, verdict)
    _ROWS.append(row)
    tail = f" (target {target}: {verdict})" if target != "-" else ""
    extra = f"  [{note}]" if note else ""
    print(
        f"{RATIO_PREFIX} {bench}/{case}: swarm-memo {_fmt(memo, unit)} | "
        f"{baseline_name} {_fmt(baseline, unit)} | ratio {ratio:.2f}{tail}{extra}",
        flush=True,
    )
    return ratio


def check(
    bench: str,
    case: str,
    value: float,
    unit: str,
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    note: str = "",
) -> None:
    """An absolute target on a swarm-memo figure (e.g. efficiency >= 0.95), as an INFO line."""
    if at_least is not None:
        verdict = f"target >= {at_least:g}: {'ok' if value >= at_least else 'MISS'}"
    elif at_most is not None:
        verdict = f"target <= {at_most:g}: {'ok' if value <= at_most else 'MISS'}"
    else:
        verdict = ""
    extra = f"  [{note}]" if note else ""
    print(
        f"{INFO_PREFIX} {bench}/{case}: {_fmt(value, unit)}"
        f"{f' ({verdict})' if verdict else ''}{extra}",
        flush=True,
    )


def info(bench: str, text: str) -> None:
    print(f"{INFO_PREFIX} {bench}: {text}", flush=True)


def skip(bench: str, reason: str) -> None:
    print(f"{SKIP_PREFIX} {bench}: skipped ({reason})", flush=True)


def header(bench: str, text: str) -> None:
    print(f"\n== {bench}: {text}", flush=True)


def print_summary(title: str) -> None:
    """All RATIO rows of this run as one table (markdown, pasteable in the README)."""
    if not _ROWS:
        return
    print(f"\n== summary: {title}; {load_line()} at the end")
    print("| benchmark | case | swarm-memo | baseline | baseline value | ratio | target |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in _ROWS:
        target = f"{r.target} {r.verdict}" if r.target != "-" else "-"
        print(
            f"| {r.bench} | {r.case} | {_fmt(r.memo, r.unit)} | {r.baseline_name} | "
            f"{_fmt(r.baseline, r.unit)} | {r.ratio:.2f} | {target} |"
        )
    sys.stdout.flush()


def run_suite(
    suite: str,
    description: str,
    benchmarks: dict[str, Callable[[Any], None]],
    sizes: tuple[Any, Any],
    argv: list[str] | None = None,
) -> None:
    """The command line of a benchmark script: ``[--smoke] [--only NAME ...]``.

    ``sizes`` is ``(full, smoke)``; each selected benchmark is called with one of them.
    """
    names = list(benchmarks)
    args = parse_args(description, names, argv)
    mode = "smoke" if args.smoke else "full"
    print(f"swarm-memo {suite} benchmarks ({mode} sizes); {environment_line()}", flush=True)
    started = time.perf_counter()
    for name in selected(args, names):
        benchmarks[name](sizes[1] if args.smoke else sizes[0])
    print_summary(f"bench_{suite} ({mode}), {time.perf_counter() - started:.0f} s in total")


def environment_line() -> str:
    import platform

    where = Path(swarm_memo.__file__).resolve().parent.parent
    return (
        f"swarm-memo from {where}, python {platform.python_version()}, {os.cpu_count()} "
        f"cores, {platform.system()} {platform.machine()}, {load_line()}"
    )


def load_line() -> str:
    """The 1-minute load average: other work on the machine skews every figure."""
    try:
        return f"load average {os.getloadavg()[0]:.2f}"
    except OSError:
        return "load average unknown"
