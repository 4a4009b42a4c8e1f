"""The sweep every stress script hammers, and its oracle.

As a script: ``python workload.py CACHE LOG POINTS [--start K] [--check] [--workers N]
[--sleep S] [--executor E] [--grace G] [--durable 0|1] [--block-storing DIR]`` runs the
sweep of points K..POINTS-1 once (verbose=1 on stderr; ``--check``: exit 3 on a wrong
output). exec_fn logs ``start X`` and ``done X`` lines to LOG (one write
each, safe across processes). With ``--block-storing DIR``, the driver's pickling of an
output for storage creates ``DIR/storing`` and waits for ``DIR/go``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

BIN = 5
"""Points per memo chunk."""


def spec(points: int) -> dict[str, list[int]]:
    return {"x": list(range(points))}


def expected(x: int, pad: int = 0) -> dict[str, Any]:
    """The exact output of point ``x`` (with ``pad`` bytes of padding: params {"pad": N})."""
    out: dict[str, Any] = {"x": x, "square": x * x, "text": f"point-{x}" * (1 + x % 3)}
    if pad:
        out["pad"] = "p" * pad
    return out


def _log(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


class Output(dict):  # type: ignore[type-arg]
    """The output of a point: a dict equal to :func:`expected`. With ``STRESS_BARRIER``
    set, its pickling in the driver (storing it) waits at that folder's barrier."""

    def __reduce__(self) -> Any:
        barrier = os.environ.get("STRESS_BARRIER", "")
        if barrier and os.getpid() == int(os.environ.get("STRESS_DRIVER", "0")):
            (Path(barrier) / "storing").touch()
            deadline = time.monotonic() + 60
            while not (Path(barrier) / "go").exists() and time.monotonic() < deadline:
                time.sleep(0.005)
        return (Output, (dict(self),))


class Compute:
    """exec_fn of the workload: logs its start and end, sleeps, returns the oracle."""

    def __init__(self, log: str = "", sleep: float = 0.0) -> None:
        self.log, self.sleep = log, sleep

    def __call__(self, params: Any, point: Any) -> Any:
        x = point[0] if isinstance(point, tuple) else point
        if self.log:
            _log(self.log, f"start {x}")
        if self.sleep:
            time.sleep(self.sleep * (0.5 + (x * 7919 % 100) / 100))
        out = expected(x, params.get("pad", 0) if isinstance(params, dict) else 0)
        if self.log:
            _log(self.log, f"done {x}")
        return Output(out)


compute = Compute()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("cache")
    parser.add_argument("log")
    parser.add_argument("points", type=int)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sleep", type=float, default=0.01)
    parser.add_argument("--executor", default="process")
    parser.add_argument("--grace", type=float, default=20.0)
    parser.add_argument("--durable", type=int, default=1)
    parser.add_argument("--block-storing", default="")
    parser.add_argument("--start", type=int, default=0, help="first point")
    parser.add_argument("--check", action="store_true", help="exit 3 on a wrong output")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import workload  # by module name: workers and readers import it

    from swarm_memo import SwarmMemo

    os.environ["STRESS_DRIVER"] = str(os.getpid())
    os.environ["STRESS_BARRIER"] = args.block_storing
    memo = SwarmMemo(
        args.cache,
        {"x": BIN},
        2,
        exec_fn=workload.Compute(args.log, args.sleep),
        max_workers=args.workers,
        executor=args.executor,
        grace_seconds=args.grace,
        durable=bool(args.durable),
        verbose=1,
        on_code_change="ignore",  # readers use another Compute instance
    )
    points = list(range(args.start, args.points))
    output, _ = memo.run({}, {"x": points})
    if args.check and output != [expected(x) for x in points]:
        print("swarm-memo stress: WRONG OUTPUT", file=sys.stderr)
        sys.exit(3)


if __name__ == "__main__":
    main()
