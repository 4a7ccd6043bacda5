"""Synthetic request traces that reproduce the published AI-image workload.

No public trace of an AI-image platform exists; the paper this project builds on publishes these facts about
its 35-month trace (2.07 B requests, 92.3 M images), and the defaults below are tuned so that
:func:`latentzarr.traces.analysis.analyze_trace` measures each of them within 3 percentage points on a
10-million-request synthetic trace (see BENCHMARKS.md, "Workload traces"):

==========================================  =========
top 1% of images: share of all views        39%
top 10% of images: share of all views       71%
images with fewer than 10 views             69%
images seen once                            15%
re-access intervals within 1 hour           38%
re-access intervals within 1 day            68%
re-access intervals beyond 30 days          6%
new images per month at trace end           3.76 M (1.42x the trace's mean birth rate)
==========================================  =========

The process, per object (image):

1. **Birth.** Birth times over ``[0, days)`` follow an exponentially growing rate whose end-to-start ratio is
   ``exp(growth)`` (a growing catalogue; ``growth=0.75`` makes the end rate 1.42x the mean, as in the paper).
   Object codes are assigned in birth order. The first request of every object is at its birth.
2. **Popularity.** The object's number of requests ``K`` (its realised popularity, independent of its birth) is 1
   with probability ``p_once``; otherwise ``K = 2 + floor(tail_scale * ((v + saturation) ** (-1 / tail_alpha) - 1))``
   with ``v`` uniform in (0, 1): a discrete Lomax (Pareto II) law with tail exponent ``tail_alpha``, i.e. a
   Zipf-like rank-frequency curve, softly capped by ``saturation`` (the share of objects at which the tail stops
   growing, so that the top shares do not depend on the trace length). Quantiles are stratified, so the shares
   are reproducible even on small traces.
3. **Decay.** Each further request is, with probability ``burst_fraction``, a *re-access burst*: it follows a
   random earlier non-burst request of the same object after a log-normal delay (median ``burst_median_s``,
   log-sd ``burst_sigma``). Otherwise its age (time since birth) is drawn from a Lomax law with scale
   ``decay_scale_days`` and exponent ``decay_exponent``, truncated at the trace end: the request rate of every
   object, popular or not, peaks at birth and falls off as ``(1 + age / scale) ** -(exponent + 1)``.

Object sizes are log-normal per object (median ``size_median`` bytes, log-sd ``size_sigma``); an optional model id
per object is drawn uniformly from ``models``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from latentzarr.traces.trace import DEFAULT_OBJECT_SIZE, Trace

__all__ = ["SynthParams", "synth_trace"]

_DAY = 86400.0


@dataclass(frozen=True)
class SynthParams:
    """Parameters of :func:`synth_trace`; the defaults reproduce the published workload (module docstring).

    Attributes
    ----------
    days
        Trace length in days (35 months).
    growth
        Natural log of (birth rate at trace end / birth rate at trace start). 0 gives a uniform birth rate.
    p_once
        Probability that an object is requested exactly once.
    tail_alpha
        Tail exponent of the request-count law (smaller: more skew).
    tail_scale
        Scale of the request-count law; with ``p_once`` it sets the share of objects under 10 views.
    saturation
        Soft cap of the count law as a share of objects (top ~0.01% of objects stop growing).
    burst_fraction
        Probability that a repeat request is a short re-access burst rather than a decay-driven request.
    burst_median_s, burst_sigma
        Median (seconds) and log-sd of the burst delay after the request that triggers it.
    decay_scale_days, decay_exponent
        Lomax scale (days) and exponent of the age of decay-driven requests.
    size_median, size_sigma
        Median (bytes) and log-sd of object sizes. ``size_sigma=0`` gives every object ``size_median`` bytes.
    """

    days: float = 1065.0
    growth: float = 0.75
    p_once: float = 0.15
    tail_alpha: float = 1.2
    tail_scale: float = 6.0
    saturation: float = 1e-4
    burst_fraction: float = 0.22
    burst_median_s: float = 120.0
    burst_sigma: float = 1.5
    decay_scale_days: float = 7.0
    decay_exponent: float = 0.32
    size_median: float = float(DEFAULT_OBJECT_SIZE)
    size_sigma: float = 0.2

    def __post_init__(self) -> None:
        checks = {
            "days": self.days > 0,
            "p_once": 0 <= self.p_once < 1,
            "tail_alpha": self.tail_alpha > 0,
            "tail_scale": self.tail_scale > 0,
            "saturation": self.saturation >= 0,
            "burst_fraction": 0 <= self.burst_fraction <= 1,
            "burst_median_s": self.burst_median_s > 0,
            "burst_sigma": self.burst_sigma >= 0,
            "decay_scale_days": self.decay_scale_days > 0,
            "decay_exponent": self.decay_exponent > 0,
            "size_median": self.size_median >= 1,
            "size_sigma": self.size_sigma >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"Expected a valid SynthParams.{name} (see its docstring). Got {getattr(self, name)!r} instead."
                )


def _counts(n_requests: int, p: SynthParams, rng: np.random.Generator) -> np.ndarray:
    """Requests per object (stratified quantiles of the count law), summing exactly to ``n_requests``.

    The small difference between the sample's sum and ``n_requests`` is spread over the objects with more than
    10 views (scaled, then +-1), so the shares of objects seen once and under 10 times are not disturbed.
    """
    n_obj = max(1, round(n_requests / _mean_count(p)))
    u = (np.arange(n_obj) + rng.random(n_obj)) / n_obj  # stratified quantiles
    counts = np.ones(n_obj, dtype=np.int64)
    tail = u >= p.p_once
    v = (u[tail] - p.p_once) / (1.0 - p.p_once)
    counts[tail] = 2 + np.floor(p.tail_scale * ((v + p.saturation) ** (-1.0 / p.tail_alpha) - 1.0)).astype(np.int64)
    rng.shuffle(counts)
    big = np.flatnonzero(counts > 10)
    diff = n_requests - int(counts.sum())
    if len(big) and counts[big].sum() + diff >= 11 * len(big):
        scaled = counts[big] * (1.0 + diff / counts[big].sum())
        counts[big] = np.maximum(11, np.floor(scaled)).astype(np.int64)
        diff = n_requests - int(counts.sum())
        while diff:
            room = big if diff > 0 else big[counts[big] > 11]
            pick = rng.choice(room, size=min(abs(diff), len(room)), replace=False)
            counts[pick] += 1 if diff > 0 else -1
            diff = n_requests - int(counts.sum())
    elif diff > 0:  # tiny traces: give the rest to one object
        counts[-1] += diff
    elif diff < 0:
        total = np.cumsum(counts)
        last = int(np.searchsorted(total, n_requests))
        counts = counts[: last + 1].copy()
        counts[-1] -= int(total[last] - n_requests)
    return counts


def _mean_count(p: SynthParams) -> float:
    u = (np.arange(20_000) + 0.5) / 20_000
    v = (u[u >= p.p_once] - p.p_once) / (1.0 - p.p_once)
    tail = 2 + np.floor(p.tail_scale * ((v + p.saturation) ** (-1.0 / p.tail_alpha) - 1.0))
    return float((p.p_once * 20_000 + tail.sum()) / 20_000)


def _births(n_obj: int, p: SynthParams, rng: np.random.Generator) -> np.ndarray:
    """Sorted birth times in seconds, density proportional to ``exp(growth * t / T)`` on ``[0, T)``."""
    span = p.days * _DAY
    u = np.sort(rng.random(n_obj))
    if abs(p.growth) < 1e-9:
        return u * span
    return span * np.log1p(u * np.expm1(p.growth)) / p.growth


def synth_trace(
    n_requests: int,
    *,
    seed: int = 0,
    params: SynthParams | None = None,
    models: Sequence[str] | None = None,
    sort: bool = True,
    **overrides: float,
) -> Trace:
    """Generate a synthetic trace of ``n_requests`` requests.

    Parameters
    ----------
    n_requests
        Number of requests (rows). The number of objects follows (about ``n_requests / 20`` with the defaults).
    seed
        Seed of the random generator; the same seed and parameters give the same trace.
    params
        Process parameters (:class:`SynthParams`); the defaults reproduce the published workload.
    models
        Optional model ids; each object gets one uniformly at random. ``None``: no model column.
    sort
        Return requests in time order (the default; what a replay needs).
    **overrides
        Individual :class:`SynthParams` fields, e.g. ``days=30``, applied on top of ``params``.

    Returns
    -------
    Trace
        ``timestamps`` in seconds from 0 to ``days * 86400``, ``object_ids`` dense codes in birth order.
    """
    if not isinstance(n_requests, (int, np.integer)) or n_requests < 1:
        raise ValueError(f"Expected n_requests to be a positive integer. Got {n_requests!r} instead.")
    base = asdict(params or SynthParams())
    unknown = set(overrides) - set(base)
    if unknown:
        raise TypeError(f"Expected SynthParams fields ({', '.join(base)}). Got {sorted(unknown)!r} instead.")
    p = SynthParams(**{**base, **overrides})
    rng = np.random.default_rng(seed)
    span = p.days * _DAY

    counts = _counts(int(n_requests), p, rng)
    n_obj = len(counts)
    births = _births(n_obj, p, rng)
    n_bursts = rng.binomial(counts - 1, p.burst_fraction)
    n_base = counts - n_bursts  # birth + decay-driven requests, >= 1
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])

    # Layout per object: [birth, decay..., burst...]; owner = object code of each request.
    owner = np.repeat(np.arange(n_obj, dtype=np.int64), counts)
    rank = np.arange(n_requests, dtype=np.int64) - np.repeat(starts, counts)
    times = np.repeat(births, counts)
    is_decay = (rank > 0) & (rank < np.repeat(n_base, counts))
    # Decay-driven ages: Lomax, truncated at the trace end by inverse-CDF sampling on [0, F(T - birth)].
    tau = p.decay_scale_days * _DAY
    room = span - times[is_decay]
    f_max = -np.expm1(-p.decay_exponent * np.log1p(room / tau))
    u = rng.random(len(room)) * f_max
    times[is_decay] += tau * np.expm1(-np.log1p(-u) / p.decay_exponent)
    del room, f_max, u
    # Bursts: a random earlier base request of the same object plus a log-normal delay.
    is_burst = rank >= np.repeat(n_base, counts)
    burst_owner = owner[is_burst]
    parent = starts[burst_owner] + np.floor(rng.random(len(burst_owner)) * n_base[burst_owner]).astype(np.int64)
    delay = p.burst_median_s * np.exp(p.burst_sigma * rng.standard_normal(len(burst_owner)))
    times[is_burst] = np.minimum(times[parent] + delay, np.nextafter(span, 0))
    del is_decay, is_burst, burst_owner, parent, delay, rank

    obj_sizes = np.maximum(1, np.round(p.size_median * np.exp(p.size_sigma * rng.standard_normal(n_obj))))
    obj_sizes = obj_sizes.astype(np.int64)
    model_codes = None
    if models:
        model_codes = rng.integers(0, len(models), size=n_obj)

    if sort:
        order = np.argsort(times, kind="stable")
        times = times[order]
        owner = owner[order]
        del order
    sizes = obj_sizes[owner]
    model_col = np.asarray(list(models), dtype=object)[model_codes[owner]] if model_codes is not None else None
    meta = {"format": "synthetic", "seed": int(seed), "params": asdict(p), "models": list(models or [])}
    return Trace(timestamps=times, object_ids=owner, sizes=sizes, models=model_col, meta=meta)
