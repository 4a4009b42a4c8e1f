"""Watch a sweep: the progress report and the coverage picture of a params set.

Runs a sweep in which one point fails (``on_error="skip"``), then shows what
``swarm-memo progress`` and ``swarm-memo show`` print about it, and the same grid from
``memo.status(...).picture()``::

    python examples/watch.py

From another terminal, while a long sweep runs, the same commands watch it live:
``swarm-memo progress CACHE_ROOT --watch`` and ``swarm-memo show CACHE_ROOT SET --axes
gain,seed``. The cache lives in a temporary folder, removed at the end.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from swarm_memo import SwarmMemo


def simulate(params: dict[str, Any], point: tuple[float, int]) -> float:
    """A toy simulation that diverges for one (gain, seed)."""
    gain, seed = point
    if gain == 0.8 and seed == 2:
        raise FloatingPointError("diverged")
    return params["scale"] * gain * (seed + 1)


def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        memo = SwarmMemo(root, {"gain": 2, "seed": 4}, 4, exec_fn=simulate,
                         executor="serial", on_error="skip", verbose=0)  # fmt: skip
        spec = {"gain": [0.2, 0.4, 0.6, 0.8, 1.0], "seed": [0, 1, 2, 3]}
        _, diag = memo.run({"scale": 1.5}, {"gain": spec["gain"][:4], "seed": spec["seed"]})
        print(f"stored {diag.executed_points - len(diag.failures)} points, "
              f"{len(diag.failures)} failed\n")  # fmt: skip
        command = [sys.executable, "-m", "swarm_memo"]
        subprocess.run([*command, "progress", root], check=True)
        set_prefix = next(p.name for p in Path(root).iterdir() if p.is_dir())[:8]
        print()
        subprocess.run([*command, "show", root, set_prefix, "--axes", "gain,seed"], check=True)
        print("\nmemo.status(...).picture(('gain', 'seed')) for the whole grid:")
        picture = memo.status({"scale": 1.5}, spec).picture(("gain", "seed"))
        print("\n".join(picture.lines()))


if __name__ == "__main__":
    main()
