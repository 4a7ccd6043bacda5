"""Cache simulation: replay a trace (or a fresh synthetic one) through every cache configuration.

Runs :func:`latentzarr.sim.simulate` (image-only, latent-only, adaptive, oracle best static alpha, S3-FIFO at
0.1-10% of the working set) and :func:`latentzarr.sim.sensitivity` (step, W, P, t), writes ``sim.json``,
``latency_vs_size.png`` and ``alpha_trajectory.png`` to ``--out`` and prints a Markdown table for BENCHMARKS.md.
Without ``--trace`` a synthetic trace of ``--requests`` requests with the published workload statistics is
generated in memory (:func:`latentzarr.traces.synth_trace`).

    nice python workflows/simulate.py --requests 10000000 --out results/sim
    python workflows/simulate.py --trace trace.parquet --out results/sim-real --no-sensitivity
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from latentzarr.cache import CostModel
from latentzarr.sim import (
    TunerParams,
    Workload,
    plot_alpha_trajectory,
    plot_latency_vs_size,
    sensitivity,
    simulate,
)
from latentzarr.traces import read_trace, synth_trace


def markdown(doc: dict) -> str:
    """The results as Markdown tables: latency per configuration and size, then the bars."""
    configs = ["image-only", "latent-only", "s3fifo-image", "best-static", "adaptive"]
    by = {(r["cache_fraction"], r["config"]): r for r in doc["results"]}
    fractions = sorted({r["cache_fraction"] for r in doc["results"]})
    lines = [
        "| cache size | " + " | ".join(configs) + " | best static alpha | adaptive final alpha "
        "| adaptive vs best single | adaptive vs best static | adaptive vs S3-FIFO |",
        "|" + "---|" * (len(configs) + 6),
    ]
    bars = {b["cache_fraction"]: b for b in doc["bars"]["per_size"]}
    for f in fractions:
        cells = [f"{by[(f, c)]['mean_latency_ms']:.2f}" for c in configs]
        b = bars[f]
        lines.append(
            f"| {100 * f:g}% | " + " | ".join(cells) + f" | {by[(f, 'best-static')]['alpha']:.2f} "
            f"| {by[(f, 'adaptive')]['alpha']:.2f} | {-100 * b['gain_vs_best_single']:+.1f}% "
            f"| {100 * b['gap_vs_best_static']:+.2f}% | {-100 * b['gain_vs_s3fifo']:+.1f}% |"
        )
    lines.append("")
    lines.append("| cache size | config | image hits | latent hits | misses |")
    lines.append("|---|---|---|---|---|")
    for f in fractions:
        for c in ("image-only", "latent-only", "adaptive", "s3fifo-image"):
            r = by[(f, c)]
            lines.append(
                f"| {100 * f:g}% | {c} | {100 * r['image_hit_ratio']:.1f}% | {100 * r['latent_hit_ratio']:.1f}% "
                f"| {100 * r['miss_ratio']:.1f}% |"
            )
    if "sensitivity" in doc:
        s = doc["sensitivity"]
        lines += ["", f"Sensitivity at {100 * s['cache_fraction']:g}% (mean latency relative to the defaults):", ""]
        lines += ["| parameter | value | mean latency (ms) | relative | final alpha |", "|---|---|---|---|---|"]
        for r in s["rows"]:
            lines.append(
                f"| {r['param']} | {r['value']} | {r['mean_latency_ms']:.2f} | {r['relative_to_default']:.4f} "
                f"| {r['alpha']:.2f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trace", help="trace file (default: a synthetic trace)")
    ap.add_argument("--format", default="auto", help="trace format (parquet, csv, tencent, cdn, auto)")
    ap.add_argument("--requests", type=int, default=10_000_000, help="synthetic trace length")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sizes", default="0.001,0.005,0.01,0.02,0.05,0.1", help="cache sizes, fractions of working set")
    ap.add_argument("--sensitivity-at", type=float, default=0.01, help="cache size of the sensitivity sweep")
    ap.add_argument("--no-sensitivity", action="store_true")
    ap.add_argument("--out", default="results/sim")
    args = ap.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.trace:
        trace = read_trace(args.trace, args.format)
        source = {"path": args.trace, "format": trace.meta.get("format")}
    else:
        trace = synth_trace(args.requests, seed=args.seed)
        source = {"synthetic": True, "requests": args.requests, "seed": args.seed}
    workload = Workload.from_trace(trace)
    workload.as_lists()
    print(
        f"trace: {len(workload):,} requests, {workload.n_objects:,} objects, working set "
        f"{workload.working_set_bytes / 1e12:.3f} TB ({time.perf_counter() - t0:.1f} s to build)",
        flush=True,
    )
    cost, tuner = CostModel(), TunerParams()
    fractions = [float(x) for x in args.sizes.split(",")]
    doc = simulate(workload, fractions=fractions, cost=cost, tuner=tuner, progress=lambda s: print(s, flush=True))
    if not args.no_sensitivity:
        doc["sensitivity"] = sensitivity(
            workload, fraction=args.sensitivity_at, tuner=tuner, cost=cost, progress=lambda s: print(s, flush=True)
        )
    doc["trace"] = source
    doc["machine"] = {"python": sys.version.split()[0], "platform": platform.platform()}
    doc["elapsed_s"] = time.perf_counter() - t0
    (out / "sim.json").write_text(json.dumps(doc, indent=1))
    plot_latency_vs_size(doc, out / "latency_vs_size.png")
    plot_alpha_trajectory(doc, out / "alpha_trajectory.png")
    table = markdown(doc)
    (out / "table.md").write_text(table + "\n")
    print(table)
    bars = doc["bars"]
    print(
        f"\nreplay speed: {doc['requests_per_second']:,.0f} requests per CPU second (one core), slowest replay "
        f"{doc['min_requests_per_second']:,.0f}; wall clock {doc['wall_requests_per_second']:,.0f}/s\n"
        f"adaptive never worse than best single format: {bars['never_worse_than_best_single']}; >= 5% better at "
        f"{bars['sizes_at_least_5pct_better']} sizes; within 1% of best static: {bars['within_1pct_of_best_static']}"
        f"\nelapsed {doc['elapsed_s']:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
