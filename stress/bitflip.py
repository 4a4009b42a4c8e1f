"""Single-bit flips in chunk files and index segments.

A template cache holds the even points of a sweep (complete chunks and their index
segment). Each trial copies it, flips one random bit of one random chunk file or index
segment, then loads the even points (every value served must be exactly right: a damaged
file is reported and set aside, never served), runs the whole sweep (every output right;
the odd points are found through the index where it is intact) and runs it again
(nothing computed, every output right).
"""

from __future__ import annotations

import random
import shutil
import sys
import warnings
from pathlib import Path

from common import begin, memo_for
from workload import expected

POINTS = 40
EVENS = {"x": list(range(0, POINTS, 2))}
ALL = {"x": list(range(POINTS))}


def flip(cache: Path, rng: random.Random) -> str:
    """Flip one bit of a random chunk file or index segment; what was flipped."""
    files = sorted(cache.glob("*/chunks/*.chunk")) + sorted(cache.glob("*/index/*.idx"))
    target = rng.choice(files)
    data = bytearray(target.read_bytes())
    byte, bit = rng.randrange(len(data)), rng.randrange(8)
    data[byte] ^= 1 << bit
    target.write_bytes(bytes(data))
    return f"{target.parent.name}/{target.name} byte {byte} bit {bit}"


def check(outputs: list[object], points: list[int], what: str) -> list[str]:
    if len(outputs) != len(points):
        return [f"{what}: {len(outputs)} outputs for {len(points)} points"]
    pairs = zip(points, outputs, strict=True)
    return [f"{what}: point {x} got {o!r}" for x, o in pairs if o != expected(x)]


def trial(folder: Path, template: Path, rng: random.Random) -> list[str]:
    cache = folder / "cache"
    shutil.copytree(template, cache)
    flipped = flip(cache, rng)
    memo = memo_for(cache)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a damaged file is a CacheWarning: expected here
        loaded, _ = memo.load({}, EVENS)
        served = [o["x"] for o in loaded]
        problems = [f"load: point {o['x']} got {o!r}" for o in loaded if o != expected(o["x"])] + (
            [f"load: points served twice: {served}"] if len(set(served)) < len(served) else []
        )
        output, _ = memo.run({}, ALL)
        problems += check(output, ALL["x"], "run")
        output, diag = memo.run({}, ALL)
        problems += check(output, ALL["x"], "second run")
    if diag.executed_points:
        problems.append(f"the second run computed {diag.executed_points} points")
    return [f"{p} (flipped {flipped})" for p in problems]


def main() -> int:
    trials, rng, report = begin(
        __doc__ or "",
        "bitflip",
        "after one flipped bit in a chunk file or index segment, no wrong value is ever "
        "served (load or run), the damaged file's points are computed again, and a second "
        "run computes nothing",
        smoke=5,
        full=300,
    )
    with __import__("tempfile").TemporaryDirectory(prefix="swarm-memo-bitflip-") as tmp:
        template = Path(tmp) / "template"
        memo_for(template).run({}, EVENS)
        for _ in range(trials):
            report.trial(lambda folder: trial(folder, template, rng))
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
