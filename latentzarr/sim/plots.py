"""Figures of a simulation: mean latency vs cache size, and the adaptive alpha over the trace (PNG, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["plot_alpha_trajectory", "plot_latency_vs_size"]

_STYLE = {
    "image-only": ("tab:blue", "o"),
    "latent-only": ("tab:orange", "s"),
    "adaptive": ("tab:red", "D"),
    "best-static": ("tab:green", "^"),
    "s3fifo-image": ("tab:purple", "v"),
}


def _new() -> tuple[Figure, Any]:
    fig = Figure(figsize=(7, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def plot_latency_vs_size(doc: dict[str, Any], path: str | Path) -> Path:
    """Mean latency (ms) per configuration against cache size (% of the working set, log scale)."""
    fig, ax = _new()
    for config, (color, marker) in _STYLE.items():
        rows = sorted((r for r in doc["results"] if r["config"] == config), key=lambda r: r["cache_fraction"])
        if rows:
            ax.plot(
                [100 * r["cache_fraction"] for r in rows],
                [r["mean_latency_ms"] for r in rows],
                label=config,
                color=color,
                marker=marker,
            )
    ax.set_xscale("log")
    ax.set_xlabel("cache size (% of working set)")
    ax.set_ylabel("mean latency (ms)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


def plot_alpha_trajectory(doc: dict[str, Any], path: str | Path) -> Path:
    """Alpha of the adaptive cache over the trace, one line per cache size, with the oracle alpha dotted."""
    fig, ax = _new()
    rows = sorted((r for r in doc["results"] if r["config"] == "adaptive"), key=lambda r: r["cache_fraction"])
    best = {r["cache_fraction"]: r["alpha"] for r in doc["results"] if r["config"] == "best-static"}
    for r in rows:
        traj = r.get("alpha_trajectory") or []
        (line,) = ax.plot([k for k, _ in traj], [a for _, a in traj], label=f"{100 * r['cache_fraction']:g}%")
        if r["cache_fraction"] in best:
            ax.axhline(best[r["cache_fraction"]], color=line.get_color(), linestyle=":", linewidth=1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("requests")
    ax.set_ylabel("alpha (image-tier share)")
    ax.set_title("adaptive alpha (dotted: oracle static alpha)")
    ax.grid(True, alpha=0.3)
    ax.legend(title="cache size", fontsize="small")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path
