"""A stand-in for one node of a cluster: ``python cluster_node.py JOB_JSON`` runs one task
of a launch (``LaunchTask`` with its share) or a plain ``run`` on a shared cache, counting
every ``exec_fn`` call in a log file (``helpers.CountingExec``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
PARAMS = {"alpha": 3}


def memo_for(job: dict[str, Any]) -> Any:
    from helpers import CountingExec
    from swarm_memo import SwarmMemo

    return SwarmMemo(
        job["root"],
        {"x": job["bins"]},
        job.get("exec_chunk", 1),
        exec_fn=CountingExec(Path(job["log"]), sleep=job.get("sleep", 0.0)),
        max_workers=1,
        executor="thread",
        verbose=0,
        storage_options=job.get("storage_options"),
        claim_timeout=job.get("claim_timeout", 600.0),
    )


def spec_for(job: dict[str, Any]) -> dict[str, list[Any]]:
    return {"x": list(range(job["points"]))}


def main(job: dict[str, Any]) -> None:
    from swarm_memo._launch import LaunchTask
    from swarm_memo._order import Share

    memo = memo_for(job)
    share = None if job.get("share") is None else Share(*job["share"])
    if job.get("mode") == "run":
        diag = memo.run_streaming(PARAMS, spec_for(job))
    else:
        diag = LaunchTask()(memo, PARAMS, spec_for(job), share)
    memo.close()
    print(json.dumps({"executed": diag.executed_points}), flush=True)


def start(job: dict[str, Any], env: dict[str, str]) -> subprocess.Popen[str]:
    """Start one node as a subprocess."""
    return subprocess.Popen(
        [sys.executable, __file__, json.dumps(job)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
