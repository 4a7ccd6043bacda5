"""Reports of a replay result: the paper's Table 4 layout with the paper's rows beside ours, and a latency CDF."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["format_table", "plot_cdf"]


def format_table(result: Mapping[str, Any]) -> str:
    """Table 4 of the paper (mean, P50, P95, P99 in ms) with the paper's row under each of ours, then the
    image-hit / latent-hit / miss shares, the share of reads that decode, the decode queue wait (ms) and the
    persistent bytes; and the settings that make the figures comparable (latency model, decode / GET)."""
    paper = result.get("paper", {})
    head = (f"{'configuration':<22}{'mean':>8}{'P50':>8}{'P95':>8}{'P99':>8}{'img':>7}{'lat':>7}{'miss':>7}"
            f"{'decode':>8}{'queue':>7}{'persistent':>13}")
    lines = [head, "-" * len(head)]
    for name, r in result["results"].items():
        lines.append(f"{name:<22}{r['mean_ms']:>8.1f}{r['p50_ms']:>8.1f}{r['p95_ms']:>8.1f}{r['p99_ms']:>8.1f}"
                     f"{r['image_hit']:>7.1%}{r['latent_hit']:>7.1%}{r['miss']:>7.1%}{r['decode_share']:>8.1%}"
                     f"{r['decode_queue_ms']:>7.1f}{r['persistent_bytes']:>13,}")
        p = paper.get(name)
        if p:
            lines.append(f"{'  paper':<22}{p['mean_ms']:>8.1f}{p['p50_ms']:>8.1f}{p['p95_ms']:>8.1f}"
                         f"{p['p99_ms']:>8.1f}{'':>7}{'':>7}{p['miss']:>7.1%}")
    lm = result.get("latency_model", {})
    lines.append("")
    ratio = result.get("decode_over_get")
    lines.append(f"workers {result.get('workers')}, cache {result.get('cache_fraction'):g} of "
                 f"{result.get('budget_of')} PNG bytes = {result.get('cache_bytes_per_worker'):,} B per worker; "
                 f"GET model {lm.get('spec')} (seed {lm.get('seed')})")
    if ratio is not None:
        lines.append(f"decode / GET = {result['decode_ms']:.1f} ms / {result['get_ms_mean_latent']:.1f} ms = "
                     f"{ratio:.2f} (paper: 31 / ~130 ms = 0.24)")
    lines.append(f"every read through the worker plugin: {result.get('through_cluster')}")
    return "\n".join(lines)


def plot_cdf(result: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a latency CDF (one line per configuration, log-scale ms) of a replay result as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lats = result.get("latencies_ms")
    if not lats:
        raise ValueError("Expected a replay result with latencies_ms. Got none; replay with keep_latencies=True.")
    fig = Figure(figsize=(6.4, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, values in lats.items():
        a = np.sort(np.asarray(values))
        ax.plot(a, np.arange(1, a.size + 1) / a.size, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("read latency (ms)")
    ax.set_ylabel("fraction of requests")
    lm = result.get("latency_model", {})
    ax.set_title(f"Replay through {result.get('workers')} workers, {result['window']['requests']} requests, "
                 f"GET {lm.get('spec')}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    return out
