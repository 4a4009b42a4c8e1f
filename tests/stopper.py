"""A sweep run as its own process by the signal tests, with points and stores that wait
for files the test creates, so each signal lands at a moment the test chooses.

python stopper.py CACHE WORKDIR POINTS CHUNK EXEC_CHUNK WORKERS GRACE EXECUTOR DURABLE FAST

Points below FAST return at once; the others wait for ``WORKDIR/release``. Every call is
logged to ``WORKDIR/calls.log``. With ``WORKDIR/block_storing`` present, the driver's
pickling of an output for storage creates ``WORKDIR/storing`` and waits for
``WORKDIR/go``: the test then knows finished points are being stored.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

WAIT_SECONDS = 120.0


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)


class Travelling:
    """An output that knows whether it came back from a worker: only the driver's pickling
    (storing it) waits at the barrier."""

    def __init__(self, x: int, workdir: str, travelled: bool = False) -> None:
        self.x, self.workdir, self.travelled = x, workdir, travelled

    def __reduce__(self) -> tuple[Any, ...]:
        workdir = Path(self.workdir)
        if self.travelled and (workdir / "block_storing").exists():
            (workdir / "storing").touch()
            wait_for(workdir / "go")
        return (Travelling, (self.x, self.workdir, True))


class Blocking:
    """exec_fn: logs each call; points from ``fast`` on wait for the release file."""

    def __init__(self, workdir: str, fast: int) -> None:
        self.workdir, self.fast = workdir, fast

    def __call__(self, params: Any, point: Any) -> Travelling:
        (x,) = point
        fd = os.open(f"{self.workdir}/calls.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"{x}\n".encode())
        finally:
            os.close(fd)
        if x >= self.fast:
            wait_for(Path(self.workdir) / "release")
        return Travelling(x, self.workdir)


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from stopper import Blocking  # by module name: workers and readers import it
    from swarm_memo import SwarmMemo

    cache, workdir, points, chunk, exec_chunk, workers, grace, executor, durable, fast = sys.argv[
        1:11
    ]
    memo = SwarmMemo(
        cache,
        {"x": int(chunk)},
        int(exec_chunk),
        exec_fn=Blocking(workdir, int(fast)),
        max_workers=int(workers),
        executor=executor,
        grace_seconds=float(grace),
        durable=durable == "1",
        verbose=1,
    )
    memo.run({}, {"x": list(range(int(points)))})


if __name__ == "__main__":
    main()
