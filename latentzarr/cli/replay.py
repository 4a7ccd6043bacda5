"""``latentzarr replay``: replay a trace window against five serving configurations with injected store latency."""

from __future__ import annotations

import json
from pathlib import Path

import click

from latentzarr.cli._common import one_line_errors, open_store, trace_format_option

__all__ = ["replay"]


def _load_trace(trace: str, fmt: str, seed: int):
    """A trace file, or ``synthetic`` / ``synthetic:N`` (a synthetic trace of N requests, default 20000)."""
    if trace == "synthetic" or trace.startswith("synthetic:"):
        from latentzarr.traces import synth_trace

        n = trace.partition(":")[2] or "20000"
        try:
            return synth_trace(int(n), seed=seed)
        except ValueError as exc:
            raise click.BadParameter(f"Expected 'synthetic' or 'synthetic:N' with N >= 1. Got {trace!r} instead.") \
                from exc
    if not Path(trace).is_file():
        raise click.BadParameter(f"Expected a trace file or 'synthetic[:N]'. Got {trace!r}, which is neither.")
    from latentzarr.traces import read_trace

    return read_trace(trace, fmt)


@click.command("replay")
@click.argument("store")
@click.argument("trace")
@trace_format_option("Trace format of a trace file (see `latentzarr trace --help`).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, writable=True), required=True, help="Output JSON.")
@click.option("--image-store", default=None, help="Folder of PNG objects [STORE.png; built from STORE if missing].")
@click.option("--configs", default=",".join(("decode-all", "imgstore", "image-only", "latent-only", "adaptive")),
              show_default=True, help="Comma-separated configurations to replay.")
@click.option("--requests", type=int, default=1000, show_default=True, help="Requests in the replayed window.")
@click.option("--start", type=int, default=None, help="First request of the window [the last REQUESTS requests].")
@click.option("--warmup", type=int, default=None,
              help="Requests before the window served first, unmeasured, to warm the caches [REQUESTS; 0: cold].")
@click.option("--speedup", type=float, default=None, help="Divide the trace's arrival times by this.")
@click.option("--rate", type=float, default=20.0, show_default=True,
              help="Without --speedup: choose the speed-up so that requests arrive at this rate (per s).")
@click.option("--in-flight", type=int, default=16, show_default=True, help="Most requests served at once.")
@click.option("--latency", default="uniform:100:200", show_default=True,
              help="Injected store latency per object read (ms): uniform:LO:HI, constant:MS, lognormal:MEDIAN:SIGMA, "
                   "none.")
@click.option("--cache-fraction", type=float, default=0.5, show_default=True,
              help="Cache budget of every cached configuration, as a fraction of the window's PNG working set.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the latency draws (and synthetic trace).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Latency CDF figure (PNG).")
@one_line_errors
def replay(store: str, trace: str, fmt: str, json_out: str, image_store: str | None, configs: str, requests: int,
           start: int | None, warmup: int | None, speedup: float | None, rate: float, in_flight: int, latency: str,
           cache_fraction: float, seed: int, plot_path: str | None) -> None:
    """Replay TRACE (a trace file or synthetic[:N]) against STORE in each configuration; write latency stats."""
    from latentzarr.replay import build_image_store, format_table, image_store_path, plot_cdf, replay_trace

    open_store(store)  # a missing store is a one-line error before anything is built beside it
    folder = Path(image_store) if image_store else image_store_path(store)
    if not folder.is_dir() or not any(folder.iterdir()):
        click.echo(f"building the image store {folder} from {store}", err=True)
        build_image_store(store, folder)
    result = replay_trace(store, _load_trace(trace, fmt, seed), image_store=folder,
                          configs=[c.strip() for c in configs.split(",") if c.strip()], start=start,
                          warmup=warmup, requests=requests, speedup=speedup, rate=rate, in_flight=in_flight,
                          latency=latency, cache_fraction=cache_fraction, seed=seed)
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
