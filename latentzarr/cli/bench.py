"""``latentzarr bench``: serving benchmarks on a local Dask cluster (image-hit overhead, spillover)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from latentzarr.cli._common import one_line_errors

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
@_json
@click.option("--requests", type=click.IntRange(1), default=400, show_default=True, help="Reads per run.")
@click.option("--clients", type=click.IntRange(1), default=8, show_default=True,
              help="Concurrent readers (one read in flight each).")
@click.option("--think-ms", type=click.FloatRange(0), default=10.0, show_default=True,
              help="Mean exponential pause (ms) of a client before each read.")
@click.option("--hot-share", type=click.FloatRange(0, 1), default=0.8, show_default=True,
              help="Share of the reads that go to ids of one worker.")
@click.option("--zipf", "zipf_s", type=click.FloatRange(0), default=0.8, show_default=True,
              help="Zipf exponent of popularity.")
@click.option("--repeats", type=click.IntRange(1, 50), default=5, show_default=True,
              help="Repeats (pairs of runs, order alternating); figures are medians.")
@_format
@_size
@_workers
@click.option("--cache-kib", type=click.IntRange(1), default=1024, show_default=True, help="Cache per worker (KiB).")
@_seed
@one_line_errors
def spillover(store: str, json_out: Path, requests: int, clients: int, think_ms: float, hot_share: float,
              zipf_s: float, repeats: int, fmt: str, size: int | None, n_workers: int, cache_kib: int,
              seed: int) -> None:
    """P99 of one skewed read load with spillover vs owner-only, and the cache-served fractions."""
    from latentzarr.bench import bench_spillover

    doc = bench_spillover(store, requests=requests, clients=clients, think_ms=think_ms, hot_share=hot_share,
                          zipf_s=zipf_s,
                          repeats=repeats, format=fmt, size=size, n_workers=n_workers,
                          cache_bytes=cache_kib * 2**10, seed=seed)
    _write(doc, json_out)
    for mode in ("spill", "owner_only"):
        m = doc[mode]
        click.echo(f"{mode:<10} p50 {m['p50_ms']:.1f} ms  p95 {m['p95_ms']:.1f} ms  p99 {m['p99_ms']:.1f} ms  "
                   f"cache-served {100 * m['cache_served_fraction']:.1f}%")
    bar = doc["bar"]
    click.echo(f"p99 {100 * doc['p99_reduction']:.1f}% lower with spillover (target >= "
               f"{100 * bar['p99_reduction_target']:.0f}%): {'met' if bar['p99_met'] else 'MISSED'}; "
               f"cache-served difference {100 * doc['served_fraction_difference']:+.1f} points (target within "
               f"{100 * bar['served_fraction_tolerance']:.0f}): {'met' if bar['served_fraction_met'] else 'MISSED'}")


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
