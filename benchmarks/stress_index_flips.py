"""Stress: flip every bit of an index segment, one at a time, and serve a rebinned request.

Not a timing benchmark: it counts wrong outputs and exceptions (issue 17, item 5; the
target is 0 and 0, warnings allowed). For each bit the cache is copied afresh, the bit is
flipped, then a rebinned ``run`` (which may rewrite the index and writes new chunk files)
and a ``load`` of the same request on a second copy (which never writes) are checked
against the right outputs; the run's new chunk files are checked by a later ``load``.

    python benchmarks/stress_index_flips.py            # every bit (a few minutes)
    python benchmarks/stress_index_flips.py --bits 200 # the first 200 bits
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import swarm_memo
from swarm_memo import SwarmMemo

SPEC = {"x": [0, 1, 2, 3], "y": ["a", "b"]}


def exec_fn(params: dict[str, Any], point: Any) -> str:
    return repr(point)


def memo(root: Path, x_bins: int) -> SwarmMemo:
    return SwarmMemo(root, {"x": x_bins, "y": 2}, 4, exec_fn=exec_fn, executor="serial", verbose=0)


def check(call: Any, right: list[str], tally: Counter[str]) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            output = call()
        except Exception as exc:
            tally[f"exception {type(exc).__name__}"] += 1
            return
    for warning in caught:
        tally[f"warning {warning.category.__name__}"] += 1
    tally["right" if output == right else "WRONG"] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, default=None, help="only the first N bits")
    args = parser.parse_args()
    logging.getLogger("swarm_memo").setLevel(logging.ERROR)  # one warning per flip otherwise
    print(f"swarm-memo {swarm_memo.__version__} from {Path(swarm_memo.__file__).parent}")
    base = Path(tempfile.mkdtemp(prefix="swarm-memo-flips-"))
    try:
        source = base / "source"
        memo(source, 2).run({}, SPEC)
        (segment,) = source.rglob("*.idx")
        data = segment.read_bytes()
        relative = segment.relative_to(source)
        right = [repr((x, y)) for x in SPEC["x"] for y in SPEC["y"]]
        bits = 8 * len(data) if args.bits is None else min(args.bits, 8 * len(data))
        runs: Counter[str] = Counter()
        loads: Counter[str] = Counter()
        for bit in range(bits):
            flipped = bytearray(data)
            flipped[bit // 8] ^= 1 << (bit % 8)
            for tally, name in ((runs, "run"), (loads, "load")):
                copy = base / name
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(source, copy)
                (copy / relative).write_bytes(bytes(flipped))
                rebinned = memo(copy, 1)
                if name == "run":
                    check(lambda m=rebinned: m.run({}, SPEC)[0], right, tally)
                    check(lambda c=copy: memo(c, 1).load({}, SPEC)[0], right, tally)
                else:
                    check(lambda m=rebinned: m.load({}, SPEC)[0], right, tally)
        print(f"INFO segment of {len(data)} bytes, {bits} single-bit flips")
        print(f"INFO run (+ load of what it wrote): {dict(sorted(runs.items()))}")
        print(f"INFO load: {dict(sorted(loads.items()))}")
        bad = sum(n for k, n in (runs + loads).items() if k == "WRONG" or k.startswith("exc"))
        print("RESULT ok: 0 wrong outputs, 0 exceptions" if not bad else f"RESULT FAILED: {bad}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
