"""Miss-ratio curves from a spatially sampled trace (SHARDS): exact LRU stack distances and S3-FIFO replays.

SHARDS (Waldspurger et al., FAST 2015) keeps every request of the objects whose hashed id falls below a rate
``R``; a cache of ``C`` objects on the full trace behaves like a cache of ``R * C`` objects on the sample. Here
``R`` is measured as (sampled objects / all objects), which corrects for the luck of the draw.

* LRU: one pass computes every request's stack distance (distinct other objects since its previous request;
  Fenwick tree over last-access positions); an LRU cache of ``c`` objects hits iff distance < ``c``. Exact on the
  sample for all sizes at once.
* S3-FIFO: a replay per cache size through :class:`latentzarr.cache.S3FIFOImageCache` with unit sizes (the same
  implementation the workers and the simulator use). Sizes whose sampled capacity is under 20 objects are not
  simulated (NaN): S3-FIFO's small queue would hold fewer than two objects.

Cache sizes are counted in objects (sizes ignored), as fractions of the trace's distinct objects.
"""

from __future__ import annotations

import numpy as np

__all__ = ["S3FIFO_MIN_OBJECTS", "lru_stack_distances", "sample_ids", "shards_mrc"]

S3FIFO_MIN_OBJECTS = 20
"""Smallest sampled cache (objects) simulated with S3-FIFO: below it its 10% small queue holds fewer than two
objects and the figure means nothing, so the miss ratio is NaN there (printed as ``-``)."""

_MASK = (1 << 64) - 1


def sample_ids(ids: np.ndarray, rate: float, *, seed: int = 0) -> np.ndarray:
    """Boolean mask of the ids kept by SHARDS at ``rate``: ``splitmix64(id ^ seed) < rate * 2**64``."""
    x = (np.asarray(ids).astype(np.uint64) ^ np.uint64(seed & _MASK)) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53) < rate


def lru_stack_distances(codes: np.ndarray) -> np.ndarray:
    """LRU stack distance of every request (``-1`` for a first request).

    The distance of request ``i`` is the number of distinct other objects requested since the previous request
    of the same object; an LRU cache holding ``c`` objects hits request ``i`` iff ``0 <= distance < c``.
    ``codes`` are dense non-negative ints.
    """
    codes = np.asarray(codes, dtype=np.int64)
    n = len(codes)
    out = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return out
    last = [-1] * (int(codes.max()) + 1)
    tree = [0] * (n + 1)  # Fenwick tree over positions 1..n: 1 where a position is some object's last access
    marks = 0
    for i, x in enumerate(codes.tolist()):
        p = last[x]
        if p >= 0:
            # marks at positions <= p (prefix sum), subtract from all marks: marks in (p, i)
            s = 0
            j = p + 1
            while j > 0:
                s += tree[j]
                j -= j & -j
            out[i] = marks - s
            j = p + 1
            while j <= n:
                tree[j] -= 1
                j += j & -j
            marks -= 1
        j = i + 1
        while j <= n:
            tree[j] += 1
            j += j & -j
        marks += 1
        last[x] = i
    return out


def shards_mrc(
    codes: np.ndarray, rate: float, n_objects_total: int, cache_fractions: np.ndarray
) -> dict[str, list[float]]:
    """Miss ratios of LRU and S3-FIFO at ``cache_fractions`` of ``n_objects_total`` from a SHARDS sample.

    Parameters
    ----------
    codes
        Dense object codes of the sampled requests, in request order.
    rate
        Sampling rate (sampled objects / all objects).
    n_objects_total
        Distinct objects of the full trace.
    cache_fractions
        Cache sizes as fractions of ``n_objects_total``.
    """
    from latentzarr.cache import S3FIFOImageCache

    fr = np.asarray(cache_fractions, dtype=np.float64)
    n = len(codes)
    if n == 0:
        nan = [float("nan")] * len(fr)
        return {"cache_fraction": fr.tolist(), "lru": nan, "s3fifo": nan}
    dist = lru_stack_distances(codes)
    sampled_cap = fr * n_objects_total * rate
    finite = np.sort(dist[dist >= 0])
    lru = 1.0 - np.searchsorted(finite, sampled_cap, side="left") / n  # hits: distance < capacity
    s3 = []
    ones = np.ones(n, dtype=np.int64)
    for cap in sampled_cap:
        c = round(float(cap))
        if c < S3FIFO_MIN_OBJECTS:
            s3.append(float("nan"))
            continue
        cache = S3FIFOImageCache(c)
        res = cache.replay(codes, ones, ones)
        s3.append(1.0 - res.image_hits / n)
    return {"cache_fraction": fr.tolist(), "lru": [float(v) for v in lru], "s3fifo": s3}
