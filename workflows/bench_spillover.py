"""Spillover: one skewed read load served with work stealing vs reads pinned to their owner.

``--clients`` concurrent readers (exponential think time ``--think-ms``) read a seeded sequence in which
``--hot-share`` of the reads go to ids owned by one worker (Zipf popularity inside each group); the identical
sequences are served by fresh 2-worker LocalClusters (1 thread, 1 torch thread each)
with ``LatentClient(spill=True)`` and ``spill=False`` (:func:`latentzarr.bench.bench_spillover`). Reports
P50/P95/P99 (ms), the cache-served fractions, and the P99 reduction. Without a STORE, a store of real photo crops
is built first (``--build-images`` ids of ``--build-size`` px; 64 px decodes in ~40 ms on one CPU thread).

    LATENTZARR_MODELS=/work/shared/models python workflows/bench_spillover.py --json spillover.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from latentzarr.bench import bench_spillover, build_sample_store


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", nargs="?", default=None, help="latentzarr store (default: build one)")
    parser.add_argument("--json", dest="json_path", default=None, help="write the figures to this JSON file")
    parser.add_argument("--requests", type=int, default=400, help="reads per run (400)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent readers (8)")
    parser.add_argument("--think-ms", type=float, default=10.0, help="mean think time before each read (10 ms)")
    parser.add_argument("--hot-share", type=float, default=0.8, help="share of reads for one worker's ids (0.8)")
    parser.add_argument("--zipf", type=float, default=0.8, help="Zipf exponent of popularity (0.8)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats; medians are reported (5)")
    parser.add_argument("--cache-kib", type=int, default=1024, help="cache per worker (1024 KiB)")
    parser.add_argument("--build-size", type=int, default=64, help="picture side of a built store (64 px)")
    parser.add_argument("--build-images", type=int, default=256, help="ids in a built store (256)")
    parser.add_argument("--workdir", default=None, help="folder for a built store (default: a temporary one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="latentzarr-bench-") as tmp:
        store = args.store
        if store is None:
            store = build_sample_store(Path(args.workdir or tmp) / f"spillover-{args.build_size}.zarr",
                                       n_images=args.build_images, size=args.build_size)
        doc = bench_spillover(store, requests=args.requests, clients=args.clients, think_ms=args.think_ms,
                              hot_share=args.hot_share, zipf_s=args.zipf, repeats=args.repeats,
                              cache_bytes=args.cache_kib * 2**10)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(doc, indent=1) + "\n")
    print("| mode | p50 ms | p95 ms | p99 ms | p99 hot / other ids | cache-served | image / latent hits | coalesced "
          "| decodes | spilled |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for mode in ("spill", "owner_only"):
        m = doc[mode]
        print(f"| {mode} | {m['p50_ms']:.0f} | {m['p95_ms']:.0f} | {m['p99_ms']:.0f} | "
              f"{m['hot_ids_p99_ms']:.0f} / {m['other_ids_p99_ms']:.0f} | "
              f"{100 * m['cache_served_fraction']:.1f}% | {100 * m['image_hit_fraction']:.1f}% / "
              f"{100 * m['latent_hit_fraction']:.1f}% | {100 * m['coalesced_fraction']:.1f}% | {m['decodes']:.0f} | "
              f"{m['spilled']:.0f} |")
    print(f"{doc['clients']} clients; P99 reduction "
          f"{100 * doc['p99_reduction']:.1f}% (per repeat: "
          f"{', '.join(f'{100 * x:.1f}%' for x in doc['p99_reduction_per_repeat'])}); cache-served difference "
          f"{100 * doc['served_fraction_difference']:+.1f} points")
    return doc


if __name__ == "__main__":
    main()
