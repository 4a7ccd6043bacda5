"""Analyse a request trace (or a freshly synthesised one): the four workload observations as a table and plots.

Without ``--trace`` a synthetic trace of ``--requests`` requests is written first (``trace.parquet`` in ``--out``),
so the run also checks that the generator reproduces the published figures. Writes ``stats.json``,
``popularity.png``, ``decay.png``, ``mrc.png`` and ``reaccess_cdf.png`` to ``--out`` and prints the table
(published vs measured, in percentage points) with the time and peak memory of each step.

    python workflows/trace_analysis.py --requests 10000000 --out results/traces
    python workflows/trace_analysis.py --trace photo_trace.txt --format tencent --out results/tencent
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from pathlib import Path

from latentzarr.traces.analysis import analyze_trace, format_table
from latentzarr.traces.readers import write_trace
from latentzarr.traces.synth import synth_trace


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", type=Path, help="trace to analyse (default: synthesise one)")
    ap.add_argument("--format", default="auto", help="trace format: auto, parquet, csv, tencent, cdn")
    ap.add_argument("--requests", type=int, default=10_000_000, help="requests of the synthetic trace")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", default="auto", help="dask.dataframe backend: auto, pandas, cudf")
    ap.add_argument("--out", type=Path, default=Path("trace_analysis"))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    path = args.trace
    if path is None:
        t = time.perf_counter()
        tr = synth_trace(args.requests, seed=args.seed)
        path = write_trace(tr, args.out / "trace.parquet")
        del tr
        print(
            f"synthesised {args.requests} requests in {time.perf_counter() - t:.1f} s "
            f"(peak RSS so far {_peak_rss_mib():.0f} MiB)"
        )
    t = time.perf_counter()
    stats = analyze_trace(path, format=args.format, backend=args.backend, out_dir=args.out, seed=args.seed)
    print(
        f"analysed in {time.perf_counter() - t:.1f} s with the {stats['backend']} backend "
        f"(peak RSS so far {_peak_rss_mib():.0f} MiB); outputs in {args.out}"
    )
    print(format_table(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
