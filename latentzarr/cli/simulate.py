"""``latentzarr simulate``: replay a request trace through the cache configurations at several cache sizes."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import click

from latentzarr.cli._common import one_line_errors, trace_format_option

__all__ = ["simulate"]


def _floats(text: str, what: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values:
        raise click.BadParameter(f"Expected comma-separated numbers for {what}, e.g. 0.001,0.01. Got {text!r} instead.")
    return values


@click.command("simulate")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@trace_format_option("Trace format (see `latentzarr trace --help`).")
@click.option(
    "--sizes",
    default="0.001,0.005,0.01,0.02,0.05,0.1",
    show_default=True,
    help="Cache sizes as fractions of the working set (image bytes of all distinct objects).",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, writable=True), required=True, help="Output JSON.")
@click.option("--plots", "plot_dir", type=click.Path(file_okay=False), default=None, help="Folder for PNG figures.")
@click.option("--limit", type=int, default=None, help="Replay only the first N requests.")
@click.option("--default-size", type=int, default=None, help="Object bytes for traces without sizes [1450000].")
@click.option("--latent-ratio", type=float, default=None, help="Latent bytes per image byte [0.30/1.45].")
@click.option("--image-hit-ms", type=float, default=None, help="Cost of an image hit [15].")
@click.option("--decode-ms", type=float, default=None, help="Extra cost of a decode [32.6].")
@click.option("--fetch-ms", type=float, default=None, help="Extra cost of a store fetch [150].")
@click.option("--window", type=int, default=None, help="Tuner window W in requests [n/500 in 1e3..2e5].")
@click.option("--step", type=float, default=None, help="Alpha step per window [0.01].")
@click.option("--promote-after", type=int, default=None, help="Latent hits before promotion P (paper's costs) [3].")
@click.option("--promotion", type=click.Choice(["cost", "count"]), default=None,
              help="Promotion priced by decode/fetch costs and sizes, or after exactly P latent hits [cost].")
@click.option("--tail", type=float, default=None, help="Tail segment fraction t [0.1].")
@click.option("--alpha-grid", default=None, help="Static alphas for the oracle [0,0.1,...,1].")
@click.option("--sensitivity", "sensitivity_at", type=float, default=None, help="Also sweep step/W/P/t at this size.")
@one_line_errors
def simulate(
    path: str,
    fmt: str,
    sizes: str,
    json_out: str,
    plot_dir: str | None,
    limit: int | None,
    default_size: int | None,
    latent_ratio: float | None,
    image_hit_ms: float | None,
    decode_ms: float | None,
    fetch_ms: float | None,
    window: int | None,
    step: float | None,
    promote_after: int | None,
    promotion: str | None,
    tail: float | None,
    alpha_grid: str | None,
    sensitivity_at: float | None,
) -> None:
    """Replay the trace at PATH through image-only, latent-only, adaptive, best-static and S3-FIFO caches.

    Writes {"results": [{"config", "cache_fraction", "mean_latency_ms", hit split, ...}], "requests_per_second",
    ...} to --json, and the latency and alpha-trajectory figures to --plots.
    """
    from latentzarr.cache import CostModel
    from latentzarr.sim import (
        DEFAULT_ALPHA_GRID,
        DEFAULT_LATENT_RATIO,
        TunerParams,
        Workload,
        plot_alpha_trajectory,
        plot_latency_vs_size,
        sensitivity,
    )
    from latentzarr.sim import simulate as run_simulation
    from latentzarr.traces import DEFAULT_OBJECT_SIZE, read_trace

    fractions = _floats(sizes, "--sizes")
    grid = _floats(alpha_grid, "--alpha-grid") if alpha_grid else list(DEFAULT_ALPHA_GRID)
    cost_kw = {
        k: v
        for k, v in (("image_hit_ms", image_hit_ms), ("decode_ms", decode_ms), ("fetch_ms", fetch_ms))
        if v is not None
    }
    cost = CostModel(**cost_kw)
    tuner_kw = {
        k: v
        for k, v in (("window", window), ("step", step), ("promote_after", promote_after), ("promotion", promotion),
                     ("tail", tail))
        if v is not None
    }
    tuner = TunerParams(**tuner_kw)

    trace = read_trace(path, fmt, default_size=default_size or DEFAULT_OBJECT_SIZE)
    workload = Workload.from_trace(trace, latent_ratio=latent_ratio or DEFAULT_LATENT_RATIO)
    if limit is not None:
        workload = workload.head(limit)
    if not len(workload):
        raise ValueError(f"Expected a trace with at least one request. Got none in {path!r}.")
    click.echo(
        f"{len(workload):,} requests, {workload.n_objects:,} objects, working set "
        f"{workload.working_set_bytes / 1e9:.2f} GB",
        err=True,
    )
    doc = run_simulation(
        workload,
        fractions=fractions,
        cost=cost,
        tuner=tuner,
        alpha_grid=grid,
        progress=lambda line: click.echo(line, err=True),
    )
    if sensitivity_at is not None:
        doc["sensitivity"] = sensitivity(
            workload, fraction=sensitivity_at, tuner=tuner, cost=cost, progress=lambda line: click.echo(line, err=True)
        )
    doc["trace"] = {"path": str(path), "format": trace.meta.get("format", fmt), "bad_lines": trace.bad_lines}
    doc["machine"] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }
    out = Path(json_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    if plot_dir:
        d = Path(plot_dir)
        d.mkdir(parents=True, exist_ok=True)
        plot_latency_vs_size(doc, d / "latency_vs_size.png")
        plot_alpha_trajectory(doc, d / "alpha_trajectory.png")
    bars = doc["bars"]
    click.echo(
        f"replay speed {doc['requests_per_second']:,.0f} requests/s (slowest configuration "
        f"{doc['min_requests_per_second']:,.0f}); adaptive >= 5% better than the best single format at "
        f"{bars['sizes_at_least_5pct_better']} of {len(bars['per_size'])} sizes; never worse: "
        f"{bars['never_worse_than_best_single']}; within 1% of best static: {bars['within_1pct_of_best_static']}"
    )
