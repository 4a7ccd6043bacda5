"""End-to-end trace replay: Decode-All, ImgStore, image-only, latent-only and adaptive on one store.

Builds (unless STORE is given) a latent store of ``--build-images`` real photo crops at ``--build-size`` px and its
image store (one PNG object per id beside it), generates a synthetic trace (or reads ``--trace``), and replays a
window of ``--requests`` requests at ``--rate`` requests/s against each configuration with the same injected store
latency (``--latency``, default uniform 100-200 ms per object read) and the same cache budget
(:func:`latentzarr.replay.replay_trace`). Writes the JSON and a latency CDF figure, prints a table.

On a CPU-only machine pick a picture size whose CPU decode is below the injected store latency (64 px: ~40 ms with
one torch thread on this 2-core machine); on a GPU use 512 px or more.

    LATENTZARR_MODELS=/work/shared/models python workflows/replay.py --json replay.json --plot replay_cdf.png
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from latentzarr.replay import build_image_store, build_replay_store, format_table, plot_cdf, replay_trace


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", nargs="?", default=None, help="latentzarr store (default: build one)")
    parser.add_argument("--trace", default=None, help="trace file (default: a synthetic trace)")
    parser.add_argument("--synth-requests", type=int, default=20000, help="synthetic trace length (20000)")
    parser.add_argument("--json", dest="json_path", default=None, help="write the figures to this JSON file")
    parser.add_argument("--plot", default=None, help="latency CDF figure (PNG)")
    parser.add_argument("--requests", type=int, default=600, help="requests in the replayed window (600)")
    parser.add_argument("--rate", type=float, default=12.0, help="arrival rate, requests/s (12)")
    parser.add_argument("--in-flight", type=int, default=16, help="most requests served at once (16)")
    parser.add_argument("--latency", default="uniform:100:200", help="injected store latency (uniform:100:200 ms)")
    parser.add_argument("--cache-fraction", type=float, default=0.5, help="cache budget / PNG working set (0.5)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="requests before the window served first, unmeasured (default: --requests; 0: cold)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the trace and the latency draws (0)")
    parser.add_argument("--build-size", type=int, default=64, help="picture side of a built store (64 px)")
    parser.add_argument("--build-images", type=int, default=64, help="ids in a built store (64)")
    parser.add_argument("--build-dtype", default="bfloat16",
                        help="latent dtype of a built store (bfloat16, the dtype FLUX.2 pipelines produce; float16)")
    parser.add_argument("--workdir", default=None, help="folder for a built store (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.trace:
        from latentzarr.traces import read_trace

        trace = read_trace(args.trace)
    else:
        from latentzarr.traces import synth_trace

        trace = synth_trace(args.synth_requests, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="latentzarr-replay-") as tmp:
        store = args.store
        if store is None:
            name = f"replay-{args.build_size}-{args.build_dtype}.zarr"
            store, _ = build_replay_store(Path(args.workdir or tmp) / name, n_images=args.build_images,
                                          size=args.build_size, dtype=args.build_dtype)
        else:
            build_image_store(store)  # writes only the PNG objects still missing
        doc = replay_trace(store, trace, requests=args.requests, warmup=args.warmup, rate=args.rate,
                           in_flight=args.in_flight,
                           latency=args.latency, cache_fraction=args.cache_fraction, seed=args.seed)
    doc["settings"]["picture_px"] = args.build_size if args.store is None else None
    doc["settings"]["store_dtype"] = args.build_dtype if args.store is None else None
    if args.plot:
        plot_cdf(doc, args.plot)
        doc["plot"] = args.plot
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(doc, indent=1) + "\n")
    print(format_table(doc))
    bar = doc["bar"]
    print(f"adaptive/imgstore: mean {bar['mean_ratio_adaptive_over_imgstore']:.2f}, "
          f"p99 {bar['p99_ratio_adaptive_over_imgstore']:.2f}, persistent bytes "
          f"{bar['bytes_ratio_latent_over_imgstore']:.2f}; bar {'met' if bar['met'] else 'MISSED'}")
    return doc


if __name__ == "__main__":
    main()
