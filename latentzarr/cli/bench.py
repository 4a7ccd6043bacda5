"""``latentzarr bench``: serving benchmarks on a local Dask cluster (image-hit overhead, spillover) and the store at
scale (``bench scale``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from latentzarr.cli._common import one_line_errors, trace_format_option

__all__ = ["bench"]

_store = click.argument("store", type=click.Path(exists=True, file_okay=False))
_json = click.option("--json", "json_out", type=click.Path(dir_okay=False, writable=True, path_type=Path),
                     required=True, help="Output JSON.")
_workers = click.option("--workers", "n_workers", type=click.IntRange(2, 64), default=2, show_default=True,
                        help="Worker processes (1 thread, 1 torch thread each).")
_repeats = click.option("--repeats", type=click.IntRange(1, 50), default=3, show_default=True,
                        help="Repeats; figures are medians.")
_format = click.option("--format", "fmt", type=click.Choice(["png", "webp", "jpeg"]), default="png",
                       show_default=True, help="Rendition format.")
_size = click.option("--size", type=click.IntRange(1, 8192), default=None, help="Longest side (px) [stored size].")
_seed = click.option("--seed", type=int, default=0, show_default=True)


def _write(doc: dict, path: Path) -> None:
    path.write_text(json.dumps(doc, indent=1) + "\n")


@click.group("bench")
def bench() -> None:
    """Measure the serving path and the GPU; every figure comes with its in-run baseline."""


@bench.command("serving")
@_store
@_json
@click.option("--ids", "n_ids", type=click.IntRange(1), default=16, show_default=True, help="Ids warmed and read.")
@click.option("--reads", type=click.IntRange(1), default=1000, show_default=True, help="Reads per way per repeat.")
@click.option("--in-flight", type=click.IntRange(1), default=32, show_default=True,
              help="Concurrent reads of the asynchronous client.")
@_repeats
@_format
@_size
@_workers
@click.option("--cache-mib", type=click.IntRange(1), default=64, show_default=True, help="Cache per worker (MiB).")
@_seed
@one_line_errors
def serving(store: str, json_out: Path, n_ids: int, reads: int, in_flight: int, repeats: int, fmt: str,
            size: int | None, n_workers: int, cache_mib: int, seed: int) -> None:
    """Image-tier hit p50/p99 (ms) and reads/s through the cluster vs the cache called in-process."""
    from latentzarr.bench import bench_serving

    doc = bench_serving(store, n_ids=n_ids, reads=reads, in_flight=in_flight, repeats=repeats, format=fmt,
                        size=size, n_workers=n_workers, cache_bytes=cache_mib * 2**20, seed=seed)
    _write(doc, json_out)
    d, c, a = doc["direct"], doc["cluster"], doc["cluster_async"]
    click.echo(f"direct      p50 {d['p50_ms']:.4f} ms  p99 {d['p99_ms']:.4f} ms  {d['reads_per_s']:,.0f} reads/s")
    click.echo(f"cluster     p50 {c['p50_ms']:.3f} ms  p99 {c['p99_ms']:.3f} ms  {c['reads_per_s']:,.0f} reads/s")
    click.echo(f"async x{a['in_flight']:<3} p50 {a['p50_ms']:.3f} ms  p99 {a['p99_ms']:.3f} ms  "
               f"{a['reads_per_s']:,.0f} reads/s")
    bar = doc["bar"]
    click.echo(f"image-hit p50 {bar['p50_ms']:.3f} ms (target < {bar['p50_target_ms']} ms): "
               f"{'met' if bar['met'] else 'MISSED'}")


@bench.command("spillover")
@_store
@click.argument("trace", default="synthetic")
@trace_format_option("Trace format of a trace file (see `latentzarr trace --help`).")
@_json
@click.option("--requests", type=click.IntRange(1), default=5000, show_default=True,
              help="Measured requests per run (P99 comes from all of them).")
@click.option("--warmup", type=click.IntRange(0), default=20_000, show_default=True,
              help="Requests before the window served as a bulk warm-up.")
@click.option("--rate", type=click.FloatRange(0, min_open=True), default=30.0, show_default=True,
              help="Mean arrival rate (requests/s): high enough that owners queue.")
@click.option("--workers", "n_workers", type=click.IntRange(2, 64), default=3, show_default=True,
              help="Worker processes of the local cluster.")
@click.option("--repeats", type=click.IntRange(1, 50), default=3, show_default=True,
              help="Repeats of the pair (spill on, spill off); figures are medians.")
@click.option("--cache-fraction", type=click.FloatRange(0, min_open=True), default=0.01, show_default=True,
              help="Per-worker cache budget as a fraction of the store's PNG footprint.")
@click.option("--latency", default=None, help="Object-store GET model, as for `latentzarr replay` "
              "[lognormal:90:0.25@90].")
@_seed
@one_line_errors
def spillover(store: str, trace: str, fmt: str, json_out: Path, requests: int, warmup: int, rate: float,
              n_workers: int, repeats: int, cache_fraction: float, latency: str | None, seed: int) -> None:
    """P99 of a trace replay (adaptive) with spillover vs pinned to owners, and the cache-served fractions.

    TRACE is a trace file or synthetic[:N] (default: a synthetic trace of WARMUP + REQUESTS requests).
    """
    from latentzarr.bench import bench_spillover
    from latentzarr.cli.replay import _load_trace
    from latentzarr.replay import DEFAULT_GET_LATENCY

    doc = bench_spillover(store, _load_trace(trace, fmt, seed, warmup + requests), requests=requests,
                          warmup=warmup, rate=rate, repeats=repeats, n_workers=n_workers,
                          cache_fraction=cache_fraction, latency=latency or DEFAULT_GET_LATENCY, seed=seed,
                          log=lambda line: click.echo(line, err=True))
    _write(doc, json_out)
    for mode in ("spill", "owner_only"):
        m = doc[mode]
        click.echo(f"{mode:<10} mean {m['mean_ms']:.1f} ms  p50 {m['p50_ms']:.1f} ms  p95 {m['p95_ms']:.1f} ms  "
                   f"p99 {m['p99_ms']:.1f} ms  cache-served {100 * m['cache_served_fraction']:.1f}%")
    bar = doc["bar"]
    click.echo(f"p99 {100 * doc['p99_reduction']:.1f}% lower with spillover (per repeat "
               f"{', '.join(f'{100 * x:.1f}%' for x in doc['p99_reduction_per_repeat'])}; target >= "
               f"{100 * bar['p99_reduction_target']:.0f}% in every repeat: "
               f"{'met' if bar['p99_met_every_repeat'] else 'MISSED'}); cache-served difference "
               f"{100 * doc['served_fraction_difference']:+.1f} points (within "
               f"{100 * bar['served_fraction_tolerance']:.0f}: "
               f"{'met' if bar['served_fraction_met_every_repeat'] else 'MISSED'})")


@bench.command("scale")
@click.option("--ids", "n_ids", type=click.IntRange(1), required=True, help="Ids in the store (built or grown).")
@_json
@click.option("--store", "store_path", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Store to build or reuse [./scale-<ids>.zarr].")
@click.option("--writers", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Concurrent single-id writers (threads of one group-commit writer; and processes).")
@click.option("--single-puts", type=click.IntRange(1), default=800, show_default=True,
              help="Single-id puts in all (shared by the writer threads of one group-commit writer).")
@click.option("--process-puts", type=click.IntRange(0), default=None,
              help="Single-id puts in all by as many writer processes (plain put) [--single-puts]; 0 skips them.")
@click.option("--lookups", type=click.IntRange(1), default=2000, show_default=True, help="Random reads timed.")
@click.option("--lag-commits", type=click.IntRange(0), default=100, show_default=True,
              help="Commits a reader is behind when its refresh is timed.")
@click.option("--verify/--no-verify", default=False, show_default=True, help="Also time verify() of every id.")
@one_line_errors
def scale(n_ids: int, json_out: Path, store_path: Path | None, writers: int, single_puts: int,
          process_puts: int | None, lookups: int, lag_commits: int, verify: bool) -> None:
    """Open time, memory, lookups, info, open_dataset, single-id put rate and index bytes of a store of N ids."""
    from latentzarr.bench.scale import bench_scale, format_table

    workdir = store_path.parent if store_path is not None else Path.cwd()
    doc = bench_scale(n_ids, store=store_path, writers=writers, single_puts=single_puts,
                      process_puts=process_puts, lookups=lookups,
                      lag_commits=lag_commits, verify=verify, workdir=workdir, progress=True)
    _write(doc, json_out)
    click.echo(format_table(doc))


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise click.BadParameter(f"Expected comma-separated positive integers. Got {text!r} instead.")
    return values


@bench.command("gpu")
@_json
@click.option("--device", type=click.Choice(["cuda", "cpu"]), default=None,
              help="Device [cuda; without a GPU the command stops at once and says so]. 'cpu' runs the same "
                   "steps on CPU (a smoke run: the figures are CPU figures).")
@click.option("--sizes", default="512,1024", show_default=True, help="Picture sides (px) for decode latency.")
@click.option("--batches", default="1,8", show_default=True, help="Batch sizes for decode latency.")
@click.option("--runs", type=click.IntRange(1), default=50, show_default=True, help="Timed runs per case.")
@click.option("--models", default="vae16,taef2", show_default=True,
              help="Decoders: vae16 (SD 3 / FLUX.1 AutoencoderKL config, random weights), taef2.")
@click.option("--modes", default=",".join(("fp32", "fp16", "bf16", "compile", "cuda_graph")), show_default=True,
              help="Decode modes.")
@click.option("--steps", default="facts,decode,bitexact,cluster,batch_zarr,cudf", show_default=True,
              help="Steps to run (also: compile, compiled vs eager taef2 in alternation, for CPU figures).")
@click.option("--budget-s", type=click.FloatRange(10), default=420.0, show_default=True,
              help="Time budget (s); a measurement that would start later is recorded as skipped.")
@click.option("--cluster-size", type=click.IntRange(8, 4096), default=512, show_default=True,
              help="Picture side (px) of the cluster and batch-decode steps.")
@click.option("--trace-requests", type=click.IntRange(1000), default=2_000_000, show_default=True,
              help="Requests of the generated trace of the cudf step.")
@one_line_errors
def gpu(json_out: Path, device: str | None, sizes: str, batches: str, runs: int, models: str, modes: str,
        steps: str, budget_s: float, cluster_size: int, trace_requests: int) -> None:
    """Every GPU figure in one run (decode latency by mode, bit-exactness, cluster, batch, cudf); each step's
    failure is recorded and the rest still run. Exit status 3 when there is no GPU (nothing measured)."""
    from latentzarr.bench.gpu import DECODE_MODES, bench_gpu, write_json

    mode_list = tuple(m.strip() for m in modes.split(",") if m.strip())
    bad = [m for m in mode_list if m not in DECODE_MODES]
    if bad:
        raise click.BadParameter(f"Expected modes among {DECODE_MODES}. Got {bad} instead.")
    doc = bench_gpu(device=device, sizes=_ints(sizes), batches=_ints(batches), runs=runs,
                    models=tuple(m.strip() for m in models.split(",") if m.strip()), modes=mode_list,
                    steps=tuple(s.strip() for s in steps.split(",") if s.strip()), budget_s=budget_s,
                    cluster_size=cluster_size, trace_requests=trace_requests,
                    progress=lambda line: click.echo(line, err=True))
    write_json(doc, json_out)
    if doc["status"] == "no_gpu":
        click.echo(f"No GPU: {doc['reason']}. Wrote {json_out} (status no_gpu, no figures).", err=True)
        raise click.exceptions.Exit(3)
    for name, rec in doc["steps"].items():
        click.echo(f"{name:<14} {rec['status']:<8} {rec['seconds']:7.1f} s")
    bar = doc["bar"]
    if bar["vae16_1024_b1"]:
        b = bar["vae16_1024_b1"]
        click.echo(f"vae16 1024^2 batch 1: {b['p50_ms']:.1f} ms ({b['mode']}; target <= "
                   f"{bar['vae16_1024_b1_target_ms']} ms): {'met' if bar['met'] else 'MISSED'}")
    click.echo(f"status {doc['status']}; wrote {json_out}")
