"""Benchmark the HTTP endpoint's overhead over calling the LatentClient directly, for image-tier hits.

One LocalCluster (processes) serves a store of taef2 latents of the sample photos. The endpoint runs as
``latentzarr serve --address <scheduler>`` in its own process; this process holds a second asynchronous
LatentClient on the same cluster. After warming every id into its owner's image tier, requests run one at a time,
interleaved in rounds (so machine noise hits every path alike), through:

* ``direct_async``   ``await LatentClient.read(...)`` on an asynchronous client (the baseline);
* ``direct_thread``  ``await asyncio.to_thread(sync_client.read, ...)``: what an endpoint running the *sync*
  client in a thread pool would pay;
* ``http_httpx``     ``GET /v1/images/{id}`` through httpx.AsyncClient (keep-alive);
* ``http_raw``       the same GET over a keep-alive ``http.client`` connection (a lighter HTTP client);
* ``imgproxy_raw``   the same picture as ``GET /insecure/rs:fit:S:S/plain/{id}@webp`` (imgproxy-style) over
  ``http.client``.

The rendition is ``w=S&h=S`` (fit inside S x S, the picture's own size: no resize), the same picture on every path.

Then **renditions from a cached picture**: for each of the other sample photos, reads through the LatentClient of a
first rendition (each a decode: a miss, then latent hits until the cache promotes the id) and, once the id is in
its owner's image tier with its full-size picture, of four other renditions (each a resize + encode, no decode).
Bar: a second rendition costs <= 0.2x a decode, as the ratio of the p50 read latencies (both through the task
path, so the ~10 ms scheduler round trip is in both).

Every figure is in ms; overhead = p50(path) - p50(direct_async), measured in the same run. Bar: the endpoint
adds <= 2 ms at p50, judged on ``http_raw`` (httpx's own client-side cost, ~1-1.5 ms per request here, is not the
endpoint's; it is reported too). uvicorn's ``auto`` choice of HTTP parser (httptools or h11) and event loop
(uvloop or asyncio) is recorded, since it moves the result.

    LATENTZARR_MODELS=/work/shared/models python workflows/bench_http.py --requests 2000 --json http.json
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

BAR_MS = 2.0
BAR_RENDITION = 0.2
"""A second rendition of a cached picture costs at most this fraction of a decode (p50 read latency)."""
OTHER_RENDITIONS = ({"format": "jpeg", "width": 128}, {"format": "avif", "width": 96, "height": 96, "fit": "fill"},
                    {"format": "png", "width": 200}, {"format": "webp", "width": 64, "height": 128, "fit": "force"})


def build_store(path: Path, size: int, images: int) -> list[str]:
    from latentzarr.models import load_model
    from latentzarr.samples import SAMPLE_NAMES, sample_images
    from latentzarr.store import LatentStore

    photos = sample_images(size, SAMPLE_NAMES[:images])
    latents = load_model("taef2", device="cpu").encode(np.stack(list(photos.values())), dtype=np.float16)
    store = LatentStore.create(path)
    store.put(list(photos), latents, model="taef2")
    return list(photos)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"n": len(a), "mean_ms": float(a.mean()), "p50_ms": float(np.percentile(a, 50)),
            "p90_ms": float(np.percentile(a, 90)), "p99_ms": float(np.percentile(a, 99))}


async def measure(address: str, store_url: str, base: str, ids: list[str], requests: int, rendition: dict,
                  rounds: int) -> dict[str, list[float]]:
    import httpx
    from distributed import Client

    from latentzarr.cluster import LatentClient
    from latentzarr.cluster.aio import close_async, start_cluster_async

    lc = await start_cluster_async(store_url, address=address)
    sync_lc = await asyncio.to_thread(lambda: LatentClient(Client(address)))
    host, port = base.removeprefix("http://").split(":")
    raw = http.client.HTTPConnection(host, int(port))
    from latentzarr.models.images import Rendition

    query = "&".join(f"{k}={v}" for k, v in rendition.items())
    side, fmt = rendition["w"], rendition["format"]
    kw = {"rendition": Rendition.parse(fmt, width=side, height=side)}
    times: dict[str, list[float]] = {"direct_async": [], "direct_thread": [], "http_httpx": [], "http_raw": [],
                                     "imgproxy_raw": []}
    expected = {i: await lc.read(i, **kw) for i in ids}

    def raw_get(url: str) -> bytes:
        raw.request("GET", url)
        resp = raw.getresponse()
        body = resp.read()
        assert resp.status == 200
        return body

    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        async def one(path: str, image_id: str) -> bytes:
            url = f"/v1/images/{quote(image_id, safe='')}?{query}"
            if path == "direct_async":
                return await lc.read(image_id, **kw)
            if path == "direct_thread":
                return await asyncio.to_thread(lambda: sync_lc.read(image_id, **kw))
            if path == "imgproxy_raw":
                ext = "jpg" if fmt == "jpeg" else fmt
                return raw_get(f"/insecure/rs:fit:{side}:{side}/plain/{quote(image_id, safe='')}@{ext}")
            if path == "http_httpx":
                r = await client.get(url)
                assert r.status_code == 200
                return r.content
            return raw_get(url)  # blocking on purpose: nothing else runs on this loop meanwhile

        for path in times:  # warm every path (connections, thread pool, ring)
            for image_id in ids:
                assert await one(path, image_id) == expected[image_id]
        per_round = max(1, requests // rounds)
        for r in range(rounds):
            for path in times:
                for k in range(per_round):
                    image_id = ids[(r * per_round + k) % len(ids)]
                    t0 = time.perf_counter()
                    data = await one(path, image_id)
                    times[path].append((time.perf_counter() - t0) * 1000)
                    assert data == expected[image_id]
    raw.close()
    await asyncio.to_thread(sync_lc.close)
    await close_async(lc)
    return times


async def measure_renditions(address: str, store_url: str, ids: list[str], fmt: str) -> dict[str, Any]:
    """Read latencies (ms) of decodes and of renditions made from a cached full-size picture (see the docstring)."""
    from latentzarr.cluster.aio import close_async, start_cluster_async
    from latentzarr.models.images import Rendition

    lc = await start_cluster_async(store_url, address=address)

    async def totals() -> dict[str, float]:
        return (await lc.stats())["total"]

    async def timed(image_id: str, rendition: Rendition) -> float:
        t0 = time.perf_counter()
        await lc.read(image_id, rendition=rendition)
        return (time.perf_counter() - t0) * 1000

    decode_ms: list[float] = []
    resize_ms: list[float] = []
    first = Rendition.parse(fmt, width=96)
    before = await totals()
    for image_id in ids:
        for _ in range(8):  # a miss, then latent hits (each a decode) until the cache promotes the id
            promoted = (await totals()).get("promotions", 0)
            decode_ms.append(await timed(image_id, first))
            if (await totals()).get("promotions", 0) > promoted:
                break
        for options in OTHER_RENDITIONS:
            opts = dict(options)
            resize_ms.append(await timed(image_id, Rendition.parse(opts.pop("format"), **opts)))
    after = await totals()
    await close_async(lc)
    p50_decode, p50_resize = float(np.percentile(decode_ms, 50)), float(np.percentile(resize_ms, 50))
    return {"decode_reads": stats(decode_ms), "rendition_reads": stats(resize_ms),
            "decodes": int(after.get("decodes", 0) - before.get("decodes", 0)),
            "resized": int(after.get("resized", 0) - before.get("resized", 0)),
            "ratio_p50": p50_resize / p50_decode, "bar": BAR_RENDITION,
            "meets_bar": p50_resize / p50_decode <= BAR_RENDITION}


def server_stack() -> dict[str, str]:
    """What uvicorn's ``auto`` settings pick in ``latentzarr serve``: HTTP parser and event loop."""
    import importlib.metadata as md
    from importlib.util import find_spec

    return {"http": "httptools" if find_spec("httptools") else "h11",
            "loop": "uvloop" if find_spec("uvloop") else "asyncio", "uvicorn": md.version("uvicorn"),
            "starlette": md.version("starlette"), "httpx": md.version("httpx")}


