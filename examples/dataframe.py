"""Sweep a damped oscillator and look at the results as a DataFrame and an xarray Dataset.

Needs pandas and xarray, which are optional extras of swarm-memo::

    pip install "swarm-memo[xarray]"     # xarray and pandas (to_dataframe alone: [pandas])
    python examples/dataframe.py

The DataFrame call computes the sweep; the Dataset call finds every point in the cache and
computes nothing. A last sweep returns a numpy array per point (a response over time),
which ``to_xarray`` turns into a numeric variable with a named ``time`` dimension. The
cache lives in a temporary folder, removed at the end.
"""

from __future__ import annotations

import math
import tempfile
from typing import Any

import numpy as np

from swarm_memo import SwarmMemo
from swarm_memo.collate import concat_frames, records_frame


def oscillator(params: dict[str, Any], point: tuple[float, float]) -> dict[str, float]:
    """Amplitude and phase of a driven, damped oscillator at one (damping, frequency)."""
    damping, frequency = point
    w0 = params["natural_frequency"]
    re = w0**2 - frequency**2
    im = 2 * damping * w0 * frequency
    return {"amplitude": 1 / math.hypot(re, im), "phase": math.atan2(im, re)}


def ring_down(params: dict[str, Any], point: tuple[float, float]) -> np.ndarray:
    """The free decay of the oscillator, sampled at ``params["times"]``: one array a point."""
    damping, frequency = point
    times = np.asarray(params["times"])
    return np.exp(-damping * frequency * times) * np.cos(frequency * times)


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
    print()

    # Array outputs: one numeric variable with an extra dimension per array axis.
    decay = SwarmMemo(
        cache_root,
        {"damping": 2, "frequency": 4},
        8,
        exec_fn=ring_down,
        axis_order=("damping", "frequency"),
        max_workers=1,
        verbose=0,
    )
    times = [0.0, 1.0, 2.0, 5.0, 10.0]
    response = decay.to_xarray({"times": times}, split_spec, array_dims={"value": ("time",)})
    response = response.assign_coords(time=times)
    print("ring-down dims:", dict(response.sizes))
    envelope = abs(response["value"]).mean("frequency").round(3)
    print("mean |response| per damping at t=5:", envelope.sel(time=5.0).values.tolist())


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="swarm_memo_frames_") as root:
        main(root)
