"""Run every stress script of this folder: ``python stress/run_all.py [--smoke |
--trials=N]`` (``--trials=N`` reaches the scripts that count trials).

Scripts are discovered (every ``stress/*.py`` with a ``main``, this runner and the shared
modules excepted) and run one after another as subprocesses with the same flags; the
runner prints each report and exits 1 if any script failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
NOT_SCRIPTS = {"run_all.py", "common.py", "workload.py"}


def scripts() -> list[Path]:
    return sorted(
        path
        for path in HERE.glob("*.py")
        if path.name not in NOT_SCRIPTS and "def main(" in path.read_text()
    )


def main() -> int:
    flags = sys.argv[1:]
    failed: list[str] = []
    started = time.monotonic()
    path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}  # this checkout's swarm_memo
    for script in scripts():
        text = script.read_text()
        counts = "--trials" in text or "begin(" in text  # common.begin parses --trials
        takes = [f for f in flags if counts or not f.startswith("--trials")]
        print(f"== {script.name} {' '.join(takes)}", flush=True)
        result = subprocess.run([sys.executable, str(script), *takes], env=env, check=False)
        if result.returncode != 0:
            failed.append(script.name)
    seconds = time.monotonic() - started
    print(f"stress: {len(scripts())} scripts, {len(failed)} failed {failed}, {seconds:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
