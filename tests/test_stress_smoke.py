"""The stress scripts' smoke mode (a few trials each): kill -9 of the driver, random
signals, many processes and CLI calls on one cache, bit flips, disk full. Each script
exits non-zero on any loss, wrong value or unexpected exception; the full mode is in the
README. ``symlink_race.py`` has its own test (test_hardening_store.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

STRESS = Path(__file__).resolve().parents[1] / "stress"
SCRIPTS = sorted(
    path.name
    for path in STRESS.glob("*.py")
    if path.name not in {"run_all.py", "common.py", "workload.py", "symlink_race.py"}
)


def test_every_kind_of_stress_has_a_script():
    assert {"kill9.py", "signals.py", "many_processes.py", "bitflip.py", "diskfull.py"} <= set(
        SCRIPTS
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_stress_smoke(script):
    result = subprocess.run(
        [sys.executable, str(STRESS / script), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert " 0 failures" in result.stdout or "skipped:" in result.stdout, result.stdout
