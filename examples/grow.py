"""A study that grows: a new knob, a new axis, a sweep as a plain function.

    python examples/grow.py

1. A sweep over ``x`` with ``alpha``.
2. A new param ``beta`` and a new axis ``seed``: with ``defaults={"beta": 1.0, "seed": 0}``
   only the points at the new values run; the old results are the slice at the defaults.
3. ``ignore``: a log folder reaches ``exec_fn`` but is not part of the key.
4. ``sweep_wrap``: the same kind of sweep as a function of named scalars.
5. ``open_cache``: browse what is stored, as DataFrames (needs pandas).

The cache lives in a temporary folder, removed at the end.
"""

from __future__ import annotations

import tempfile
from typing import Any

from swarm_memo import SwarmMemo, open_cache

CALLS: list[Any] = []


def simulate(params: dict[str, Any], point: tuple[Any, ...]) -> float:
    CALLS.append(point)
    x, seed = point if len(point) == 2 else (point[0], 0)  # before seed was an axis
    return params["alpha"] * x + params.get("beta", 1.0) + seed / 10


def main(root: str) -> None:
    xs = list(range(8))
    old = SwarmMemo(root, {"x": 4}, 4, exec_fn=simulate, max_workers=1, verbose=0)
    old.run({"alpha": 0.4}, {"x": xs})
    print(f"first study: {len(CALLS)} points computed")

    grown = SwarmMemo(
        root,
        {"x": 4, "seed": 1},
        4,
        exec_fn=simulate,
        max_workers=1,
        verbose=0,
        defaults={"beta": 1.0, "seed": 0},
        ignore=("log_dir",),
    )
    CALLS.clear()
    params = {"alpha": 0.4, "beta": 1.0, "log_dir": "/tmp/logs"}
    output, diag = grown.run(params, {"x": xs, "seed": [0, 1, 2]})
    print(f"with beta and seed: {diag.executed_points} computed, {diag.cached_points} stored")
    assert all(seed != 0 for _, seed in CALLS)

    swept = SwarmMemo(root, {"x": 4, "y": 2}, 4, max_workers=1, verbose=0)

    @swept.sweep_wrap()
    def response(alpha: float, x: int, y: int) -> dict[str, float]:
        return {"energy": alpha * x * y}

    output, diag = response(alpha=0.4, x=[1, 2, 3], y=[10, 20])
    print("sweep_wrap:", [round(o["energy"], 2) for o in output])
    again = response.status(alpha=0.4, x=[1, 2, 3, 4], y=[10, 20])
    print(f"status after adding x=4: {again.missing_points} missing")

    try:
        import pandas  # noqa: F401
    except ImportError:
        return
    cache = open_cache(root)
    sets = cache.sets()
    print(sets[["set_id", "alpha", "points", "chunks"]].to_string())
    grown_set = sets.set_id[sets.points.idxmax()]  # seed is empty where it was no axis yet
    print(cache.load(grown_set).head(4).to_string())


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        main(folder)
