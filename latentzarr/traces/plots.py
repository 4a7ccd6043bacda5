"""PNG plots of the four workload observations (matplotlib, Agg backend) and the JSON dump of the statistics."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_observations", "write_json"]


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # JSON has no NaN/Inf
    return obj


def write_json(stats: dict, path: str | Path) -> Path:
    """Write ``stats`` as JSON (NaN and infinities become ``null``)."""
    p = Path(path)
    p.write_text(json.dumps(_jsonable(stats), indent=1) + "\n", encoding="utf-8")
    return p


def plot_observations(stats: dict, out_dir: str | Path) -> list[Path]:
    """Write ``popularity.png``, ``decay.png``, ``mrc.png`` and ``reaccess_cdf.png`` to ``out_dir``.

    ``stats`` is the dict returned by :func:`latentzarr.traces.analysis.analyze_trace`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, ax = _subplots()
    rf = stats["rank_frequency"]
    ranks = np.asarray(rf["rank"], dtype=float)
    ax.loglog(ranks, rf["views"], ".", label="measured")
    lo, hi = stats["zipf_fit_ranks"]
    fr = np.geomspace(lo, max(hi, lo + 1), 20)
    fit = 10 ** stats["zipf_intercept"] * fr ** -stats["zipf_exponent"]
    ax.loglog(fr, fit, "-", label=f"Zipf fit (ranks {lo}-{hi}), s = {stats['zipf_exponent']:.2f}")
    ax.set(xlabel="object rank", ylabel="views", title=f"Popularity: top 1% get {stats['top1_share']:.0%}")
    ax.legend()
    paths.append(_save(fig, out / "popularity.png"))

    fig, ax = _subplots()
    d = stats["decay"]
    edges = np.asarray(d["age_edges_days"], dtype=float)
    mids = np.sqrt(np.maximum(edges[:-1], 1 / 96) * np.where(np.isfinite(edges[1:]), edges[1:], edges[-2] * 2))
    for key, label in (("rate_all", "all objects"), ("rate_top1", "top 1%")):
        y = np.asarray([np.nan if v is None else v for v in d[key]], dtype=float)
        ax.loglog(mids, y, "o-", label=label)
    ax.set(xlabel="age since first request (days)", ylabel="requests per object per day", title="Decay by age")
    ax.legend()
    paths.append(_save(fig, out / "decay.png"))

    fig, ax = _subplots()
    m = stats["mrc"]
    x = 100 * np.asarray(m["cache_fraction"], dtype=float)
    ax.semilogx(x, m["lru"], "o-", label="LRU")
    ax.semilogx(x, np.asarray([np.nan if v is None else v for v in m["s3fifo"]], dtype=float), "s-", label="S3-FIFO")
    ax.set(
        xlabel="cache size (% of objects)",
        ylabel="miss ratio",
        ylim=(0, 1),
        title=f"Miss-ratio curves (SHARDS, rate {stats['mrc_sample_rate']:.3g})",
    )
    ax.legend()
    paths.append(_save(fig, out / "mrc.png"))

    fig, ax = _subplots()
    c = stats["interval_cdf"]
    ax.semilogx(np.asarray(c["seconds"]) / 3600, c["cdf"], "-")
    for hours, label in ((1, "1 h"), (24, "1 day"), (720, "30 days")):
        ax.axvline(hours, color="grey", lw=0.5)
        ax.text(hours, 0.02, label, rotation=90, fontsize=8)
    ax.set(xlabel="re-access interval (hours)", ylabel="CDF", ylim=(0, 1), title="Re-access intervals")
    paths.append(_save(fig, out / "reaccess_cdf.png"))
    return paths


def _subplots() -> tuple[Any, Any]:
    """A 5 x 4 in figure on its own Agg canvas (no pyplot: the caller's backend, e.g. Jupyter's, is untouched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 4))
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
