"""Trace analysis with dask.dataframe: the four workload observations, out of core.

The trace is read with :func:`dask.dataframe.read_parquet` (text formats are first streamed into a temporary
Parquet file by :func:`~latentzarr.traces.readers.convert_trace`). With ``backend="auto"`` the ``cudf`` backend is
used (``dask.config.set({"dataframe.backend": "cudf"})``) when cudf imports and sees a GPU, pandas otherwise.
Three passes, each bounded in memory by a partition plus per-object counters:

1. ``value_counts`` of the ids and the time range (popularity);
2. a hash shuffle on the object id, then per partition: sort by (object, time), intervals, ages (re-access and
   decay);
3. a SHARDS sample (every request of ~``sample_requests / n_requests`` of the objects), replayed for the
   miss-ratio curves (:mod:`latentzarr.traces.mrc`).

Definitions (the keys of the returned dict):

``n_requests``, ``n_objects``
    Requests kept (malformed lines excluded) and distinct object ids. An object's *views* are its requests.
``top1_share``, ``top10_share``
    Views of the ``max(1, round(0.01 * n_objects))`` (resp. 10%) most-viewed objects over all views.
``under10_fraction``, ``once_fraction``
    Objects with fewer than 10 views, with exactly one view, over all objects.
``reaccess_within_1h``, ``reaccess_within_1d``, ``reaccess_beyond_30d``
    A *re-access interval* is the time from one request of an object to the next request of the same object
    (consecutive in time; an object with ``k`` views has ``k - 1``). Fractions over all re-access intervals of the
    trace that are ``<= 3600 s``, ``<= 86400 s`` and ``> 30 * 86400 s``.
``zipf_exponent``
    ``s`` of the least-squares fit ``log10(views) = c - s * log10(rank)`` at 50 log-spaced ranks over the body of
    the distribution, ranks ``0.001 * n_objects`` to ``0.1 * n_objects`` (all ranks below 10,000 objects), so that
    the value does not drift with trace length (``zipf_intercept`` is ``c``, ``zipf_fit_ranks`` the range).
``decay``
    Request rate by age, in requests per object per day: an object's age at a request is the time since its first
    request in the trace; for each age bucket, requests in the bucket over the object-days the trace could observe
    in it (each object contributes the overlap of ``[0, trace_end - first_request]`` with the bucket), for all
    objects and for the top 1% (objects with at least as many views as the ``round(0.01 * n_objects)``-th).
    ``decay_ratio_all`` / ``decay_ratio_top1``: rate at ages 180-365 days over the rate in the first 30 days.
``interval_cdf``
    Fraction of re-access intervals ``<= seconds`` at log-spaced ``seconds``.
``mrc``
    LRU and S3-FIFO miss ratios at cache sizes given as fractions of ``n_objects`` (see
    :mod:`latentzarr.traces.mrc`); ``mrc_sample_rate`` and ``mrc_sample_requests`` describe the sample.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import warnings
from pathlib import Path

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

from latentzarr.errors import TraceFormatError
from latentzarr.traces.mrc import S3FIFO_MIN_OBJECTS, sample_ids, shards_mrc
from latentzarr.traces.readers import convert_trace, detect_format

__all__ = ["PUBLISHED", "analyze_trace", "format_table", "select_backend"]

_HOUR, _DAY = 3600.0, 86400.0

#: The published workload figures (fractions) that synthetic traces must reproduce.
PUBLISHED: dict[str, float] = {
    "top1_share": 0.39,
    "top10_share": 0.71,
    "under10_fraction": 0.69,
    "once_fraction": 0.15,
    "reaccess_within_1h": 0.38,
    "reaccess_within_1d": 0.68,
    "reaccess_beyond_30d": 0.06,
}

#: Age bucket edges in days for the decay observation.
AGE_EDGES_DAYS = (0.0, 1 / 24, 1.0, 7.0, 30.0, 90.0, 180.0, 365.0, 730.0, np.inf)
#: Interval histogram edges in seconds (0, then 10**-1 .. 10**9 in steps of 10**0.05); the CDF is read at them.
_INTERVAL_EDGES = np.concatenate([[0.0], 10.0 ** np.arange(-1.0, 9.0001, 0.05), [np.inf]])
#: Default cache sizes for the miss-ratio curves, as fractions of distinct objects.
CACHE_FRACTIONS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)


def select_backend(backend: str = "auto") -> str:
    """``"cudf"`` when requested or (``"auto"``) when cudf imports and a GPU is visible; else ``"pandas"``."""
    if backend not in ("auto", "pandas", "cudf"):
        raise ValueError(f"Expected backend 'auto', 'pandas' or 'cudf'. Got {backend!r} instead.")
    if backend == "pandas":
        return backend
    try:
        import cudf  # noqa: F401
        import cupy

        ok = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no cudf, no driver, no device: all mean "not available"
        ok = False
    if backend == "cudf" and not ok:
        raise RuntimeError("Expected cudf and a CUDA GPU for backend='cudf'. Got none; use backend='pandas'.")
    return "cudf" if ok else "pandas"


def _host(obj):
    """A pandas object from a pandas or cudf one."""
    return obj.to_pandas() if hasattr(obj, "to_pandas") else obj


def _partition_stats(df, t_end: float, top_min_views: int) -> dict[str, np.ndarray]:
    """Interval histogram, threshold counts and age histograms/exposures for one id-partition."""
    df = df.sort_values(["object_id", "timestamp"])
    ids = np.asarray(df["object_id"].to_numpy())
    ts = np.asarray(df["timestamp"].to_numpy(), dtype=np.float64)
    n = len(ids)
    edges_s = np.asarray(AGE_EDGES_DAYS) * _DAY
    nb = len(AGE_EDGES_DAYS) - 1
    out = {
        "interval_hist": np.zeros(len(_INTERVAL_EDGES) - 1, dtype=np.int64),
        "thresholds": np.zeros(4, dtype=np.int64),  # n, <=1h, <=1d, >30d
        "age_req": np.zeros((2, nb), dtype=np.float64),
        "age_exp": np.zeros((2, nb), dtype=np.float64),
    }
    if n == 0:
        return out
    new = np.empty(n, dtype=bool)
    new[0] = True
    new[1:] = ids[1:] != ids[:-1]
    starts = np.flatnonzero(new)
    views = np.diff(np.append(starts, n))
    gaps = np.diff(ts)[~new[1:]]
    out["interval_hist"] = np.histogram(gaps, bins=_INTERVAL_EDGES)[0]
    out["thresholds"] = np.array(
        [len(gaps), (gaps <= _HOUR).sum(), (gaps <= _DAY).sum(), (gaps > 30 * _DAY).sum()], dtype=np.int64
    )
    first = ts[starts]
    ages = ts - np.repeat(first, views)
    top_req = np.repeat(views >= top_min_views, views)
    room = np.maximum(t_end - first, 0.0)
    top_obj = views >= top_min_views
    for k, (req_mask, obj_mask) in enumerate(((slice(None), slice(None)), (top_req, top_obj))):
        out["age_req"][k] = np.histogram(ages[req_mask], bins=edges_s)[0]
        r = room[obj_mask]
        lo, hi = edges_s[:-1], edges_s[1:]
        out["age_exp"][k] = (np.clip(r[:, None], lo, hi) - lo).sum(axis=0) / _DAY if len(r) else 0.0
    return out


def _sum_stats(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.sum([p[k] for p in parts], axis=0) for k in parts[0]}


def analyze_trace(
    path: str | os.PathLike,
    *,
    format: str = "auto",
    backend: str = "auto",
    sample_requests: int = 400_000,
    cache_fractions: tuple[float, ...] = CACHE_FRACTIONS,
    max_bad_fraction: float = 0.01,
    partition_rows: int = 2_000_000,
    partition_bytes: int = 64 * 2**20,
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    scheduler: str = "threads",
) -> dict:
    """Measure the four workload observations of a trace (see the module docstring for each definition).

    Parameters
    ----------
    path
        A trace in any format :func:`~latentzarr.traces.readers.read_trace` reads.
    format
        Its format (``"auto"``: guessed).
    backend
        ``"auto"``, ``"pandas"`` or ``"cudf"`` (:func:`select_backend`).
    sample_requests
        Target size of the SHARDS sample for the miss-ratio curves (more: smoother curves, slower).
    cache_fractions
        Cache sizes for the miss-ratio curves, as fractions of the distinct objects.
    max_bad_fraction
        Passed to the reader for text traces.
    partition_rows
        Rows per partition after the shuffle on object id (bounds per-task memory).
    partition_bytes
        Target size of a partition when reading (Parquet row groups are grouped up to about this much).
    seed
        Seed of the SHARDS hash.
    out_dir
        When given, PNG plots of the four observations and ``stats.json`` are written there.
    scheduler
        Dask scheduler for the computation (``"threads"``, ``"processes"``, ``"synchronous"``, or a
        ``distributed.Client`` already set as default by passing ``None``).

    Returns
    -------
    dict
        JSON-serialisable statistics.
    """
    t0 = time.perf_counter()
    backend = select_backend(backend)
    fmt = detect_format(path) if format == "auto" else format
    info: dict = {"path": str(path), "format": fmt, "backend": backend, "bad_lines": 0, "bad_examples": []}
    with contextlib.ExitStack() as stack:
        src = Path(path)
        if fmt != "parquet":
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="latentzarr-trace-"))
            src = Path(tmp) / "trace.parquet"
            conv = convert_trace(path, src, fmt, max_bad_fraction=max_bad_fraction)
            info.update(bad_lines=conv["bad_lines"], bad_examples=conv["bad_examples"])
        stack.enter_context(dask.config.set({"dataframe.backend": backend}))
        if scheduler is not None:
            stack.enter_context(dask.config.set(scheduler=scheduler))
        # dask 2026.8's Parquet reader calls reset_index(inplace=True), which pandas 3.1 deprecates (not ours).
        stack.enter_context(warnings.catch_warnings())
        warnings.filterwarnings("ignore", message="The inplace keyword in DataFrame.reset_index is deprecated")
        ddf = dd.read_parquet(str(src), columns=["timestamp", "object_id"], blocksize=partition_bytes)
        stats = _analyze(ddf, sample_requests, cache_fractions, partition_rows, seed)
    stats = {**info, **stats, "seconds": time.perf_counter() - t0}
    stats["published"] = dict(PUBLISHED)
    if out_dir is not None:
        from latentzarr.traces.plots import plot_observations, write_json

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stats["plots"] = [str(p) for p in plot_observations(stats, out)]
        write_json(stats, out / "stats.json")
    return stats


def _analyze(ddf, sample_requests: int, cache_fractions, partition_rows: int, seed: int) -> dict:
    # Pass 1: popularity and time range.
    counts_d = ddf["object_id"].value_counts(split_out=max(1, ddf.npartitions // 4))
    counts, t_min, t_max = dask.compute(counts_d, ddf["timestamp"].min(), ddf["timestamp"].max())
    counts = _host(counts)
    views = np.sort(counts.to_numpy())[::-1]
    n_req, n_obj = int(views.sum()), len(views)
    if n_req == 0:
        raise TraceFormatError("Expected a trace with at least one request. Got an empty trace instead.")
    total = float(n_req)
    k1, k10 = max(1, round(0.01 * n_obj)), max(1, round(0.1 * n_obj))
    ranks = np.unique(np.round(np.logspace(0, np.log10(max(n_obj, 1)), 100)).astype(np.int64))
    lo, hi = (0.001 * n_obj, 0.1 * n_obj) if n_obj >= 10_000 else (1, n_obj)
    fit_ranks = np.unique(np.round(np.logspace(np.log10(max(lo, 1)), np.log10(max(hi, 1)), 50)).astype(np.int64))
    if len(fit_ranks) > 1:
        slope, intercept = np.polyfit(np.log10(fit_ranks), np.log10(views[fit_ranks - 1]), 1)
    else:
        slope, intercept = 0.0, float(np.log10(max(total, 1)))
    top_min_views = int(views[k1 - 1]) if n_obj else 1
    out: dict = {
        "n_requests": n_req,
        "n_objects": n_obj,
        "duration_days": float(t_max - t_min) / _DAY if n_req else 0.0,
        "mean_views": total / n_obj if n_obj else 0.0,
        "max_views": int(views[0]) if n_obj else 0,
        "top1_share": float(views[:k1].sum() / total) if n_obj else 0.0,
        "top10_share": float(views[:k10].sum() / total) if n_obj else 0.0,
        "under10_fraction": float((views < 10).mean()) if n_obj else 0.0,
        "once_fraction": float((views == 1).mean()) if n_obj else 0.0,
        "zipf_exponent": float(-slope),
        "zipf_intercept": float(intercept),
        "zipf_fit_ranks": [int(fit_ranks[0]), int(fit_ranks[-1])],
        "rank_frequency": {"rank": ranks.tolist(), "views": views[ranks - 1].astype(int).tolist()},
    }

    # Pass 2: shuffle on object id; per partition intervals and ages.
    nparts = max(1, int(np.ceil(n_req / partition_rows)))
    shuffled = ddf.shuffle("object_id", npartitions=nparts)
    parts = [dask.delayed(_partition_stats)(p, float(t_max), top_min_views) for p in shuffled.to_delayed()]
    agg = _sum_stats(list(dask.compute(*parts)))
    n_int, le_h, le_d, gt_30 = (int(v) for v in agg["thresholds"])
    out.update(
        n_reaccesses=n_int,
        reaccess_within_1h=le_h / n_int if n_int else float("nan"),
        reaccess_within_1d=le_d / n_int if n_int else float("nan"),
        reaccess_beyond_30d=gt_30 / n_int if n_int else float("nan"),
    )
    cdf = np.cumsum(agg["interval_hist"]) / max(n_int, 1)
    out["interval_cdf"] = {"seconds": _INTERVAL_EDGES[1:-1].tolist(), "cdf": cdf[:-1].tolist()}
    req, exp_ = agg["age_req"], agg["age_exp"]
    with np.errstate(invalid="ignore", divide="ignore"):  # no exposure in a bucket: NaN (null in JSON)
        rate = np.where(exp_ > 0, req / exp_, np.nan)
        # buckets 0-30 d are the first four; 180-365 d is index 6
        first30 = req[:, :4].sum(axis=1) / exp_[:, :4].sum(axis=1)
        ratio = rate[:, 6] / first30
    out["decay"] = {
        "age_edges_days": [float(e) for e in AGE_EDGES_DAYS],
        "rate_all": [float(v) for v in rate[0]],
        "rate_top1": [float(v) for v in rate[1]],
        "requests_all": req[0].astype(int).tolist(),
        "requests_top1": req[1].astype(int).tolist(),
    }
    out["decay_ratio_all"], out["decay_ratio_top1"] = float(ratio[0]), float(ratio[1])

    # Pass 3: SHARDS sample for the miss-ratio curves.
    rate_target = min(1.0, sample_requests / max(n_req, 1))
    obj_ids = counts.index.to_numpy()
    keep = obj_ids[sample_ids(obj_ids, rate_target, seed=seed)]
    rate_actual = len(keep) / n_obj if n_obj else 0.0
    sample = _host(ddf[ddf["object_id"].isin(keep.tolist())].compute())
    sample = sample.sort_values("timestamp", kind="stable")
    codes = pd.factorize(sample["object_id"].to_numpy(), sort=False)[0]
    t = time.perf_counter()
    out["mrc"] = shards_mrc(codes, rate_actual, n_obj, np.asarray(cache_fractions))
    out["mrc_seconds"] = time.perf_counter() - t
    out["mrc_sample_rate"] = rate_actual
    out["mrc_sample_requests"] = len(codes)
    return out


def format_table(stats: dict) -> str:
    """A plain-text table of the published figures against the measured ones (percentage points)."""
    names = {
        "top1_share": "top 1% of objects: share of views",
        "top10_share": "top 10% of objects: share of views",
        "under10_fraction": "objects with < 10 views",
        "once_fraction": "objects seen once",
        "reaccess_within_1h": "re-access intervals <= 1 h",
        "reaccess_within_1d": "re-access intervals <= 1 day",
        "reaccess_beyond_30d": "re-access intervals > 30 days",
    }
    lines = [f"{'statistic':<38} {'published':>9} {'measured':>9} {'diff (pp)':>9}"]
    for key, label in names.items():
        m, p = stats[key], PUBLISHED[key]
        lines.append(f"{label:<38} {p:>9.1%} {m:>9.1%} {100 * (m - p):>+9.1f}")
    lines.append(
        f"{stats['n_requests']} requests, {stats['n_objects']} objects, {stats['duration_days']:.0f} days, "
        f"Zipf exponent {stats['zipf_exponent']:.2f}, rate at 180-365 d / first 30 d: "
        f"{stats['decay_ratio_all']:.3g} (all), {stats['decay_ratio_top1']:.3g} (top 1%)"
    )
    mrc = stats["mrc"]
    lines.append("cache size (% of objects): " + " ".join(f"{100 * c:g}" for c in mrc["cache_fraction"]))
    lines.append("LRU miss ratio:            " + " ".join(f"{v:.3f}" for v in mrc["lru"]))
    lines.append("S3-FIFO miss ratio:        " + " ".join("-" if v is None or np.isnan(v) else f"{v:.3f}"
                                                    for v in mrc["s3fifo"]))
    skipped = sum(v is None or np.isnan(v) for v in mrc["s3fifo"])
    if skipped:
        lines.append(f"(S3-FIFO -: {skipped} cache sizes hold fewer than {S3FIFO_MIN_OBJECTS} objects of the sampled "
                     "trace, too few for its 10% small queue; a trace with more objects fills them)")
    return "\n".join(lines)
