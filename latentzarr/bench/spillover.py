"""Spillover measured the paper's way: the same trace replayed with spillover on and off, at a load where owners
queue, through the same cluster and worker plugin as every other replay (:func:`latentzarr.replay.replay_trace`
with ``spill="both"``; this module only repeats it and aggregates).

Each repeat replays the trace window twice on the same local cluster of ``n_workers`` workers, in the adaptive
configuration, after the same bulk warm-up: with ``LatentClient(spill=True)`` (a read may run on a less busy worker
and writes its results back to the owner's cache) and with ``spill=False`` (pinned to owners). P99 comes from every
measured request of a run (use >= 5,000); the cache-served fraction is (image hits + latent hits) / requests from
the workers' counters. Repeats use seeds ``seed, seed + 1, ...`` (GET latency draws); figures are medians.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from latentzarr.bench._common import machine_info

__all__ = ["P99_REDUCTION_TARGET", "SERVED_FRACTION_TOLERANCE", "bench_spillover"]

P99_REDUCTION_TARGET = 0.20
"""The bar: P99 with spillover at least 20% lower than owner-only (published: 23.9%)."""
SERVED_FRACTION_TOLERANCE = 0.02
"""The bar: the cache-served fraction may differ by at most 2 points between the two modes."""
_KEEP = ("mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms", "image_hit", "latent_hit", "miss", "coalesced",
         "decode_share", "decode_queue_ms", "spilled", "writebacks", "reads_per_s", "requests_counted",
         "fast_path_fallbacks")


def _mode(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in _KEEP if k in row}
    out["cache_served_fraction"] = row["image_hit"] + row["latent_hit"]
    return out


def bench_spillover(store_url: str, trace: Any, *, requests: int = 5000, warmup: int | None = 20_000,
                    rate: float | None = 30.0, repeats: int = 3, n_workers: int = 3, cache_fraction: float = 0.01,
                    budget_of: str = "total", image_store: str | None = None, seed: int = 0, log: Any = None,
                    **replay_options: Any) -> dict[str, Any]:
    """P50/P95/P99 latency (ms) and cache-served fraction of one trace replay, with and without spillover.

    Parameters
    ----------
    store_url, trace, image_store
        As for :func:`~latentzarr.replay.replay_trace` (the image store is built beside the store if missing).
    requests, warmup, rate
        The measured window (requests per run), the warm-up before it, the mean arrival rate (requests/s).
    repeats
        Replays of the pair (spill on, spill off); figures are medians over repeats.
    n_workers, cache_fraction, budget_of
        The cluster and the per-worker cache budget.
    replay_options
        Further options of :func:`~latentzarr.replay.replay_trace` (``latency``, ``threads_per_worker``...).

    Returns a JSON-ready dict: ``spill`` and ``owner_only`` (medians of ``p50_ms``, ``p95_ms``, ``p99_ms``,
    ``cache_served_fraction``, ...), ``p99_reduction`` (1 - spill / owner-only, median of the repeats) with
    ``p99_reduction_per_repeat``, ``served_fraction_difference``, ``bar``, ``runs``, ``settings``, ``machine``.
    """
    from latentzarr.replay import NO_SPILL, build_image_store, image_store_path, replay_trace

    if repeats < 1 or n_workers < 2:
        raise ValueError(f"Expected repeats >= 1 and n_workers >= 2. Got {repeats!r}, {n_workers!r} instead.")
    images = image_store or image_store_path(store_url)
    build_image_store(store_url, images)  # writes only the PNG objects still missing
    runs: dict[str, list[dict[str, Any]]] = {"spill": [], "owner_only": []}
    meta: list[dict[str, Any]] = []
    for r in range(repeats):
        res = replay_trace(store_url, trace, image_store=images, configs=["adaptive"], spill="both",
                           requests=requests, warmup=warmup, rate=rate, workers=n_workers,
                           cache_fraction=cache_fraction, budget_of=budget_of, seed=seed + r, keep_latencies=False,
                           log=log, **replay_options)
        runs["spill"].append(_mode(res["results"]["adaptive"]))
        runs["owner_only"].append(_mode(res["results"][NO_SPILL]))
        meta.append({k: res[k] for k in ("through_cluster", "workers", "cache_bytes_per_worker", "latency_model",
                                          "decode_over_get", "window")})
    med = {m: {k: statistics.median(run[k] for run in rs) for k in rs[0]} for m, rs in runs.items()}
    p99_red = [1 - s["p99_ms"] / o["p99_ms"] for s, o in zip(runs["spill"], runs["owner_only"], strict=True)]
    diff = [s["cache_served_fraction"] - o["cache_served_fraction"]
            for s, o in zip(runs["spill"], runs["owner_only"], strict=True)]
    reduction, difference = statistics.median(p99_red), statistics.median(diff)
    return {
        "bench": "spillover",
        "store": str(store_url),
        "requests": requests,
        "spill": med["spill"],
        "owner_only": med["owner_only"],
        "p99_reduction": reduction,
        "p99_reduction_per_repeat": p99_red,
        "served_fraction_difference": difference,
        "served_fraction_difference_per_repeat": diff,
        "bar": {
            "p99_reduction_target": P99_REDUCTION_TARGET,
            "served_fraction_tolerance": SERVED_FRACTION_TOLERANCE,
            "p99_met_every_repeat": all(x >= P99_REDUCTION_TARGET for x in p99_red),
            "served_fraction_met_every_repeat": all(abs(x) <= SERVED_FRACTION_TOLERANCE for x in diff),
        },
        "runs": runs,
        "replays": meta,
        "settings": {"requests": requests, "warmup": warmup, "rate": rate, "repeats": repeats,
                     "n_workers": n_workers, "cache_fraction": cache_fraction, "budget_of": budget_of, "seed": seed,
                     **{k: v for k, v in replay_options.items() if isinstance(v, str | int | float | bool)}},
        "machine": machine_info(),
    }