def image_tier_hits(lc_stats: dict[str, Any]) -> int:
    return int(sum(w.get("image_hits", 0) for w in lc_stats["workers"].values()))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="Requests per path (default 2000).")
    parser.add_argument("--rounds", type=int, default=20, help="Interleaving rounds (default 20).")
    parser.add_argument("--size", type=int, default=256, help="Photo side (px) of the stored latents.")
    parser.add_argument("--images", type=int, default=4, help="How many photos (ids).")
    parser.add_argument("--format", default="webp", choices=["png", "webp", "jpeg", "avif"])
    parser.add_argument("--json", type=Path, default=None, help="Write the results here.")
    args = parser.parse_args(argv)

    from distributed import Client

    from latentzarr.cluster import LatentClient, local_cluster

    tmp = Path(tempfile.mkdtemp(prefix="bench-http-"))
    store_url = str(tmp / "store.zarr")
    from latentzarr.samples import SAMPLE_NAMES

    all_ids = build_store(Path(store_url), args.size, len(SAMPLE_NAMES))
    ids, others = all_ids[:args.images], all_ids[args.images:] or all_ids[-1:]
    rendition = {"format": args.format, "w": args.size, "h": args.size}
    cluster = local_cluster(n_workers=2, threads_per_worker=1, cache_bytes=64 * 2**20)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "latentzarr", "serve", store_url, "--address", cluster.scheduler_address,
         "--port", str(port),
         # the limits middleware stays in the path, with a bucket this sequential load never empties
         "--rate-limit", "100000", "--burst", "100000"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        while f":{port}/" not in (line := server.stdout.readline()):
            if not line and server.poll() is not None:
                raise RuntimeError("latentzarr serve exited before serving")
        base = f"http://127.0.0.1:{port}"
        with Client(cluster) as c:  # promote every id into its owner's image tier, through the endpoint
            import httpx

            lc = LatentClient(c)
            for image_id in ids:
                for _ in range(6):
                    httpx.get(f"{base}/v1/images/{quote(image_id, safe='')}", params=rendition, timeout=60)
            hits_before = image_tier_hits(lc.stats())
            times = asyncio.run(measure(cluster.scheduler_address, store_url, base, ids, args.requests, rendition,
                                        args.rounds))
            st = lc.stats()
            hits = image_tier_hits(st) - hits_before
            decodes = int(st["total"].get("decodes", 0))
            renditions = asyncio.run(measure_renditions(cluster.scheduler_address, store_url, others, args.format))
    finally:
        server.terminate()
        server.wait(60)
        cluster.close()

    summary = {path: stats(ms) for path, ms in times.items()}
    base_p50 = summary["direct_async"]["p50_ms"]
    for s in summary.values():
        s["overhead_p50_ms"] = s["p50_ms"] - base_p50
        s["ratio_p50"] = s["p50_ms"] / base_p50
    measured = sum(len(v) for v in times.values())
    result = {
        "machine": {"node": platform.node(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "python": platform.python_version()},
        "setup": {"workers": 2, "ids": len(ids), "picture_px": args.size, "format": args.format,
                  "requests_per_path": len(times["direct_async"]), "rounds": args.rounds},
        "image_tier_hits_during_measurement": hits,
        "requests_measured_and_warmup": measured,
        "decodes_total": decodes,
        "paths": summary,
        "server": server_stack(),
        "bar_ms": BAR_MS,
        "endpoint_overhead_p50_ms": summary["http_raw"]["overhead_p50_ms"],
        "endpoint_overhead_p50_ms_httpx_client": summary["http_httpx"]["overhead_p50_ms"],
        "meets_bar": summary["http_raw"]["overhead_p50_ms"] <= BAR_MS,
        "endpoint_overhead_p50_ms_imgproxy": summary["imgproxy_raw"]["overhead_p50_ms"],
        "meets_bar_imgproxy": summary["imgproxy_raw"]["overhead_p50_ms"] <= BAR_MS,
        "renditions": renditions,
    }
    print(f"{'path':<14} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'+p50 ms':>8} {'x p50':>6}")
    for path, s in summary.items():
        print(f"{path:<14} {s['p50_ms']:8.3f} {s['p99_ms']:8.3f} {s['mean_ms']:8.3f} "
              f"{s['overhead_p50_ms']:8.3f} {s['ratio_p50']:6.2f}")
    print(f"server: {result['server']}")
    print(f"image-tier hits while measuring: {hits} (of {measured} requests incl. warm-up); "
          f"endpoint overhead at p50 (http.client) {result['endpoint_overhead_p50_ms']:.3f} ms (bar {BAR_MS} ms): "
          f"{'met' if result['meets_bar'] else 'NOT met'}; with the httpx client "
          f"{result['endpoint_overhead_p50_ms_httpx_client']:.3f} ms; imgproxy-style route "
          f"{result['endpoint_overhead_p50_ms_imgproxy']:.3f} ms")
    rd, rr = renditions["decode_reads"], renditions["rendition_reads"]
    print(f"renditions: decode reads p50 {rd['p50_ms']:.1f} ms (n={rd['n']}), second renditions p50 "
          f"{rr['p50_ms']:.1f} ms (n={rr['n']}): {renditions['ratio_p50']:.3f}x a decode (bar {BAR_RENDITION}x: "
          f"{'met' if renditions['meets_bar'] else 'NOT met'}); decodes {renditions['decodes']}, "
          f"resized {renditions['resized']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
