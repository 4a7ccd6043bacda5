"""Serving overhead: image-tier hits through the cluster against the same cache called in-process.

Three ways to get the same cached bytes, measured in one run, ``repeats`` times, interleaved:

* **direct** -- :meth:`DualFormatCache.get_image` in this process, filled with the very bytes the cluster serves
  (the floor: a dictionary lookup under a lock);
* **cluster** -- :meth:`LatentClient.read` with a synchronous client, one read in flight (the fast path: one
  direct RPC to the owner worker, no scheduler);
* **cluster_async** -- an asynchronous client with ``in_flight`` reads in flight (reads/s of a front end).

``rpc_floor`` is a bare ``client.rpc(owner).latentzarr_image(key=...)`` through the synchronous client: the part
of the cluster latency that the RPC and the client's event-loop hop cost, the rest is :class:`LatentClient`.
Every cluster read (timed or warming a connection) is checked to be an image-tier hit: no decode ran.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from latentzarr.bench._common import machine_info, median_summary, summarize
from latentzarr.errors import LatentZarrError

__all__ = ["IMAGE_HIT_P50_TARGET_MS", "bench_serving"]

IMAGE_HIT_P50_TARGET_MS = 5.0
"""The bar: image-tier hit p50 (ms) through the cluster on loopback."""


def _image_objects(lc: Any) -> int:
    return int(lc.stats()["total"].get("image_objects", 0))


def warm_image_tier(lc: Any, ids: Sequence[str], format: str, size: int | None, *, max_rounds: int = 12) -> int:
    """Read every id until each is an image-tier hit on its owner (promotion takes ``promote_after`` latent hits).

    Returns the rounds of reads it took; raises :class:`~latentzarr.errors.LatentZarrError` when the image tier
    still lacks some ids after ``max_rounds`` rounds (cache too small for the ids: raise ``cache_bytes``).
    """
    ids = list(ids)
    for rounds in range(1, max_rounds + 1):
        for image_id in ids:  # one at a time: concurrent reads of one id would coalesce into one decode
            lc.read(image_id, format, size)
        if _image_objects(lc) >= len(ids):
            before = lc.stats()["total"].get("decodes", 0)
            for image_id in ids:
                lc.read(image_id, format, size)
            if lc.stats()["total"].get("decodes", 0) == before:
                return rounds
    raise LatentZarrError(
        f"Expected all {len(ids)} ids in the image tier after {max_rounds} rounds of reads. Got "
        f"{_image_objects(lc)} instead; give the workers a larger cache_bytes or read fewer ids.")


def _time_direct(cache: Any, keys: Sequence[str]) -> dict[str, float]:
    lat = np.empty(len(keys))
    get = cache.get_image
    t_start = time.perf_counter()
    for n, key in enumerate(keys):
        t0 = time.perf_counter()
        value = get(key)
        lat[n] = time.perf_counter() - t0
        if value is None:
            raise LatentZarrError(f"Expected {key!r} in the in-process cache. Got a miss instead.")
    wall = time.perf_counter() - t_start
    return summarize(lat * 1000, wall)


def _time_sync(lc: Any, seq: Sequence[str], format: str, size: int | None) -> dict[str, float]:
    lat = np.empty(len(seq))
    t_start = time.perf_counter()
    for n, image_id in enumerate(seq):
        t0 = time.perf_counter()
        lc.read(image_id, format, size)
        lat[n] = time.perf_counter() - t0
    wall = time.perf_counter() - t_start
    return summarize(lat * 1000, wall)


def _time_rpc(lc: Any, seq: Sequence[str], owners: dict[str, str], keys: dict[str, str]) -> dict[str, float]:
    client = lc.client

    async def one(address: str, key: str) -> Any:
        return await client.rpc(address).latentzarr_image(key=key)

    lat = np.empty(len(seq))
    t_start = time.perf_counter()
    for n, image_id in enumerate(seq):
        t0 = time.perf_counter()
        if client.sync(one, owners[image_id], keys[image_id]) is None:
            raise LatentZarrError(f"Expected an image-tier hit for {image_id!r} over RPC. Got a miss instead.")
        lat[n] = time.perf_counter() - t0
    wall = time.perf_counter() - t_start
    return summarize(lat * 1000, wall)


async def _async_reads(address: str, seq: Sequence[str], in_flight: int, format: str,
                       size: int | None) -> dict[str, float]:
    from distributed import Client

    from latentzarr.cluster import LatentClient

    async with Client(address, asynchronous=True) as client:
        alc = LatentClient(client)
        await alc.owner(seq[0])  # fetch the ring before timing
        await asyncio.gather(*(alc.read(i, format, size) for i in seq[:in_flight]))  # open the connections
        pending = iter(seq)
        lat: list[float] = []

        async def reader() -> None:
            for image_id in pending:  # one shared iterator: each id is read once
                t0 = time.perf_counter()
                await alc.read(image_id, format, size)
                lat.append(time.perf_counter() - t0)

        t_start = time.perf_counter()
        await asyncio.gather(*(reader() for _ in range(in_flight)))
        wall = time.perf_counter() - t_start
    return summarize(np.asarray(lat) * 1000, wall)


def bench_serving(store_url: str, *, n_ids: int = 16, reads: int = 1000, in_flight: int = 32, repeats: int = 3,
                  format: str = "png", size: int | None = None, n_workers: int = 2, threads_per_worker: int = 1,
                  torch_threads: int = 1, cache_bytes: int = 64 * 2**20, seed: int = 0) -> dict[str, Any]:
    """Image-tier hit latency (ms) and reads/s through a local cluster and in-process, in one run.

    Starts a ``LocalCluster`` of ``n_workers`` processes on ``store_url``, warms the first ``n_ids`` ids of the
    store into their owners' image tiers, then ``repeats`` times measures ``reads`` reads (ids drawn uniformly,
    seeded) each way. Reported figures are medians over the repeats; ``runs`` keeps every repeat.

    Returns a JSON-ready dict: ``direct``, ``cluster``, ``rpc_floor``, ``cluster_async`` (each ``p50_ms``,
    ``p99_ms``, ``reads_per_s``, ...), ``ratio`` (cluster over direct), ``bar`` (p50 target and whether it is
    met), ``image_hits_checked`` (every timed cluster read was an image hit), ``settings`` and ``machine``.
    """
    from latentzarr.cache import DualFormatCache
    from latentzarr.cluster import start_cluster
    from latentzarr.cluster.plugin import cache_key
    from latentzarr.models.images import Rendition
    from latentzarr.store import LatentStore

    if n_ids < 1 or reads < 1 or in_flight < 1 or repeats < 1:
        raise ValueError(f"Expected n_ids, reads, in_flight and repeats >= 1. Got {n_ids!r}, {reads!r}, "
                         f"{in_flight!r}, {repeats!r} instead.")
    rendition = Rendition.parse(format, size)
    ids = LatentStore.open(store_url).ids()[:n_ids]
    if not ids:
        raise LatentZarrError(f"Expected a store with at least one id at {store_url!r}. Got an empty store.")
    rng = np.random.default_rng(seed)
    lc = start_cluster(store_url, n_workers=n_workers, threads_per_worker=threads_per_worker,
                       cache_bytes=cache_bytes, torch_threads=torch_threads)
    try:
        t0 = time.perf_counter()
        rounds = warm_image_tier(lc, ids, format, size)
        warm_s = time.perf_counter() - t0
        payloads = {i: lc.read(i, format, size) for i in ids}
        keys = {i: cache_key(i, rendition) for i in ids}
        owners = {i: lc.owner(i) for i in ids}
        direct_cache = DualFormatCache(cache_bytes)
        for i in ids:
            if not direct_cache.offer_image(keys[i], payloads[i], len(payloads[i]), latent_id=i):
                raise LatentZarrError("Expected the in-process cache to keep every payload. Raise cache_bytes.")
        address = lc.client.scheduler.address
        before = lc.stats()["total"]
        runs: dict[str, list[dict[str, float]]] = {"direct": [], "cluster": [], "rpc_floor": [],
                                                   "cluster_async_1": [], "cluster_async": []}
        timed_reads = 0
        for _ in range(repeats):
            seq = [str(x) for x in rng.choice(ids, reads)]
            runs["direct"].append(_time_direct(direct_cache, [keys[i] for i in seq]))
            runs["cluster"].append(_time_sync(lc, seq, format, size))
            runs["rpc_floor"].append(_time_rpc(lc, seq, owners, keys))
            runs["cluster_async_1"].append(asyncio.run(_async_reads(address, seq, 1, format, size)))
            runs["cluster_async"].append(asyncio.run(_async_reads(address, seq, in_flight, format, size)))
            timed_reads += 4 * reads + 1 + min(in_flight, reads)  # the rpc floor and async warm-ups count too
        after = lc.stats()["total"]
    finally:
        lc.close()
    med = {name: median_summary(r) for name, r in runs.items()}
    image_hits = after.get("image_hits", 0) - before.get("image_hits", 0)
    decodes = after.get("decodes", 0) - before.get("decodes", 0)
    cluster, direct = med["cluster"], med["direct"]
    return {
        "bench": "serving",
        "store": str(store_url),
        "ids": len(ids),
        "rendition": rendition.token,
        "payload_bytes_mean": float(np.mean([len(p) for p in payloads.values()])),
        "warm_rounds": rounds,
        "warm_s": warm_s,
        "direct": med["direct"],
        "cluster": cluster,
        "rpc_floor": med["rpc_floor"],
        "cluster_async_1": med["cluster_async_1"],
        "cluster_async": {**med["cluster_async"], "in_flight": in_flight},
        "ratio": {
            "p50_cluster_over_direct": cluster["p50_ms"] / direct["p50_ms"],
            "p99_cluster_over_direct": cluster["p99_ms"] / direct["p99_ms"],
            "reads_per_s_direct_over_cluster": direct["reads_per_s"] / cluster["reads_per_s"],
            "reads_per_s_direct_over_cluster_async": direct["reads_per_s"] / med["cluster_async"]["reads_per_s"],
            "p50_cluster_over_rpc_floor": cluster["p50_ms"] / med["rpc_floor"]["p50_ms"],
        },
        "bar": {"p50_target_ms": IMAGE_HIT_P50_TARGET_MS, "p50_ms": cluster["p50_ms"],
                "met": cluster["p50_ms"] < IMAGE_HIT_P50_TARGET_MS},
        "image_hits_checked": {"reads_checked": timed_reads, "image_hits": image_hits, "decodes": decodes,
                               "all_hits": image_hits == timed_reads and decodes == 0},
        "runs": runs,
        "settings": {"n_ids": n_ids, "reads": reads, "in_flight": in_flight, "repeats": repeats,
                     "format": format, "size": size, "n_workers": n_workers,
                     "threads_per_worker": threads_per_worker, "torch_threads": torch_threads,
                     "cache_bytes": cache_bytes, "seed": seed},
        "machine": machine_info(),
    }
