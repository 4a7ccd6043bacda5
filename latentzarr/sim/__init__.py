"""Trace-driven cache simulator: replays a request trace through the very cache classes the workers use.

* :class:`Workload`: per-request ids, image sizes and latent sizes, from a :class:`latentzarr.traces.Trace`.
* :func:`simulate`: image-only, latent-only, adaptive, oracle best static alpha and S3-FIFO at several cache sizes,
  with the per-request :class:`~latentzarr.cache.CostModel`; returns a JSON-ready document.
* :func:`sensitivity`: the adaptive cache's sensitivity to step, W, P and the tail fraction.
* :func:`plot_latency_vs_size`, :func:`plot_alpha_trajectory`: PNG figures (matplotlib, Agg canvas).
* :func:`stress_workload`: generated low-reuse, one-hit-wonder and scan-heavy workloads.
* :func:`tier_series`, :class:`TierPolicy`: persistent bytes over time under a precision-tier lifecycle policy.
"""

from __future__ import annotations

from latentzarr.sim.plots import plot_alpha_trajectory, plot_latency_vs_size
from latentzarr.sim.run import (
    CONFIGS,
    DEFAULT_ALPHA_GRID,
    DEFAULT_CACHE_FRACTIONS,
    TunerParams,
    auto_window,
    check_bars,
    replay_config,
    simulate,
)
from latentzarr.sim.sensitivity import sensitivity
from latentzarr.sim.stress import STRESS_KINDS, stress_workload
from latentzarr.sim.tiers import TierPolicy, TierSeries, tier_series
from latentzarr.sim.workload import DEFAULT_LATENT_RATIO, Workload

__all__ = [
    "CONFIGS",
    "DEFAULT_ALPHA_GRID",
    "DEFAULT_CACHE_FRACTIONS",
    "DEFAULT_LATENT_RATIO",
    "STRESS_KINDS",
    "TierPolicy",
    "TierSeries",
    "TunerParams",
    "Workload",
    "auto_window",
    "check_bars",
    "plot_alpha_trajectory",
    "plot_latency_vs_size",
    "replay_config",
    "sensitivity",
    "simulate",
    "stress_workload",
    "tier_series",
]
