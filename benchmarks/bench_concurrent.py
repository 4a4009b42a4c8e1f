"""Concurrent sweeps on one cache: two processes sweep the same points at the same time,
with the same ``memo_chunk_spec`` or with different ones.

Run from the repository root::

    python benchmarks/bench_concurrent.py            # full: 360 points of ~10 ms (about 90 s)
    python benchmarks/bench_concurrent.py --smoke    # 24 points, checks it runs

Two benchmarks. ``concurrent`` (``--only concurrent``): Each sweep is a subprocess (this
script with ``--worker``) running ``memo.run(params, spec)`` with ``max_workers=1`` (in
process, no pool: the two sweeps use one core each) on a fresh cache shared by the pair.
The exec function sleeps ~10 ms per point (a sleep, not a busy wait, so the figures do not
depend on the other load of the machine) and appends one line per call to a log file
shared by both processes: the log counts the calls of every point across the pair.

Cases, each with the second process started 0 s and ~1 s after the first:

- *same bins*: both sweeps use ``{"x": 12}``; claims spread the chunks over the two
  processes, so no point should be computed twice (the baseline);
- *different bins*: the first uses ``{"x": 12}``, the second ``{"x": 30}``; claims are per
  chunk name, so neither sees the other's claims.

It prints the points computed twice (and the total calls against the number of points),
each process's Diagnostics (points executed, served from the cache, of which reused from
other chunks' files), and, as a RATIO line, the wall time of the pair (first start to last
end, Python start-up included) against one process sweeping alone with ``{"x": 12}``.

``tasks`` (``--only tasks``): three processes sweep the same points with bins
``{"x": bins_a}``, started together, on a local cache and on an S3 cache (a moto server on
loopback, started by the benchmark; skipped without moto). Either as the three tasks of a
launch (``LaunchTask`` with shares 0, 1, 2 of 3) or as three plain ``run``s, with claims
(record locks locally, leases on S3) or without (``SWARM_MEMO_CLAIMS=off``: the
partition alone). It prints the duplicate executions (calls beyond one per point) and the
wall time of the three against one process alone.

Smoke sizes: 24 points of ~2 ms, bins 4 and 6, staggers 0 and 0.2 s; ``tasks`` runs
only its local launch cases.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

LOG_ENV = "SWARM_MEMO_BENCH_CONCURRENT_LOG"
"""The shared call log; an environment variable, so that its path is not part of the key."""


def slow_double(params, point):
    """Sleep ``params['ms']`` milliseconds, log the call (pid and x), return ``2 * x``."""
    time.sleep(params["ms"] / 1000)
    with open(os.environ[LOG_ENV], "a") as log:  # one short O_APPEND write per call
        log.write(f"{os.getpid()} {point[0]}\n")
    return point[0] * 2


@dataclass(frozen=True)
class Sizes:
    points: int
    bins_a: int
    bins_b: int
    exec_chunk: int
    ms: float
    staggers: tuple[float, ...]
    runs: bool = True
    """``tasks``: also the cases of 3 plain runs, and the S3 cases (not in smoke, where
    the local launch cases check that it runs; tests/test_cluster.py covers S3)."""


FULL = Sizes(360, 12, 30, 6, 10.0, (0.0, 1.0))
SMOKE = Sizes(24, 4, 6, 2, 2.0, (0.0, 0.2), runs=False)


# ---------------------------------------------------------------------------- worker


def worker(argv: list[str]) -> None:
    """``--worker ROOT BINS POINTS EXEC_CHUNK MS [SHARE [OPTIONS]]``: one sweep (``SHARE``
    ``i/N``: task i of a launch of N; ``-``: a run); prints its figures as JSON."""
    from swarm_memo import SwarmMemo
    from swarm_memo.identity.order import Share
    from swarm_memo.run.launch import LaunchTask

    root, bins, points, exec_chunk, ms = argv[:5]
    share = argv[5] if len(argv) > 5 else "-"
    options = json.loads(argv[6]) if len(argv) > 6 else None
    started = time.time()
    memo = SwarmMemo(
        root,
        {"x": int(bins)},
        int(exec_chunk),
        exec_fn=slow_double,
        max_workers=1,
        verbose=0,
        storage_options=options,
    )
    spec = {"x": list(range(int(points)))}
    if share == "-":
        out, diag = memo.run({"ms": float(ms)}, spec)
        assert out == [x * 2 for x in spec["x"]], "wrong outputs"
    else:
        index, count = (int(n) for n in share.split("/"))
        diag = LaunchTask()(memo.options, {"ms": float(ms)}, spec, Share(index, count))
    memo.close()
    figures = {
        "started": started,
        "ended": time.time(),
        "executed": diag.executed_points,
        "reused": diag.reused_points,
        "cached": diag.cached_points,
    }
    print(json.dumps(figures), flush=True)


# ---------------------------------------------------------------------------- driver


def start(
    root: Path | str,
    bins: int,
    sz: Sizes,
    log: Path,
    share: str = "-",
    options: dict[str, str] | None = None,
    claims: bool = True,
) -> subprocess.Popen[str]:
    import swarm_memo

    src = str(Path(swarm_memo.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env[LOG_ENV] = str(log)
    env.pop("SWARM_MEMO_CLAIMS", None)
    if not claims:
        env["SWARM_MEMO_CLAIMS"] = "off"
    args = [str(root), str(bins), str(sz.points), str(sz.exec_chunk), str(sz.ms), share]
    args.append(json.dumps(options))
    return subprocess.Popen(
        [sys.executable, __file__, "--worker", *args],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> dict[str, float]:
    stdout, _ = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"a sweep process failed (exit {proc.returncode}): {stdout}")
    return json.loads(stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class Outcome:
    wall: float
    twice: int
    calls: int
    figures: list[dict[str, float]]


def sweep(tmp: Path, name: str, bins: list[int], stagger: float, sz: Sizes) -> Outcome:
    """Start one process per entry of ``bins`` (``stagger`` s apart) on one fresh cache."""
    root, log = tmp / name / "cache", tmp / name / "calls.log"
    log.parent.mkdir(parents=True)
    log.touch()
    t0 = time.perf_counter()
    procs = []
    for i, b in enumerate(bins):
        if i:
            time.sleep(stagger)
        procs.append(start(root, b, sz, log))
    figures = [finish(p) for p in procs]
    wall = time.perf_counter() - t0
    counts = collections.Counter(line.split()[1] for line in log.read_text().splitlines())
    assert len(counts) == sz.points, f"{len(counts)} points logged, {sz.points} expected"
    twice = sum(1 for n in counts.values() if n > 1)
    return Outcome(wall, twice, sum(counts.values()), figures)


def describe(bench: str, case: str, o: Outcome, sz: Sizes) -> None:
    from _common import info

    info(
        bench,
        f"{case}: points computed twice {o.twice} of {sz.points} "
        f"(exec_fn calls {o.calls}); pair wall {o.wall:.2f} s",
    )
    first = o.figures[0]["started"]
    for i, f in enumerate(o.figures):
        info(
            bench,
            f"{case}: process {i + 1} started {f['started'] - first:+.2f} s, ran "
            f"{f['ended'] - f['started']:.2f} s: executed {f['executed']}, from the cache "
            f"{f['cached']} (of which from other chunks' files {f['reused']})",
        )


def bench_concurrent(sz: Sizes) -> None:
    from _common import fresh_dir, header, info, report

    bench = "concurrent"
    header(
        bench,
        f"2 processes x 1 worker sweep the same {sz.points} points of ~{sz.ms:g} ms on one "
        f"cache (exec_chunk_size {sz.exec_chunk}), bins {{'x': {sz.bins_a}}} for both or "
        f"{{'x': {sz.bins_a}}} and {{'x': {sz.bins_b}}}; second started 0 s or later",
    )
    with fresh_dir() as tmp:
        alone = sweep(tmp, "alone", [sz.bins_a], 0.0, sz)
        assert alone.calls == sz.points, alone
        info(bench, f"one process alone, bins {sz.bins_a}: wall {alone.wall:.2f} s")
        cases = [
            ("same bins", [sz.bins_a, sz.bins_a]),
            ("different bins", [sz.bins_a, sz.bins_b]),
        ]
        for stagger in sz.staggers:
            for label, bins in cases:
                case = f"{label} {bins[0]}/{bins[1]}, stagger {stagger:g} s"
                o = sweep(tmp, f"{label.replace(' ', '-')}-{stagger:g}", bins, stagger, sz)
                describe(bench, case, o, sz)
                report(bench, case, o.wall, "one process alone", alone.wall)


# ---------------------------------------------------------------------------- tasks


@contextlib.contextmanager
def s3_server() -> Iterator[dict[str, str] | None]:
    """A moto S3 server on loopback (storage options), or None without moto/s3fs."""
    try:
        import s3fs  # noqa: F401
        from moto.server import ThreadedMotoServer
    except ImportError:
        yield None
        return
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield {"endpoint_url": f"http://{host}:{port}", "key": "bench", "secret": "bench"}
    finally:
        server.stop()


def s3_root(options: dict[str, str], name: str) -> str:
    import fsspec

    bucket = f"bench-{name}-{uuid.uuid4().hex[:8]}"
    fsspec.filesystem("s3", **options).mkdir(bucket)
    return f"s3://{bucket}/cache"


def several(
    tmp: Path, name: str, root: str, sz: Sizes, shares: list[str], claims: bool, options: Any
) -> tuple[int, float]:
    """One process per share at once on ``root``; (duplicate executions, wall seconds)."""
    log = tmp / name / "calls.log"
    log.parent.mkdir(parents=True)
    log.touch()
    t0 = time.perf_counter()
    procs = [start(root, sz.bins_a, sz, log, share, options, claims) for share in shares]
    for proc in procs:
        finish(proc)
    wall = time.perf_counter() - t0
    counts = collections.Counter(line.split()[1] for line in log.read_text().splitlines())
    assert len(counts) == sz.points, f"{len(counts)} points logged, {sz.points} expected"
    return sum(counts.values()) - sz.points, wall


def bench_tasks(sz: Sizes) -> None:
    from _common import fresh_dir, header, info, report, skip

    bench = "tasks"
    header(
        bench,
        f"3 processes x 1 worker sweep the same {sz.points} points of ~{sz.ms:g} ms, bins "
        f"{{'x': {sz.bins_a}}}, started together: a launch's 3 tasks (shares) or 3 runs, "
        "with claims (locks / S3 leases) or without",
    )
    with fresh_dir() as tmp, s3_server() if sz.runs else contextlib.nullcontext() as options:
        stores: list[tuple[str, Any]] = [("local", None)]
        if options is not None:
            stores.append(("S3", options))
        elif sz.runs:
            skip(bench, "S3 cases need moto[server] and s3fs")
        for store, opts in stores:

            def root_of(name: str, opts: Any = opts) -> str:
                return str(tmp / name / "cache") if opts is None else s3_root(opts, "t")

            name = f"{store}-alone"
            _, alone = several(tmp, name, root_of(name), sz, ["-"], True, opts)
            info(bench, f"{store}: one process alone, wall {alone:.2f} s")
            cases = [(True, True), (True, False), (False, True), (False, False)]
            for launch, claims in cases if sz.runs else cases[:2]:
                name = f"{store}-{'tasks' if launch else 'runs'}-{'claims' if claims else 'none'}"
                shares = [f"{i}/3" if launch else "-" for i in range(3)]
                dup, wall = several(tmp, name, root_of(name), sz, shares, claims, opts)
                what = "launch 3 tasks" if launch else "3 runs"
                how = ("leases" if opts else "locks") if claims else "no claims"
                case = f"{store} {what}, {how}"
                info(
                    bench,
                    f"{case}: duplicate executions {dup} of {sz.points} points "
                    f"({dup / sz.points:.1%}); wall {wall:.2f} s",
                )
                report(bench, case, wall, f"one process alone ({store})", alone)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2:])
    else:
        from _common import run_suite

        run_suite(
            "concurrent",
            __doc__.splitlines()[0],
            {"concurrent": bench_concurrent, "tasks": bench_tasks},
            (FULL, SMOKE),
        )
