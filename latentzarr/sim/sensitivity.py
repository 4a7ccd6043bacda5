"""Sensitivity of the adaptive cache to its parameters: vary one at a time around the defaults.

For each parameter (step, W, P, tail fraction t) and each value in its grid, the adaptive configuration is
replayed at one cache size with every other parameter at its default; the result is the mean latency relative to
the default setting replayed in the same run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from latentzarr.cache import CostModel
from latentzarr.sim.run import TunerParams, auto_window, replay_config, with_overrides
from latentzarr.sim.workload import Workload

__all__ = ["default_grid", "sensitivity"]


def default_grid(n_requests: int) -> dict[str, list[Any]]:
    """Values tried per parameter; W is scaled to the trace length around :func:`auto_window`."""
    w = auto_window(n_requests)
    return {
        "step": [0.005, 0.01, 0.02, 0.05],
        "window": sorted({max(100, w // 4), max(100, w // 2), w, w * 2, w * 4}),
        "promote_after": [1, 2, 3, 4, 6],
        "tail": [0.05, 0.1, 0.2, 0.3],
    }


def sensitivity(
    workload: Workload,
    *,
    fraction: float = 0.01,
    tuner: TunerParams | None = None,
    cost: CostModel | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Replay the adaptive cache at ``fraction`` of the working set for each one-at-a-time variation.

    Returns ``{"cache_fraction", "baseline": {...}, "rows": [{"param", "value", "mean_latency_ms",
    "relative_to_default", "alpha"}, ...]}``.
    """
    tuner = tuner or TunerParams()
    cost = cost or CostModel()
    grid = dict(grid) if grid is not None else default_grid(len(workload))
    unknown = set(grid) - {"step", "window", "promote_after", "tail", "tolerance"}
    if unknown:
        raise ValueError(f"Expected parameters step, window, promote_after, tail, tolerance. Got {sorted(unknown)!r}.")
    capacity = int(fraction * workload.working_set_bytes)
    base_tuner = with_overrides(tuner, window=tuner.cache_kwargs(len(workload))["window"])
    base = replay_config(workload, "adaptive", capacity, tuner=base_tuner, cost=cost)
    base.pop("alpha_trajectory", None)
    rows = []
    for param, values in grid.items():
        for value in values:
            t = with_overrides(base_tuner, **{param: value})
            res = base if t == base_tuner else replay_config(workload, "adaptive", capacity, tuner=t, cost=cost)
            rows.append(
                {
                    "param": param,
                    "value": value,
                    "mean_latency_ms": res["mean_latency_ms"],
                    "relative_to_default": res["mean_latency_ms"] / base["mean_latency_ms"],
                    "alpha": res["alpha"],
                }
            )
            if progress:
                progress(f"{param}={value}: {res['mean_latency_ms']:.2f} ms (x{rows[-1]['relative_to_default']:.4f})")
    return {"cache_fraction": fraction, "baseline": base, "rows": rows}
