"""Long-term cost model: cumulative cost of ImgStore, ImgStore with archive tiering, and latent-first storage.

Pure Python and numpy (no torch, no dask). :data:`PUBLISHED` holds the inputs of the published reproduction and
:data:`PUBLISHED_SOURCES` says where each one comes from (the paper, or a documented default);
:func:`cost_series` gives monthly and cumulative dollars per scenario, :func:`headline_ratios` the trace-period and
long-horizon (2050) ratios, :meth:`CostInputs.from_measurements` the same model fed with figures measured here,
and :func:`latentzarr.cost.plot.plot_cumulative` the figure.
"""

from __future__ import annotations

from latentzarr.cost.model import (
    ARCHIVE,
    IMGSTORE,
    PAPER_FIGURES,
    PUBLISHED,
    PUBLISHED_SOURCES,
    CostInputs,
    CostSeries,
    Gpu,
    cost_series,
    decode_rate_from_sim,
    headline_ratios,
    implied_decode_trigger_rate,
    latent_name,
    months_until,
    sensitivity,
    tier_name,
)

__all__ = [
    "ARCHIVE",
    "IMGSTORE",
    "PAPER_FIGURES",
    "PUBLISHED",
    "PUBLISHED_SOURCES",
    "CostInputs",
    "CostSeries",
    "Gpu",
    "cost_series",
    "decode_rate_from_sim",
    "headline_ratios",
    "implied_decode_trigger_rate",
    "latent_name",
    "months_until",
    "sensitivity",
    "tier_name",
]
