"""Helpers shared by the benchmarks: latency summaries, machine description, a small store of real photos."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["build_sample_store", "machine_info", "median_summary", "summarize"]


def summarize(latencies_ms: Sequence[float], wall_s: float | None = None) -> dict[str, float]:
    """``n``, ``mean_ms``, ``p50_ms``, ``p95_ms``, ``p99_ms``, ``max_ms`` of latencies (ms), and ``reads_per_s``
    (requests / ``wall_s``) when the wall-clock time (s) of the whole run is given."""
    a = np.asarray(latencies_ms, dtype=float)
    if a.size == 0:
        raise ValueError("Expected at least one latency. Got none instead.")
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    out = {"n": int(a.size), "mean_ms": float(a.mean()), "p50_ms": float(p50), "p95_ms": float(p95),
           "p99_ms": float(p99), "max_ms": float(a.max())}
    if wall_s is not None:
        out["reads_per_s"] = float(a.size / wall_s) if wall_s > 0 else float("inf")
    return out


def median_summary(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-key median of numeric values over repeated runs (the figure reported when runs are repeated)."""
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def machine_info() -> dict[str, Any]:
    """The machine and software a benchmark ran on (CPU count, platform, library versions, GPU if any)."""
    import dask
    import distributed
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "dask": dask.__version__,
        "distributed": distributed.__version__,
        "gpu": gpu,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def build_sample_store(path: str | os.PathLike[str], *, n_images: int = 64, size: int | Sequence[int] = 64,
                       seed: int = 0, dtype: str = "float16", model: str = "taef2") -> str:
    """Create a store at ``path`` holding ``n_images`` real pictures of ``size`` x ``size`` px, encoded by ``model``.

    The pictures are random square crops (seeded) of the bundled sample photos, resized to ``size``, so every id
    is a distinct real image: ids are ``"<photo>-<k>"``. ``size`` may list several sizes: picture k then has
    ``size[k % len(size)]`` px (one array per size). Returns the store URL (the path as a string).
    Raises ``FileExistsError`` when ``path`` exists.
    """
    from PIL import Image

    from latentzarr.ingest import ingest_arrays
    from latentzarr.models import load_model
    from latentzarr.samples import sample_images
    from latentzarr.store import LatentStore

    if n_images < 1:
        raise ValueError(f"Expected n_images >= 1. Got {n_images!r} instead.")
    sizes = [size] if isinstance(size, int) else list(size)
    if not sizes or any(not isinstance(s, int) or s < 8 or s % 8 for s in sizes):
        raise ValueError(f"Expected size as a positive multiple of 8 (px), or a list of them. Got {size!r} instead.")
    rng = np.random.default_rng(seed)
    photos = sample_images(256)
    names = list(photos)
    pictures: dict[str, np.ndarray] = {}
    for k in range(n_images):
        name = names[k % len(names)]
        side = int(rng.integers(96, 257))
        top, left = (int(rng.integers(0, 256 - side + 1)) for _ in range(2))
        crop = Image.fromarray(photos[name][top : top + side, left : left + side])
        pictures[f"{name}-{k:04d}"] = np.asarray(crop.resize((sizes[k % len(sizes)],) * 2,
                                                                 Image.Resampling.LANCZOS))
    store = LatentStore.create(Path(path))
    ingest_arrays(store, pictures, load_model(model, device="cpu"), dtype=dtype, batch_size=32)
    return str(path)
