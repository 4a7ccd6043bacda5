"""Serving overhead: image-tier hits through a local Dask cluster vs the same cache called in-process.

Starts a LocalCluster (2 worker processes, 1 thread and 1 torch thread each), warms ``--ids`` ids into their
owners' image tiers, then measures p50/p99 latency (ms) and reads/s of ``DualFormatCache.get_image`` in-process,
``LatentClient.read`` (sync, 1 in flight), a bare worker RPC, and an asynchronous client with ``--in-flight``
reads in flight (:func:`latentzarr.bench.bench_serving`). Without a STORE, a small store of real photo crops is
built first (``--build-size`` px, ``--build-images`` ids) under ``--workdir``.

    LATENTZARR_MODELS=/work/shared/models python workflows/bench_serving.py --json serving.json
    python workflows/bench_serving.py path/to/store.zarr --size 256 --json serving.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from latentzarr.bench import bench_serving, build_sample_store


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", nargs="?", default=None, help="latentzarr store (default: build one)")
    parser.add_argument("--json", dest="json_path", default=None, help="write the figures to this JSON file")
    parser.add_argument("--ids", type=int, default=16, help="ids warmed and read (16)")
    parser.add_argument("--reads", type=int, default=1000, help="reads per way per repeat (1000)")
    parser.add_argument("--in-flight", type=int, default=32, help="reads in flight, async client (32)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats; medians are reported (3)")
    parser.add_argument("--format", default="png", help="png, webp or jpeg (png)")
    parser.add_argument("--size", type=int, default=None, help="longest side of the rendition (stored size)")
    parser.add_argument("--build-size", type=int, default=128, help="picture side of a built store (128 px)")
    parser.add_argument("--build-images", type=int, default=16, help="ids in a built store (16)")
    parser.add_argument("--workdir", default=None, help="folder for a built store (default: a temporary one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="latentzarr-bench-") as tmp:
        store = args.store
        if store is None:
            store = build_sample_store(Path(args.workdir or tmp) / f"serving-{args.build_size}.zarr",
                                       n_images=args.build_images, size=args.build_size)
        doc = bench_serving(store, n_ids=args.ids, reads=args.reads, in_flight=args.in_flight,
                            repeats=args.repeats, format=args.format, size=args.size)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(doc, indent=1) + "\n")
    print("| way | p50 ms | p99 ms | reads/s |\n|---|---|---|---|")
    for name in ("direct", "cluster", "rpc_floor", "cluster_async_1", "cluster_async"):
        m = doc[name]
        print(f"| {name} | {m['p50_ms']:.4g} | {m['p99_ms']:.4g} | {m['reads_per_s']:,.0f} |")
    ratio = doc["ratio"]["p50_cluster_over_direct"]
    print(f"payload {doc['payload_bytes_mean']:,.0f} B; cluster/direct p50 {ratio:.0f}x;"
          f" bar (p50 < {doc['bar']['p50_target_ms']} ms): {'met' if doc['bar']['met'] else 'MISSED'};"
          f" every timed read an image hit: {doc['image_hits_checked']['all_hits']}")
    return doc


if __name__ == "__main__":
    main()
