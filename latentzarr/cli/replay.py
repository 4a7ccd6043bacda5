"""``latentzarr replay``: replay a trace window through a Dask cluster in five serving configurations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from latentzarr.cli._common import one_line_errors, trace_format_option

__all__ = ["QUICK", "replay"]

QUICK: dict[str, Any] = {"objects": 1000, "size": "48", "warmup": 100_000, "requests": 1000, "rate": 20.0,
                         "cache_fraction": 0.01, "budget_of": "total"}
"""The ``--quick`` preset: the whole pipeline at the 1%-of-total operating point, sized for 2 CPU cores."""
DEFAULTS: dict[str, Any] = {"objects": None, "size": "48", "warmup": None, "requests": 1000, "rate": 20.0,
                            "cache_fraction": 0.01, "budget_of": "total"}


def _load_trace(trace: str, fmt: str, seed: int, n_default: int):
    """A trace file, or ``synthetic`` / ``synthetic:N`` (a synthetic trace of N requests, default ``n_default``)."""
    if trace == "synthetic" or trace.startswith("synthetic:"):
        from latentzarr.traces import synth_trace

        n = trace.partition(":")[2] or str(n_default)
        try:
            return synth_trace(int(n), seed=seed)
        except ValueError as exc:
            raise click.BadParameter(f"Expected 'synthetic' or 'synthetic:N' with N >= 1. Got {trace!r} instead.") \
                from exc
    if not Path(trace).is_file():
        raise click.BadParameter(f"Expected a trace file or 'synthetic[:N]'. Got {trace!r}, which is neither.")
    from latentzarr.traces import read_trace

    return read_trace(trace, fmt)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(s < 8 or s % 8 for s in sizes):
        raise click.BadParameter(f"Expected --size as multiples of 8 px, comma-separated. Got {text!r} instead.")
    return sizes


@click.command("replay")
@click.argument("store")
@click.argument("trace")
@trace_format_option("Trace format of a trace file (see `latentzarr trace --help`).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, writable=True), required=True, help="Output JSON.")
@click.option("--image-store", default=None, help="Folder of PNG objects [STORE.png; built from STORE if missing].")
@click.option("--configs", default=",".join(("decode-all", "imgstore", "image-only", "latent-only", "adaptive")),
              show_default=True, help="Comma-separated configurations to replay.")
@click.option("--requests", type=int, default=None, help="Requests in the measured window [1000].")
@click.option("--start", type=int, default=None, help="First request of the window [the last REQUESTS requests].")
@click.option("--warmup", type=int, default=None,
              help="Requests before the window served first as a bulk warm-up [all of them; 0: cold].")
@click.option("--speedup", type=float, default=None, help="Divide the trace's arrival times by this.")
@click.option("--rate", type=float, default=None,
              help="Without --speedup: choose the speed-up so that requests arrive at this rate (per s) [20].")
@click.option("--in-flight", type=int, default=256, show_default=True, help="Most reads outstanding at once.")
@click.option("--latency", default=None,
              help="Object-store GET model: FIRST_BYTE@MB_PER_S, FIRST_BYTE one of lognormal:MEDIAN:SIGMA, "
                   "uniform:LO:HI, constant:MS, none [lognormal:90:0.25@90].")
@click.option("--cache-fraction", type=float, default=None,
              help="Per-worker cache budget as a fraction of --budget-of [0.01].")
@click.option("--budget-of", type=click.Choice(["total", "window"]), default=None,
              help="total: the store's whole PNG footprint, per worker; window: the window's PNG working set, "
                   "split over the workers [total].")
@click.option("--workers", type=int, default=2, show_default=True, help="Worker processes of a local cluster.")
@click.option("--threads-per-worker", type=int, default=4, show_default=True,
              help="Task threads per worker (GETs overlap; decodes share one decoder per worker).")
@click.option("--scheduler", default=None, help="Address of an existing cluster to use instead of a local one.")
@click.option("--objects", type=int, default=None,
              help="When STORE does not exist: build it from this many crops of the sample photos [--quick: 1000].")
@click.option("--size", default=None, help="Picture side (px) of a built store; a comma list mixes sizes [48].")
@click.option("--dtype", default="bfloat16", show_default=True, help="Latent dtype of a built store.")
@click.option("--object-store", type=click.Choice(["moto", "local"]), default="moto", show_default=True,
              help="moto: copy both stores into the moto S3 stand-in (a local process) and serve from there; "
                   "local: serve from the folders.")
@click.option("--spill", type=click.Choice(["on", "off", "both"]), default="on", show_default=True,
              help="Spillover: on, off (reads pinned to owners), or both (adds adaptive-no-spill).")
@click.option("--quick", is_flag=True, help="Preset: build 1000 objects at 48 px, 100k warm-up, 1000-request "
              "window, all five configurations, 1% of the total PNG footprint per worker.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the GET latency draws (and trace).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Latency CDF figure (PNG).")
@one_line_errors
def replay(store: str, trace: str, fmt: str, json_out: str, image_store: str | None, configs: str,
           requests: int | None, start: int | None, warmup: int | None, speedup: float | None, rate: float | None,
           in_flight: int, latency: str | None, cache_fraction: float | None, budget_of: str | None, workers: int,
           threads_per_worker: int, scheduler: str | None, objects: int | None, size: str | None, dtype: str,
           object_store: str, spill: str, quick: bool, seed: int, plot_path: str | None) -> None:
    """Replay TRACE (a trace file or synthetic[:N]) against STORE through a Dask cluster in each configuration."""
    from latentzarr.replay import DEFAULT_GET_LATENCY, format_table, plot_cdf
    from latentzarr.replay.pipeline import run_replay

    preset = QUICK if quick else DEFAULTS
    given = {"objects": objects, "size": size, "warmup": warmup, "requests": requests, "rate": rate,
             "cache_fraction": cache_fraction, "budget_of": budget_of}
    v = {k: (preset[k] if val is None else val) for k, val in given.items()}
    n_synth = (v["warmup"] if v["warmup"] is not None else 20_000) + v["requests"]
    result = run_replay(
        store, _load_trace(trace, fmt, seed, n_synth), image_store=image_store, objects=v["objects"],
        sizes=_sizes(v["size"]), dtype=dtype, object_store=object_store, log=lambda s: click.echo(s, err=True),
        configs=[c.strip() for c in configs.split(",") if c.strip()], start=start, warmup=v["warmup"],
        requests=v["requests"], speedup=speedup, rate=v["rate"], in_flight=in_flight,
        latency=latency or DEFAULT_GET_LATENCY, cache_fraction=v["cache_fraction"], budget_of=v["budget_of"],
        workers=workers, scheduler=scheduler, threads_per_worker=threads_per_worker, spill=spill, seed=seed)
    result["settings"]["quick"] = quick
    if plot_path:
        plot_cdf(result, plot_path)
        result["plot"] = str(plot_path)
    Path(json_out).write_text(json.dumps(result, indent=1))
    click.echo(format_table(result))
    bar = result["bar"]
    if bar.get("checked"):
        click.echo(f"adaptive vs imgstore: mean x{bar['mean_ratio_adaptive_over_imgstore']:.2f}, "
                   f"p99 x{bar['p99_ratio_adaptive_over_imgstore']:.2f}, bytes "
                   f"x{bar['bytes_ratio_latent_over_imgstore']:.2f}; bar met: {bar['met']}")
    if "spill" in bar:
        s = bar["spill"]
        click.echo(f"spillover: P99 {-s['p99_reduction']:+.1%} against pinned reads, served fraction "
                   f"{s['served_fraction_difference']:+.3f}; bar met: {s['met']}")
