"""A stand-in for one node of a cluster: ``python cluster_node.py JOB_JSON`` runs one task
of a launch (``LaunchTask`` with its share) or a plain ``run`` on a shared cache, counting
every ``exec_fn`` call in a log file (``helpers.CountingExec``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
PARAMS = {"alpha": 3}
TASK_LOG = "SWARM_MEMO_TEST_TASK_LOG"
"""Environment variable: a second log of this process's calls (not part of the code
fingerprint, so that every node runs the same exec_fn)."""


class NodeExec:
    """``CountingExec`` that also logs to this node's own file, if ``TASK_LOG`` is set."""

    def __init__(self, log: Path, sleep: float) -> None:
        from helpers import CountingExec

        self.counting = CountingExec(log, sleep=sleep)

    def __call__(self, params: dict[str, Any], point: Any) -> Any:
        own = os.environ.get(TASK_LOG)
        if own:
            with open(own, "a") as log:
                log.write(repr(point) + "\n")
        return self.counting(params, point)


def memo_for(job: dict[str, Any]) -> Any:
    from swarm_memo import SwarmMemo

    return SwarmMemo(
        job["root"],
        {"x": job["bins"]},
        job.get("exec_chunk", 1),
        exec_fn=NodeExec(Path(job["log"]), job.get("sleep", 0.0)),
        max_workers=1,
        executor=job.get("executor", "thread"),
        verbose=0,
        storage_options=job.get("storage_options"),
        claim_timeout=job.get("claim_timeout", 600.0),
    )


def spec_for(job: dict[str, Any]) -> dict[str, list[Any]]:
    return {"x": list(range(job["points"]))}


def main(job: dict[str, Any]) -> None:
    from swarm_memo.identity.order import Share
    from swarm_memo.run.launch import LaunchTask

    memo = memo_for(job)
    share = None if job.get("share") is None else Share(*job["share"])
    if job.get("mode") == "run":
        diag = memo.run_streaming(PARAMS, spec_for(job))
    else:
        diag = LaunchTask()(memo.options, PARAMS, spec_for(job), share)
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
