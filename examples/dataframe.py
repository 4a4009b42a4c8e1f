"""Sweep a damped oscillator and look at the results as a DataFrame and an xarray Dataset.

Needs pandas and xarray (``pip install "swarm-memo[xarray]"``). The DataFrame call computes
the sweep; the Dataset call finds every point in the cache and computes nothing.

    python examples/dataframe.py
"""

from __future__ import annotations

import math
import tempfile
from typing import Any

from swarm_memo import SwarmMemo
from swarm_memo.collate import concat_frames, records_frame


def oscillator(params: dict[str, Any], point: tuple[float, float]) -> dict[str, float]:
    """Amplitude and phase of a driven, damped oscillator at one (damping, frequency)."""
    damping, frequency = point
    w0 = params["natural_frequency"]
    re = w0**2 - frequency**2
    im = 2 * damping * w0 * frequency
    return {"amplitude": 1 / math.hypot(re, im), "phase": math.atan2(im, re)}


def main(cache_root: str) -> None:
    memo = SwarmMemo(
        cache_root,
        memo_chunk_spec={"damping": 2, "frequency": 4},
        exec_chunk_size=8,
        exec_fn=oscillator,
        axis_order=("damping", "frequency"),
        max_workers=1,
        verbose=0,
    )
    params = {"natural_frequency": 1.0}
    split_spec = {"damping": [0.05, 0.2, 0.5], "frequency": [0.5, 0.8, 1.0, 1.2, 1.5]}

    df = memo.to_dataframe(params, split_spec)
    print(df.round(3).to_string())
    print()
    print("peak amplitude per damping:")
    print(df.groupby("damping")["amplitude"].max().round(3).to_string())
    print()

    status = memo.status(params, split_spec)
    print(f"cached: {status.cached_points} of {status.total_points} points")
    ds = memo.to_xarray(params, split_spec)  # served from the cache
    print(ds)
    print()
    at_resonance = ds["amplitude"].sel(frequency=1.0)
    print("amplitude at resonance:", at_resonance.round(3).values.tolist())
    print()

    # The same cache through ready-made collate/merge helpers: run() returns one DataFrame
    # of the dict outputs (no axis columns: those come with to_dataframe).
    frames = SwarmMemo(
        cache_root,
        {"damping": 2, "frequency": 4},
        8,
        exec_fn=oscillator,
        collate_fn=records_frame,
        merge_fn=concat_frames,
        axis_order=("damping", "frequency"),
        max_workers=1,
        verbose=0,
    )
    table, diag = frames.run(params, split_spec)
    print(f"{len(table)} rows from run(), {diag.executed_points} points executed")


if __name__ == "__main__":
    main(tempfile.mkdtemp(prefix="swarm_memo_frames_"))
