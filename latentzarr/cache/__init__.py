"""Per-worker caches: the dual-format cache with its marginal-hit tuner, and single-format baselines.

Pure Python (no dask, no torch). One implementation serves the live workers and the trace simulator.
"""

from __future__ import annotations

from latentzarr.cache.base import IMAGE_HIT, LATENT_HIT, MISS, Cache, ReplayResult
from latentzarr.cache.baselines import LRUImageCache, S3FIFOImageCache
from latentzarr.cache.costs import (
    DEFAULT_DECODE_MS,
    DEFAULT_FETCH_MS,
    DEFAULT_IMAGE_HIT_MS,
    DEFAULT_IMAGE_SIZE,
    DEFAULT_LATENT_SIZE,
    CostModel,
)
from latentzarr.cache.dual import (
    DEFAULT_PROMOTE_AFTER,
    DEFAULT_STEP,
    DEFAULT_TAIL,
    DEFAULT_WINDOW,
    DualFormatCache,
)
from latentzarr.cache.tiers import SegmentedLRU

__all__ = [
    "DEFAULT_DECODE_MS",
    "DEFAULT_FETCH_MS",
    "DEFAULT_IMAGE_HIT_MS",
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_LATENT_SIZE",
    "DEFAULT_PROMOTE_AFTER",
    "DEFAULT_STEP",
    "DEFAULT_TAIL",
    "DEFAULT_WINDOW",
    "IMAGE_HIT",
    "LATENT_HIT",
    "MISS",
    "Cache",
    "CostModel",
    "DualFormatCache",
    "LRUImageCache",
    "ReplayResult",
    "S3FIFOImageCache",
    "SegmentedLRU",
]
