"""Replay one workload through every cache configuration at several cache sizes.

Configurations (all built from the classes the workers use, :mod:`latentzarr.cache`):

``image-only``   :meth:`DualFormatCache.image_only` (alpha = 1; LRU of decoded images)
``latent-only``  :meth:`DualFormatCache.latent_only` (alpha = 0; every hit costs a decode)
``adaptive``     :class:`DualFormatCache` with the marginal-hit tuner, starting at alpha = 0.5
``best-static``  the best of :meth:`DualFormatCache.static` over an alpha grid (an oracle: it needs the whole
                 trace to choose), refined by +-half a grid step around the grid's best
``s3fifo-image`` :class:`S3FIFOImageCache` (image-only S3-FIFO)

Cache sizes are fractions of the workload's working set (:attr:`Workload.working_set_bytes`). Every request
costs what :class:`~latentzarr.cache.CostModel` says for its outcome; mean latency is the mean over the trace.
The tuner window defaults to ``auto_window(n)``: W = n / 500 clamped to [1,000, 200,000] requests.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from latentzarr.cache import CostModel, DualFormatCache, S3FIFOImageCache
from latentzarr.cache.base import Cache
from latentzarr.cache.dual import (
    DEFAULT_PROMOTE_AFTER,
    DEFAULT_PROMOTION,
    DEFAULT_STEP,
    DEFAULT_TAIL,
    DEFAULT_TOLERANCE,
)
from latentzarr.sim.workload import Workload

__all__ = [
    "CONFIGS",
    "DEFAULT_ALPHA_GRID",
    "DEFAULT_CACHE_FRACTIONS",
    "TunerParams",
    "auto_window",
    "replay_config",
    "simulate",
]

DEFAULT_CACHE_FRACTIONS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1)
"""Cache sizes as fractions of the working set: 0.1, 0.5, 1, 2, 5 and 10%."""
DEFAULT_ALPHA_GRID = tuple(i / 10 for i in range(11))
"""Static splits tried for the oracle best static alpha (then refined around the best)."""
CONFIGS = ("image-only", "latent-only", "adaptive", "best-static", "s3fifo-image")
"""Names of the configurations in the simulator's output."""


