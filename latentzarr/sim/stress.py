"""Generated workloads that stress the adaptive cache where it has little to learn from.

Each is a :class:`~latentzarr.sim.Workload` of ``n_requests`` with the default object sizes (1.45 MB images,
0.30 MB latents), reproducible from ``seed``:

``low-reuse``        95% of requests read a never-seen object; 5% re-read the object requested 1-5,000 requests
                     earlier (almost every object is read once or twice).
``one-hit-wonders``  70% of requests read a never-seen object; 30% follow a Zipf(0.9) popularity over 20,000
                     objects.
``scan``             Zipf(0.8) traffic over 50,000 objects, interrupted every 5,000-20,000 requests by a
                     sequential scan of 2,000-10,000 never-seen objects.

The adaptive cache must never be more than noise (0.1%) slower than the better single-format cache on them
(``tests/test_sim.py``).
"""

from __future__ import annotations

import numpy as np

from latentzarr.sim.workload import Workload

__all__ = ["STRESS_KINDS", "stress_workload"]

STRESS_KINDS = ("low-reuse", "one-hit-wonders", "scan")
"""The generated workload kinds."""

_FRESH = 10**9  # ids of never-seen objects start here, above every popular id


def _zipf(rng: np.random.Generator, n: int, n_objects: int, a: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n_objects + 1) ** a
    return rng.choice(n_objects, size=n, p=w / w.sum())


def stress_workload(kind: str, n_requests: int, *, seed: int = 0) -> Workload:
    """A generated workload of ``kind`` (one of :data:`STRESS_KINDS`) with ``n_requests`` requests."""
    if kind not in STRESS_KINDS:
        raise ValueError(f"Expected a workload kind in {STRESS_KINDS}. Got {kind!r} instead.")
    if isinstance(n_requests, bool) or not isinstance(n_requests, int) or n_requests < 1:
        raise ValueError(f"Expected n_requests as an int >= 1. Got {n_requests!r} instead.")
    rng = np.random.default_rng(seed)
    n = n_requests
    if kind == "low-reuse":
        ids = np.arange(n, dtype=np.int64) + _FRESH
        again = rng.random(n) < 0.05
        source = np.maximum(np.arange(n) - rng.integers(1, 5_000, size=n), 0)
        ids = np.where(again, ids[source], ids)
    elif kind == "one-hit-wonders":
        ids = np.arange(n, dtype=np.int64) + _FRESH
        popular = rng.random(n) < 0.3
        ids[popular] = _zipf(rng, int(popular.sum()), 20_000, 0.9)
    else:
        ids = _zipf(rng, n, 50_000, 0.8).astype(np.int64)
        pos, fresh = 0, _FRESH
        while pos < n:
            pos += int(rng.integers(5_000, 20_000))
            end = min(n, pos + int(rng.integers(2_000, 10_000)))
            if end > pos:
                ids[pos:end] = np.arange(fresh, fresh + end - pos)
                fresh += end - pos
            pos = end
    return Workload.from_arrays(ids)
