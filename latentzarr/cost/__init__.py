"""Long-term cost model: cumulative cost of ImgStore, ImgStore with archive tiering, and latent-first storage.

Pure Python and numpy (no torch, no dask). :data:`PUBLISHED` holds the paper's inputs and
:data:`PUBLISHED_SOURCES` says where each one comes from; :func:`paper_comparison` sets the paper's results
(:data:`PAPER_FIGURES`) beside this model's;
:func:`cost_series` gives monthly and cumulative dollars per scenario, :func:`headline_ratios` the trace-period and
long-horizon (2050) ratios, :meth:`CostInputs.from_measurements` the same model fed with figures measured here,
and :func:`latentzarr.cost.plot.plot_cumulative` the figure.
"""

from __future__ import annotations

from latentzarr.cost.model import (
    ARCHIVE,
    IMGSTORE,
    OPTIMISTIC,
    OPTIMISTIC_DECLINES,
    PAPER_FIGURES,
    PAPER_SOURCE,
    PUBLISHED,
    PUBLISHED_SOURCES,
    TOLERANCE,
    CostInputs,
    CostSeries,
    Gpu,
    archived_read_share,
    cost_series,
    decode_rate_from_sim,
    headline_ratios,
    latent_name,
    months_until,
    paper_comparison,
    sensitivity,
    tier_name,
)

__all__ = [
    "ARCHIVE",
    "IMGSTORE",
    "OPTIMISTIC",
    "OPTIMISTIC_DECLINES",
    "PAPER_FIGURES",
    "PAPER_SOURCE",
    "PUBLISHED",
    "PUBLISHED_SOURCES",
    "TOLERANCE",
    "CostInputs",
    "CostSeries",
    "Gpu",
    "archived_read_share",
    "cost_series",
    "decode_rate_from_sim",
    "headline_ratios",
    "latent_name",
    "months_until",
    "paper_comparison",
    "sensitivity",
    "tier_name",
]
