"""Launch benchmark: one sweep fanned out as a job array of local submitit tasks, against
the same sweep run in one process.

Run from the repository root (needs ``pip install submitit``)::

    python benchmarks/bench_launch.py            # full: 2,000 points of ~1 ms (about 5 s)
    python benchmarks/bench_launch.py --smoke    # 100 points, checks it runs

One benchmark, ``launch`` (``--only launch``), on a fresh cache each time:

1. ``memo.launch(params, spec, AutoExecutor(cluster="local"), tasks=2)`` then
   ``.result()``: two task processes, each a memo with ``max_workers=1``, spread the chunks
   through claims; the figure includes starting the tasks (a Python process each), the
   polling of ``result()`` and the final load;
2. ``memo.run(params, spec)`` in this process with ``max_workers=2`` (a loky pool, started
   cold by a fresh memo).

The exec function busy-waits ~1 ms per point; ``memo_chunk_spec`` {"x": 100} (20 chunk
files), ``exec_chunk_size`` 50. The ratio is launch / run: what the job array costs on one
machine, where it cannot win; on a cluster the tasks run on other machines. Both sweeps
are checked to compute every point exactly once (INFO lines give the counts).

Smoke sizes: 100 points, chunks of 10, exec chunks of 5.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import fresh_dir, header, info, report, run_suite, skip, timed


def busy(params, point):
    """~``params['ms']`` milliseconds of CPU per point (busy wait, not sleep)."""
    until = time.perf_counter() + params["ms"] / 1000
    while time.perf_counter() < until:
        pass
    return point[0] * 2


@dataclass(frozen=True)
class Sizes:
    points: int
    bin_size: int
    exec_chunk: int
    ms: float


FULL = Sizes(2000, 100, 50, 1.0)
SMOKE = Sizes(100, 10, 5, 1.0)


def new_memo(root: Path, sz: Sizes, workers: int):
    from swarm_memo import SwarmMemo

    return SwarmMemo(
        root, {"x": sz.bin_size}, sz.exec_chunk, exec_fn=busy, max_workers=workers, verbose=0
    )


def bench_launch(sz: Sizes) -> None:
    try:
        import submitit
    except ImportError:
        skip("launch", "submitit is not installed: pip install submitit")
        return
    header(
        "launch",
        f"{sz.points:,} points of ~{sz.ms:g} ms, memo_chunk_spec {{'x': {sz.bin_size}}}, "
        f"exec_chunk_size {sz.exec_chunk}: 2 local submitit tasks x 1 worker vs run with "
        "2 workers",
    )
    params = {"ms": sz.ms}
    spec = {"x": list(range(sz.points))}
    expected = [x * 2 for x in spec["x"]]

    with fresh_dir() as tmp:
        executor = submitit.AutoExecutor(folder=tmp / "jobs", cluster="local")
        executor.update_parameters(timeout_min=30)
        memo = new_memo(tmp / "launched", sz, workers=1)

        submitted = []

        def launched():
            handle, t_submit = timed(lambda: memo.launch(params, spec, executor, tasks=2))
            submitted.append(t_submit)
            return handle, handle.result()

        (handle, (out, _)), t_launch = timed(launched)
        info("launch", f"launch() returned after {submitted[0]:.3f} s (status + submission)")
        assert out == expected
        executed = [d.executed_points for d in handle.task_diagnostics]
        assert sum(executed) == sz.points, executed
        info("launch", f"points executed per task: {executed} (sum must be {sz.points})")

        single = new_memo(tmp / "single", sz, workers=2)
        (out, diag), t_run = timed(lambda: single.run(params, spec))
        single.close()
        assert out == expected
        assert diag.executed_points == sz.points, diag

        report("launch", "2 local tasks", t_launch, "run max_workers=2", t_run)
        ideal = sz.points * sz.ms / 1000 / 2
        info("launch", f"ideal (points x ms / 2 workers): {ideal:.3f} s")
        info("launch", f"launch overhead over run: {t_launch - t_run:.3f} s")


if __name__ == "__main__":
    run_suite("launch", __doc__.splitlines()[0], {"launch": bench_launch}, (FULL, SMOKE))
