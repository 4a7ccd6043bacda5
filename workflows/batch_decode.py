"""Batch-decode benchmark: images/s of ``batch_decode`` against a plain loop and the pure decode ceiling.

Builds a store of real taef2 latents (``latentzarr.samples.sample_images`` at ``--size``, float16, replicated to
``--images`` ids) in a temporary folder, then measures in rounds (interleaved, best of ``--rounds`` per method,
since the machine is shared):

* ``ceiling``: ``model.decode`` alone on latents already in memory, same batch size;
* ``plain loop``: one process, read -> decode -> write a Zarr region, chunk after chunk;
* ``batch_decode local``: :func:`latentzarr.batch.batch_decode` without a client (prefetching reader thread,
  writer thread, decode in the calling thread);
* ``batch_decode cluster WxT``: with a LocalCluster of W worker processes, each decoding with T torch threads
  (started and warmed up before the rounds; start-up is not timed).

Prints a Markdown table (images/s and ratios against the ceiling and the plain loop, plus the share of wall time
the decoder was busy: a measure of how well I/O hides behind compute that the machine's other load does not
distort much); ``--json`` writes the figures. Decoders run with ``torch.set_num_threads(--threads)`` (default:
every core).

    python workflows/batch_decode.py --size 256 --images 32 --json results/batch_decode.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def build_store(path: Path, model, size: int, n: int) -> tuple[str, list[str]]:
    from latentzarr.samples import sample_images
    from latentzarr.store import LatentStore

    photos = np.stack(list(sample_images(size).values()))
    latents = model.encode(photos, dtype=np.float16, batch_size=4)
    reps = np.concatenate([latents] * (-(-n // len(latents))))[:n]
    ids = [f"img-{i:05d}" for i in range(n)]
    store = LatentStore.create(path, shard_images=64)
    store.put(ids, reps, model="taef2")
    return store.url, ids


def ceiling(model, store, ids: list[str], bs: int) -> float:
    latents = store.get(ids)
    t0 = time.perf_counter()
    model.decode(latents, batch_size=bs)
    return len(ids) / (time.perf_counter() - t0)


def plain_loop(model, store, ids: list[str], bs: int, out: Path) -> tuple[float, float]:
    import zarr

    h = store.get(ids[:1]).shape[-1] * 8
    arr = zarr.create_array(str(out), shape=(len(ids), h, h, 3), chunks=(bs, h, h, 3), dtype="uint8")
    busy = 0.0
    t0 = time.perf_counter()
    for start in range(0, len(ids), bs):
        latents = store.get(ids[start:start + bs])
        t1 = time.perf_counter()
        pixels = model.decode(latents, batch_size=bs)
        busy += time.perf_counter() - t1
        arr[start:start + bs] = pixels
    wall = time.perf_counter() - t0
    return len(ids) / wall, busy / wall


def ours(url: str, ids: list[str], bs: int, out: Path, *, model=None, client=None,
         slots: int = 1) -> tuple[float, float]:
    from latentzarr.batch import batch_decode

    report = batch_decode(url, str(out), ids=ids, batch_size=bs, model=model, client=client, progress=False)
    assert report.images == len(ids)
    return report.images_per_s, report.decode_seconds / (report.seconds * slots)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (latent side = size/8)")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads for decoding")
    parser.add_argument("--clusters", default="1x2,2x1",
                        help="comma-separated WORKERSxTORCH_THREADS cluster layouts ('' for none)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)

    import torch

    from latentzarr.models import load_model
    from latentzarr.store import LatentStore

    torch.set_num_threads(args.threads)
    model = load_model("taef2")
    bs = args.batch_size
    results: dict[str, list[float]] = {}
    busy: dict[str, list[float]] = {}  # share of wall time the decoder(s) spent decoding
    with tempfile.TemporaryDirectory(prefix="lz-batch-") as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        url, ids = build_store(root / "store.zarr", model, args.size, args.images)
        store = LatentStore.open(url)
        model.decode(store.get(ids[:bs]), batch_size=bs)  # warm-up
        clusters = {}
        for layout in filter(None, args.clusters.split(",")):
            from latentzarr.cluster import start_cluster

            workers, threads = (int(x) for x in layout.split("x"))
            lc = stack.enter_context(contextlib.closing(start_cluster(
                url, n_workers=workers, threads_per_worker=1, torch_threads=threads, cache_bytes=16 * 2**20)))
            ours(url, ids[:bs * workers], bs, root / f"warm{layout}", client=lc)  # load the model on workers
            clusters[f"batch_decode cluster {layout}"] = lc
        for run in range(args.rounds):  # interleaved, so that load from others hits every method alike
            results.setdefault("ceiling", []).append(ceiling(model, store, ids, bs))
            for name, (rate, share) in [
                ("plain loop", plain_loop(model, store, ids, bs, root / f"plain{run}")),
                ("batch_decode local", ours(url, ids, bs, root / f"local{run}", model=model)),
                *((name, ours(url, ids, bs, root / f"{name[-3:]}-{run}", client=lc, slots=int(name[-3])))
                  for name, lc in clusters.items()),
            ]:
                results.setdefault(name, []).append(rate)
                busy.setdefault(name, []).append(share)
    best = {k: max(v) for k, v in results.items()}
    per_round = {k: [x / c for x, c in zip(v, results["ceiling"], strict=True)] for k, v in results.items()}
    doc = {"machine": f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
                      f"cuda={torch.cuda.is_available()}",
           "size": args.size, "images": args.images, "batch_size": bs, "threads": args.threads,
           "rounds": args.rounds, "runs": results, "best": best,
           "ratio_vs_ceiling": {k: v / best["ceiling"] for k, v in best.items()},
           "ratio_vs_plain": {k: v / best["plain loop"] for k, v in best.items()},
           "median_round_ratio_vs_ceiling": {k: float(np.median(v)) for k, v in per_round.items()},
           "decoder_busy": busy, "median_decoder_busy": {k: float(np.median(v)) for k, v in busy.items()},
           "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])])}
    print(markdown(doc))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1))
    return doc


def markdown(doc: dict) -> str:
    lines = [f"{doc['images']} images of {doc['size']}x{doc['size']}, batch size {doc['batch_size']}, "
             f"{doc['threads']} torch threads, best of {doc['rounds']} rounds; {doc['machine']}", "",
             "| method | images/s (best) | all rounds | best vs best ceiling | median per-round vs ceiling "
             "| best vs best plain loop | decoder busy (median) |", "|---|---|---|---|---|---|---|"]
    for k, v in doc["best"].items():
        runs = ", ".join(f"{x:.2f}" for x in doc["runs"][k])
        lines.append(f"| {k} | {v:.2f} | {runs} | {doc['ratio_vs_ceiling'][k]:.2f}x "
                     f"| {doc['median_round_ratio_vs_ceiling'][k]:.2f}x | {doc['ratio_vs_plain'][k]:.2f}x "
                     f"| {_pct(doc['median_decoder_busy'].get(k))} |")
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


if __name__ == "__main__":
    main()
