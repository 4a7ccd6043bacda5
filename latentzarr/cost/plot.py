"""Figure of the cost model: cumulative cost over time, one line per scenario (PNG, matplotlib Agg canvas)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from latentzarr.cost.model import CostSeries

__all__ = ["plot_cumulative"]

_COLORS = ["tab:blue", "tab:purple", "tab:red", "tab:orange", "tab:green", "tab:brown", "tab:pink", "tab:gray"]


def plot_cumulative(
    panels: Sequence[tuple[str, CostSeries]],
    path: str | Path,
    *,
    start_year: float | None = None,
) -> Path:
    """Cumulative cost (US dollars, log scale) against time, one line per scenario, one panel per series.

    Parameters
    ----------
    panels
        ``(title, series)`` pairs, e.g. the trace period and the projection to 2050.
    path
        Output PNG file (its folder must exist).
    start_year
        Calendar year (decimal) of month 1; the x axis is then in years, else in months.

    Returns
    -------
    Path
        ``path``.
    """
    if not panels:
        raise ValueError("Expected at least one (title, CostSeries) panel. Got none instead.")
    fig = Figure(figsize=(6.0 * len(panels), 4.4), dpi=110)
    FigureCanvasAgg(fig)
    for i, (title, series) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        months = range(1, series.months + 1)
        x = [start_year + m / 12.0 for m in months] if start_year is not None else list(months)
        names = series.scenarios
        for j, name in enumerate(names):
            base = name.replace(" + tiers", "")  # a tiered scenario takes its untiered scenario's colour
            j = names.index(base) if base in names else j
            ax.plot(x, series.cumulative[name], label=name, color=_COLORS[j % len(_COLORS)],
                    linestyle="--" if name.startswith("ImgStore") else ":" if "+ tiers" in name else "-")
        ax.set_yscale("log")
        ax.set_xlabel("year" if start_year is not None else "month")
        ax.set_ylabel("cumulative cost (US$)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path