def auto_window(n_requests: int) -> int:
    """Tuning window for a trace of ``n_requests``: n / 500, clamped to [1,000, 200,000] requests."""
    return int(min(200_000, max(1_000, n_requests // 500)))


@dataclass(frozen=True)
class TunerParams:
    """Parameters of the dual-format cache shared by the adaptive and static configurations.

    ``window=None`` means :func:`auto_window` of the trace length.
    """

    step: float = DEFAULT_STEP
    window: int | None = None
    promote_after: int = DEFAULT_PROMOTE_AFTER
    promotion: str = DEFAULT_PROMOTION
    tail: float = DEFAULT_TAIL
    tolerance: float = DEFAULT_TOLERANCE
    alpha_start: float = 0.5

    def cache_kwargs(self, n_requests: int) -> dict[str, Any]:
        """Keyword arguments of :class:`DualFormatCache` for a trace of ``n_requests``."""
        return {
            "step": self.step,
            "window": self.window if self.window is not None else auto_window(n_requests),
            "promote_after": self.promote_after,
            "promotion": self.promotion,
            "tail": self.tail,
            "tolerance": self.tolerance,
        }


def _make(config: str, capacity: int, alpha: float | None, tuner: TunerParams, n: int, cost: CostModel) -> Cache:
    kw = {**tuner.cache_kwargs(n), "decode_ms": cost.decode_ms, "fetch_ms": cost.fetch_ms}
    if config == "image-only":
        return DualFormatCache.image_only(capacity, **kw)
    if config == "latent-only":
        return DualFormatCache.latent_only(capacity, **kw)
    if config == "adaptive":
        return DualFormatCache(capacity, alpha=tuner.alpha_start, **kw)
    if config == "static":
        return DualFormatCache.static(capacity, alpha if alpha is not None else tuner.alpha_start, **kw)
    if config == "s3fifo-image":
        return S3FIFOImageCache(capacity, decode_ms=cost.decode_ms, fetch_ms=cost.fetch_ms)
    raise ValueError(f"Expected a configuration in {(*CONFIGS, 'static')}. Got {config!r} instead.")


def replay_config(
    workload: Workload,
    config: str,
    capacity: int,
    *,
    alpha: float | None = None,
    tuner: TunerParams | None = None,
    cost: CostModel | None = None,
) -> dict[str, Any]:
    """Replay ``workload`` through one configuration; return a JSON-ready result.

    ``config`` is one of ``image-only``, ``latent-only``, ``adaptive``, ``static`` (with ``alpha``) or
    ``s3fifo-image``. The adaptive configuration's result includes its ``alpha_trajectory``.
    """
    tuner = tuner or TunerParams()
    cost = cost or CostModel()
    cache = _make(config, capacity, alpha, tuner, len(workload), cost)
    result = cache.replay(*workload.as_lists())
    out: dict[str, Any] = {"config": config, "capacity_bytes": capacity, **result.as_dict(cost)}
    out["alpha"] = cache.alpha if config != "static" else alpha
    if config == "adaptive":
        out["alpha_trajectory"] = [[int(k), float(a)] for k, a in result.alpha_trajectory]
        out["tuner_steps"] = cache.stats()["tuner_steps"]
    return out


def _best_static(
    workload: Workload,
    capacity: int,
    grid: Sequence[float],
    tuner: TunerParams,
    cost: CostModel,
    refine: bool,
    seen: dict[float, dict[str, Any]],
) -> dict[str, Any]:
    def run(a: float) -> dict[str, Any]:
        a = round(a, 6)
        if a not in seen:
            seen[a] = replay_config(workload, "static", capacity, alpha=a, tuner=tuner, cost=cost)
        return seen[a]

    for a in grid:
        run(a)
    if refine and len(grid) > 1:
        spacing = min(abs(b - a) for a, b in zip(sorted(grid), sorted(grid)[1:], strict=False)) or 0.1
        best = min(seen.values(), key=lambda r: r["mean_latency_ms"])["alpha"]
        for a in (best - spacing / 2, best + spacing / 2):
            if 0.0 <= a <= 1.0:
                run(a)
    best = dict(min(seen.values(), key=lambda r: r["mean_latency_ms"]))
    best["config"] = "best-static"
    return best


def simulate(
    workload: Workload,
    *,
    fractions: Sequence[float] = DEFAULT_CACHE_FRACTIONS,
    cost: CostModel | None = None,
    tuner: TunerParams | None = None,
    alpha_grid: Sequence[float] = DEFAULT_ALPHA_GRID,
    refine: bool = True,
    configs: Sequence[str] = CONFIGS,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Replay ``workload`` through ``configs`` at every cache size; return the JSON document.

    Returns
    -------
    dict
        ``{"results": [{"config", "cache_fraction", "capacity_bytes", "mean_latency_ms", "image_hit_ratio",
        "latent_hit_ratio", "miss_ratio", "alpha", ...}, ...], "static_sweep": [...], "requests_per_second":
        requests per CPU second of the replaying thread over all replays (one core), "wall_requests_per_second",
        "min_requests_per_second" (slowest single replay, per CPU second), "workload": {...},
        "cost_model": {...}, "tuner": {...}, "bars": see :func:`check_bars`}``.
    """
    cost = cost or CostModel()
    tuner = tuner or TunerParams()
    for f in fractions:
        if not (isinstance(f, int | float) and f > 0.0 and math.isfinite(f)):
            raise ValueError(f"Expected cache fractions > 0 of the working set. Got {f!r} instead.")
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        raise ValueError(f"Expected configurations from {CONFIGS}. Got {sorted(unknown)!r} instead.")
    grid = [float(a) for a in alpha_grid]
    if not grid or any(not 0.0 <= a <= 1.0 for a in grid):
        raise ValueError(f"Expected a non-empty alpha grid within [0, 1]. Got {list(alpha_grid)!r} instead.")
    ws = workload.working_set_bytes
    results: list[dict[str, Any]] = []
    sweep: list[dict[str, Any]] = []
    performed: list[dict[str, Any]] = []  # every replay run, once
    for fraction in fractions:
        capacity = int(fraction * ws)
        seen: dict[float, dict[str, Any]] = {}
        for config in configs:
            t0 = time.perf_counter()
            if config == "best-static":
                res = _best_static(workload, capacity, grid, tuner, cost, refine, seen)
            elif config in ("image-only", "latent-only") and "best-static" in configs:
                # alpha = 1 / 0 are also grid points of the static sweep: replay once, report twice
                a = 1.0 if config == "image-only" else 0.0
                if a not in seen:
                    seen[a] = replay_config(workload, "static", capacity, alpha=a, tuner=tuner, cost=cost)
                res = {**seen[a], "config": config}
            else:
                res = replay_config(workload, config, capacity, tuner=tuner, cost=cost)
                performed.append(res)
            res["cache_fraction"] = fraction
            results.append(res)
            if progress:
                progress(
                    f"{fraction:>7.3%} {config:<13} {res['mean_latency_ms']:8.2f} ms  alpha={res['alpha']:.2f}  "
                    f"({time.perf_counter() - t0:.1f} s)"
                )
        sweep.extend(
            {
                "cache_fraction": fraction,
                "alpha": a,
                "mean_latency_ms": r["mean_latency_ms"],
                "requests_per_second": r["requests_per_second"],
                "cpu_seconds": r["cpu_seconds"],
                "seconds": r["seconds"],
            }
            for a, r in sorted(seen.items())
        )
        performed.extend(seen.values())
    # speed over every distinct replay (each static alpha once; image-/latent-only are sweep points)
    total_requests = sum(r["requests"] for r in performed)
    total_cpu = sum(r["cpu_seconds"] for r in performed)
    total_wall = sum(r["seconds"] for r in performed)
    return {
        "results": results,
        "static_sweep": sweep,
        "requests_per_second": total_requests / total_cpu if total_cpu else math.inf,
        "wall_requests_per_second": total_requests / total_wall if total_wall else math.inf,
        "min_requests_per_second": min(r["requests_per_second"] for r in performed),
        "workload": {
            "requests": len(workload),
            "objects": workload.n_objects,
            "working_set_bytes": ws,
            "mean_image_bytes": float(workload.image_sizes.mean()) if len(workload) else 0.0,
            "mean_latent_bytes": float(workload.latent_sizes.mean()) if len(workload) else 0.0,
        },
        "cost_model": {**asdict(cost), "latent_hit_ms": cost.latent_hit_ms, "miss_ms": cost.miss_ms},
        "tuner": {**asdict(tuner), "window": tuner.cache_kwargs(len(workload))["window"]},
        "bars": check_bars(results),
    }


def check_bars(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Compare adaptive with the best single-format cache and the oracle static split, per cache size.

    ``gain_vs_best_single`` = 1 - adaptive / min(image-only, latent-only) (positive: adaptive is faster);
    ``gap_vs_best_static`` = adaptive / best-static - 1 (negative: adaptive is faster); the same against S3-FIFO.
    """
    by = {(r["cache_fraction"], r["config"]): r["mean_latency_ms"] for r in results}
    rows = []
    for f in sorted({r["cache_fraction"] for r in results}):
        ad = by.get((f, "adaptive"))
        if ad is None:
            continue
        singles = [by[(f, c)] for c in ("image-only", "latent-only") if (f, c) in by]
        row: dict[str, Any] = {"cache_fraction": f}
        if singles:
            row["gain_vs_best_single"] = 1.0 - ad / min(singles)
        if (f, "best-static") in by:
            row["gap_vs_best_static"] = ad / by[(f, "best-static")] - 1.0
        if (f, "s3fifo-image") in by:
            row["gain_vs_s3fifo"] = 1.0 - ad / by[(f, "s3fifo-image")]
        rows.append(row)
    gains = [r["gain_vs_best_single"] for r in rows if "gain_vs_best_single" in r]
    gaps = [r["gap_vs_best_static"] for r in rows if "gap_vs_best_static" in r]
    return {
        "per_size": rows,
        "never_worse_than_best_single": bool(gains) and min(gains) >= 0.0,
        "sizes_at_least_5pct_better": sum(g >= 0.05 for g in gains),
        "within_1pct_of_best_static": bool(gaps) and max(gaps) <= 0.01,
    }


def with_overrides(tuner: TunerParams, **changes: Any) -> TunerParams:
    """A copy of ``tuner`` with some fields changed (used by the sensitivity sweep)."""
    return replace(tuner, **changes)
