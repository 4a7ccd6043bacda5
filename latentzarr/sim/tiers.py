"""Precision tiers over time: persistent bytes of a latent store under a lifecycle policy, replayed on a trace.

The policy (the store side is :mod:`latentzarr.store.lifecycle`): an object that has not been read for ``days``
days is rewritten at the lossy precision mode ``mode`` if its decode at that mode keeps a PSNR of at least
``threshold_db`` dB against the lossless decode; objects that fail the check stay lossless. This module does the
bookkeeping only: given the accesses of a trace (object ids and times; an object's first access is its birth),
it gives the persistent bytes of the catalogue at the end of every month for "lossless only" and for the policy.

Rules of the replay
===================
* An object is born at its first access and is never deleted; it costs ``lossless_bytes`` until demoted.
* Demotion happens at ``a + days * 86400`` seconds, where ``a`` is an access followed by no other access within
  ``days`` days (the idle gap after the last access is open-ended). Reading an object exactly ``days`` days after
  the previous read keeps it lossless.
* After demotion an object costs ``mode_bytes``. A later read does **not** re-promote it (the lossless latent is
  gone); with ``repromote=True`` a read rewrites it lossless again (a store that keeps or regenerates the
  original, e.g. from the prompt and seed) and it is demoted again after the next idle gap longer than ``days``.
* The PSNR check: with a per-object PSNR table (``psnr_db``, dB, one per object) an object is eligible when its
  PSNR >= ``threshold_db`` (NaN fails); without one, every object counts for the fraction ``pass_rate`` of its
  saving (the expected bytes when a share ``pass_rate`` of objects, independent of their access pattern, passes).
  :func:`pass_rate_from_fidelity` measures that share from the fidelity evaluator's per-image PSNRs;
  :data:`MEASURED_512PX` holds the figures measured on the 8 sample photos at 512 px (``/work/shared/fidelity``).
* A rewrite that would not make an object smaller is not made (its saving is clipped at 0), so the policy's bytes
  never fall below the sum of ``min(lossless, mode)`` bytes of the catalogue (the mode's floor) and never exceed
  the lossless bytes.

Months are ``365.25 / 12`` days, counted from the trace's first access; the last month ends at the trace end.
Pure numpy (no torch, no dask).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latentzarr.precision.modes import parse_mode
from latentzarr.traces.trace import Trace

__all__ = [
    "DAY_S",
    "MEASURED_512PX",
    "MONTH_S",
    "TierPolicy",
    "TierSeries",
    "assign_samples",
    "fidelity_table",
    "pass_rate_from_fidelity",
    "plot_tier_bytes",
    "tier_series",
    "tier_series_from_last_access",
]

DAY_S = 86400.0
#: One month in seconds (365.25 / 12 days), the step of the monthly series.
MONTH_S = 365.25 / 12 * DAY_S

#: Fidelity measured on the 8 sample photos at 512 x 512 px with the trained taef2 decoder
#: (``/work/shared/fidelity/fid512.json``, ``workflows/fidelity.py``): mean latent bytes per image and the per-image
#: PSNR (dB) of the decode at each mode against the lossless decode. The documented default pass rates.
MEASURED_512PX: dict[str, dict[str, Any]] = {
    "lossless": {"bytes_per_image": 219279.0, "psnr_db": [math.inf] * 8},
    "q8": {"bytes_per_image": 115543.125, "psnr_db": [55.83, 57.54, 57.25, 59.50, 56.02, 56.62, 59.90, 61.81]},
    "wstep:0.06": {"bytes_per_image": 95136.5, "psnr_db": [53.91, 56.21, 55.29, 57.35, 52.94, 52.63, 57.58, 61.03]},
    "wstep:0.08": {"bytes_per_image": 88348.375, "psnr_db": [52.09, 54.91, 53.78, 55.71, 51.35, 50.82, 56.26, 59.60]},
}


def _check_float(name: str, value: Any, *, low: float = 0.0, strict: bool = False, allow_inf: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"Expected a number for {name}. Got {value!r} instead.")
    v = float(value)
    if math.isnan(v) or (math.isinf(v) and not (allow_inf and v > 0)) or (v <= low if strict else v < low):
        sign = ">" if strict else ">="
        extra = " (inf allowed)" if allow_inf else ""
        raise ValueError(f"Expected {name} {sign} {low:g}{extra}. Got {value!r} instead.")
    return v


@dataclass(frozen=True)
class TierPolicy:
    """A precision-tier lifecycle policy and the bytes it trades.

    Parameters
    ----------
    days
        Idle days (>= 0, ``math.inf`` for never) after the last read at which an object is demoted.
    mode
        Precision mode text of the demoted tier (:func:`latentzarr.precision.parse_mode`), e.g. ``"wstep:0.08"``.
    threshold_db
        Minimum PSNR (dB) of an object's decode at ``mode`` against its lossless decode for it to be demoted.
    lossless_bytes, mode_bytes
        Bytes per image at lossless precision and at ``mode`` (> 0); per-object arrays given to
        :func:`tier_series` override them.
    pass_rate
        Share (0..1) of objects passing the PSNR check, used only when no per-object PSNR table is given.
    repromote
        A read after demotion rewrites the object lossless again (default ``False``: demotion is final).
    """

    days: float
    mode: str
    threshold_db: float
    lossless_bytes: float
    mode_bytes: float
    pass_rate: float | None = None
    repromote: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "days", _check_float("TierPolicy.days", self.days, allow_inf=True))
        object.__setattr__(self, "mode", parse_mode(self.mode).name)
        if parse_mode(self.mode).kind == "lossless":
            raise ValueError(f"Expected a lossy precision mode for the demoted tier. Got {self.mode!r} instead.")
        if isinstance(self.threshold_db, bool) or not isinstance(self.threshold_db, int | float | np.number) \
                or math.isnan(self.threshold_db):
            raise ValueError(f"Expected a PSNR threshold in dB. Got {self.threshold_db!r} instead.")
        object.__setattr__(self, "threshold_db", float(self.threshold_db))
        for name in ("lossless_bytes", "mode_bytes"):
            object.__setattr__(self, name, _check_float(f"TierPolicy.{name}", getattr(self, name), strict=True))
        if self.pass_rate is not None:
            rate = _check_float("TierPolicy.pass_rate", self.pass_rate)
            if rate > 1:
                raise ValueError(f"Expected TierPolicy.pass_rate in [0, 1]. Got {self.pass_rate!r} instead.")
            object.__setattr__(self, "pass_rate", rate)
        if not isinstance(self.repromote, bool):
            raise ValueError(f"Expected True or False for TierPolicy.repromote. Got {self.repromote!r} instead.")

    @classmethod
    def from_measured(cls, days: float, mode: str, threshold_db: float, *,
                      measured: Mapping[str, Mapping[str, Any]] | None = None, repromote: bool = False) -> TierPolicy:
        """A policy whose bytes and pass rate come from ``measured`` (default :data:`MEASURED_512PX`)."""
        measured = MEASURED_512PX if measured is None else measured
        name = parse_mode(mode).name
        if name not in measured or "lossless" not in measured:
            raise ValueError(f"Expected a mode measured in {sorted(measured)!r}. Got {mode!r} instead; measure it "
                             "with workflows/fidelity.py or give the bytes and pass rate yourself.")
        psnr = np.asarray(measured[name]["psnr_db"], dtype=float)
        return cls(days, name, threshold_db, float(measured["lossless"]["bytes_per_image"]),
                   float(measured[name]["bytes_per_image"]), pass_rate=float(np.mean(psnr >= threshold_db)),
                   repromote=repromote)


@dataclass(frozen=True)
class TierSeries:
    """Persistent bytes at the end of every month, lossless only vs the policy (arrays of length ``months``).

    Attributes
    ----------
    month_end_s
        End of each month in seconds from the trace's first access (the last one is the trace end).
    catalogue
        Objects born by each month end.
    lossless_bytes
        Bytes of the catalogue when every object stays lossless.
    policy_bytes
        Bytes under the policy (``floor_bytes <= policy_bytes <= lossless_bytes``).
    floor_bytes
        Bytes if every object were stored at ``min(lossless, mode)`` bytes.
    demoted
        Objects stored at the mode at each month end (pass-rate weighted without a PSNR table).
    demoted_by_age
        Element ``k``: the byte saving realised on objects aged ``k`` whole months over the saving if all of them
        were at the mode, pooled over all month ends: the share of objects at the mode by age (pass-rate weighted;
        objects failing the PSNR check count as not demoted) when all objects have the same bytes, and what
        :meth:`latentzarr.cost.CostInputs.with_tiers` takes. NaN where no object had that age.
    n_objects, n_eligible
        Objects in the catalogue; objects passing the PSNR check (pass-rate weighted without a table).
    demoted_psnr_min
        Lowest PSNR (dB) among objects demoted at any time (``None`` without a PSNR table or when none was).
    """

    policy: TierPolicy
    month_end_s: np.ndarray
    catalogue: np.ndarray
    lossless_bytes: np.ndarray
    policy_bytes: np.ndarray
    floor_bytes: np.ndarray
    demoted: np.ndarray
    demoted_by_age: np.ndarray
    n_objects: int
    n_eligible: float
    demoted_psnr_min: float | None
    mode_bytes_ratio: float = field(default=math.nan)

    @property
    def months(self) -> int:
        """Number of month ends."""
        return len(self.month_end_s)

    @property
    def ratio(self) -> float:
        """Policy bytes over lossless bytes at the trace end (1.0: no change)."""
        return float(self.policy_bytes[-1] / self.lossless_bytes[-1]) if self.lossless_bytes[-1] else 1.0

    @property
    def reduction(self) -> float:
        """Extra reduction of persistent bytes at the trace end: ``1 - policy / lossless``."""
        return 1.0 - self.ratio

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (NaN as ``None``)."""

        def clean(a: np.ndarray) -> list[float | None]:
            return [None if not math.isfinite(v) else float(v) for v in np.asarray(a, dtype=float)]

        p = self.policy
        return {
            "policy": {"days": None if math.isinf(p.days) else p.days, "mode": p.mode,
                       "threshold_db": p.threshold_db, "lossless_bytes": p.lossless_bytes,
                       "mode_bytes": p.mode_bytes, "pass_rate": p.pass_rate, "repromote": p.repromote},
            "months": self.months,
            "month_end_days": clean(self.month_end_s / DAY_S),
            "catalogue": clean(self.catalogue),
            "lossless_bytes": clean(self.lossless_bytes),
            "policy_bytes": clean(self.policy_bytes),
            "floor_bytes": clean(self.floor_bytes),
            "demoted": clean(self.demoted),
            "demoted_by_age": clean(self.demoted_by_age),
            "n_objects": self.n_objects,
            "n_eligible": self.n_eligible,
            "demoted_psnr_min": self.demoted_psnr_min,
            "mode_bytes_ratio": None if not math.isfinite(self.mode_bytes_ratio) else self.mode_bytes_ratio,
            "ratio_at_end": self.ratio,
            "reduction_at_end": self.reduction,
        }


def _per_object(name: str, values: Any, n: int, default: float | None) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan if default is None else default, dtype=float)
    arr = np.asarray(values, dtype=float)
    if arr.shape != (n,):
        raise ValueError(f"Expected {name} with one value per object, shape ({n},). Got shape {arr.shape} instead.")
    return arr


def _accesses(accesses: Trace | tuple[Any, Any]) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(accesses, Trace):
        ids, ts = accesses.object_ids, accesses.timestamps
    elif isinstance(accesses, tuple) and len(accesses) == 2:
        ids, ts = np.asarray(accesses[0]), np.asarray(accesses[1], dtype=float)
        if ids.dtype.kind not in "iu":
            raise ValueError(f"Expected integer object ids (dense codes). Got dtype {ids.dtype} instead.")
        ids = ids.astype(np.int64)
        if ids.shape != ts.shape or ids.ndim != 1:
            raise ValueError(f"Expected object ids and times of the same 1-d shape. Got {ids.shape} and {ts.shape} "
                             "instead.")
    else:
        raise ValueError(f"Expected a Trace or an (object_ids, timestamps) pair. Got {type(accesses).__name__} "
                         "instead.")
    if len(ids) == 0:
        raise ValueError("Expected at least one access. Got an empty trace instead.")
    if ids.min() < 0:
        raise ValueError(f"Expected object ids >= 0. Got {int(ids.min())} instead.")
    if not np.all(np.isfinite(ts)):
        raise ValueError("Expected finite access times (seconds). Got NaN or inf instead.")
    return ids, ts


def tier_series(
    accesses: Trace | tuple[Any, Any],
    policy: TierPolicy,
    *,
    psnr_db: Sequence[float] | np.ndarray | None = None,
    lossless_bytes: Sequence[float] | np.ndarray | None = None,
    mode_bytes: Sequence[float] | np.ndarray | None = None,
    end_s: float | None = None,
    birth_s: Sequence[float] | np.ndarray | None = None,
) -> TierSeries:
    """Persistent bytes per month, lossless only vs ``policy``, replaying ``accesses``.

    Parameters
    ----------
    accesses
        A :class:`~latentzarr.traces.Trace`, or an ``(object_ids, timestamps)`` pair: dense int object codes
        ``0..n-1`` and access times in seconds (any order).
    policy
        The lifecycle policy.
    psnr_db
        Optional PSNR (dB) of each object's decode at ``policy.mode``, one per object code: objects below
        ``policy.threshold_db`` stay lossless. Without it ``policy.pass_rate`` is used (it must then be given).
    lossless_bytes, mode_bytes
        Optional bytes per object (one per object code) replacing ``policy.lossless_bytes`` / ``policy.mode_bytes``.
    end_s
        End of the replay in the trace's clock (seconds, >= the last access); default the last access.
    birth_s
        Optional birth time of each object (seconds, at or before its first access); default its first access.
        Births count toward the catalogue only; demotion follows the accesses.

    Returns
    -------
    TierSeries
    """
    if not isinstance(policy, TierPolicy):
        raise ValueError(f"Expected a TierPolicy. Got {type(policy).__name__} instead.")
    ids, ts = _accesses(accesses)
    n = int(ids.max()) + 1
    start = float(ts.min())
    end = float(ts.max()) if end_s is None else _check_float("end_s", end_s, low=-math.inf)
    if end < ts.max():
        raise ValueError(f"Expected end_s >= the last access ({float(ts.max())!r}). Got {end_s!r} instead.")
    if psnr_db is None and policy.pass_rate is None:
        raise ValueError("Expected a per-object psnr_db table or a TierPolicy.pass_rate. Got neither instead; see "
                         "pass_rate_from_fidelity() or TierPolicy.from_measured().")
    psnr = _per_object("psnr_db", psnr_db, n, None) if psnr_db is not None else None
    full = _per_object("lossless_bytes", lossless_bytes, n, policy.lossless_bytes)
    low = _per_object("mode_bytes", mode_bytes, n, policy.mode_bytes)
    if not (np.all(np.isfinite(full)) and np.all(full > 0) and np.all(np.isfinite(low)) and np.all(low > 0)):
        raise ValueError("Expected finite per-object bytes > 0. Got a value <= 0, NaN or inf instead.")
    if psnr is not None:
        weight = np.where(np.isnan(psnr), 0.0, (psnr >= policy.threshold_db).astype(float))
    else:
        weight = np.full(n, float(policy.pass_rate))
    saving = weight * np.maximum(0.0, full - low)

    order = np.lexsort((ts, ids))
    sid, sts = ids[order], ts[order]
    first = np.r_[True, sid[1:] != sid[:-1]]
    born = np.zeros(n, dtype=bool)
    born[sid[first]] = True
    birth = np.full(n, np.inf)
    birth[sid[first]] = sts[first]
    if birth_s is not None:
        given = _per_object("birth_s", birth_s, n, None)
        if not np.all(np.isfinite(given[born])) or np.any(given[born] > birth[born]):
            raise ValueError("Expected every birth_s finite and at or before its object's first access. Got a "
                             "later one, NaN or inf instead.")
        birth[born] = given[born]
        start = min(start, float(birth[born].min()))
    birth -= start
    sts = sts - start
    nxt = np.r_[sts[1:], np.inf]
    nxt[np.r_[sid[1:] != sid[:-1], True]] = np.inf  # last access of an object: open-ended idle gap
    D = policy.days * DAY_S
    idle = (nxt - sts) > D if math.isfinite(D) else np.zeros(len(sts), dtype=bool)
    demote_t = sts[idle] + D
    demote_o = sid[idle]
    if policy.repromote:
        ev_t = np.r_[demote_t, nxt[idle]]
        ev_o = np.r_[demote_o, demote_o]
        ev_s = np.r_[np.ones(len(demote_t)), -np.ones(len(demote_t))]
        keep = np.isfinite(ev_t)
        ev_t, ev_o, ev_s = ev_t[keep], ev_o[keep], ev_s[keep]
    else:  # only the first demotion of each object counts (sorted by time within an object)
        _, idx = np.unique(demote_o, return_index=True)
        ev_t, ev_o, ev_s = demote_t[idx], demote_o[idx], np.ones(len(idx))

    span = end - start
    months = max(1, math.ceil(span / MONTH_S - 1e-9))
    t_end = np.minimum(np.arange(1, months + 1) * MONTH_S, span)

    def at(times: np.ndarray, values: np.ndarray) -> np.ndarray:
        o = np.argsort(times, kind="stable")
        c = np.r_[0.0, np.cumsum(values[o])]
        return c[np.searchsorted(times[o], t_end, side="right")]

    bt = birth[born]
    catalogue = at(bt, np.ones(len(bt)))
    lossless = at(bt, full[born])
    floor = at(bt, np.minimum(full, low)[born])
    policy_bytes = lossless - at(ev_t, ev_s * saving[ev_o])
    demoted = at(ev_t, ev_s * weight[ev_o])

    possible = np.maximum(0.0, full - low)  # the saving if every object were at the mode
    num = np.zeros(months)
    den = np.zeros(months)
    for t in t_end:
        alive = bt <= t
        ages = np.floor((t - bt[alive]) / MONTH_S).astype(np.int64)
        den += np.bincount(ages, weights=possible[born][alive], minlength=months)[:months]
        state = np.bincount(ev_o[ev_t <= t], weights=ev_s[ev_t <= t], minlength=n)[born][alive]
        num += np.bincount(ages, weights=state * (weight * possible)[born][alive], minlength=months)[:months]
    with np.errstate(invalid="ignore", divide="ignore"):
        by_age = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)

    psnr_min: float | None = None
    if psnr is not None and len(ev_o):
        ever = np.unique(ev_o[ev_s > 0])
        ever = ever[weight[ever] > 0]
        if len(ever):
            psnr_min = float(np.min(psnr[ever]))
    return TierSeries(
        policy=policy, month_end_s=t_end, catalogue=catalogue, lossless_bytes=lossless, policy_bytes=policy_bytes,
        floor_bytes=floor, demoted=demoted, demoted_by_age=by_age, n_objects=int(born.sum()),
        n_eligible=float(weight[born].sum()), demoted_psnr_min=psnr_min,
        mode_bytes_ratio=float(low[born].sum() / full[born].sum()),
    )


def tier_series_from_last_access(
    birth_s: Sequence[float] | np.ndarray,
    last_access_s: Sequence[float] | np.ndarray,
    policy: TierPolicy,
    **kwargs: Any,
) -> TierSeries:
    """:func:`tier_series` from each object's birth and last-access times only (seconds, one per object).

    Each object is taken as read without pause from its birth to its last access (its only idle gap is the one
    after the last access). That is exact when it had no earlier idle gap longer than ``policy.days``; otherwise,
    without re-promotion, it demotes later than the full trace would (never earlier: more bytes, never fewer), and
    with re-promotion it is exact at the end of the replay. ``kwargs`` go to :func:`tier_series`.
    """
    b = np.asarray(birth_s, dtype=float)
    last = np.asarray(last_access_s, dtype=float)
    if b.ndim != 1 or b.shape != last.shape:
        raise ValueError(f"Expected birth and last-access times of the same 1-d shape. Got {b.shape} and "
                         f"{last.shape} instead.")
    if np.any(last < b):
        raise ValueError("Expected every last access at or after its object's birth. Got an earlier one instead.")
    return tier_series((np.arange(len(b), dtype=np.int64), last), policy, birth_s=b, **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Fidelity results as per-object tables


def fidelity_table(doc: Mapping[str, Any], mode: str, *, size: str | int | None = None) -> dict[str, np.ndarray]:
    """Per-image bytes and PSNR of ``mode`` (and lossless bytes) from a fidelity evaluation.

    Parameters
    ----------
    doc
        A :meth:`latentzarr.precision.FidelityResult.to_json` document (``info``, ``summary``, ``per_image``), or
        the ``workflows/fidelity.py`` JSON that holds one per picture size under ``sizes[<size>]["result"]``.
    mode
        The precision mode whose rows are wanted.
    size
        Picture size in the workflow JSON (default: its only or smallest size).

    Returns
    -------
    dict
        ``names`` (image names), ``lossless_bytes``, ``mode_bytes`` (bytes per image) and ``psnr_db`` (dB).
    """
    if "sizes" in doc:
        sizes = doc["sizes"]
        if not sizes:
            raise ValueError("Expected a fidelity document with at least one size. Got none instead.")
        key = str(size) if size is not None else min(sizes, key=lambda s: int(s))
        if key not in sizes:
            raise ValueError(f"Expected a size among {sorted(sizes)!r}. Got {size!r} instead.")
        doc = sizes[key]["result"]
    rows = doc.get("per_image") if isinstance(doc, Mapping) else None
    if not rows:
        raise ValueError("Expected a fidelity document with 'per_image' rows. Got none instead; run "
                         "workflows/fidelity.py --json first.")
    name = parse_mode(mode).name

    def pick(setting: str) -> dict[str, dict[str, Any]]:
        return {str(r["image"]): r for r in rows if r.get("method") == "latent" and r.get("setting") == setting}

    lossy, lossless = pick(name), pick("lossless")
    if not lossy or not lossless:
        raise ValueError(f"Expected latent rows for 'lossless' and {name!r} in the fidelity document. Got "
                         f"{sorted({r.get('setting') for r in rows if r.get('method') == 'latent'})!r} instead.")
    names = [n for n in lossy if n in lossless]
    return {
        "names": np.asarray(names, dtype=object),
        "lossless_bytes": np.asarray([lossless[n]["bytes"] for n in names], dtype=float),
        "mode_bytes": np.asarray([lossy[n]["bytes"] for n in names], dtype=float),
        "psnr_db": np.asarray([np.nan if lossy[n]["psnr"] is None else lossy[n]["psnr"] for n in names],
                              dtype=float),
    }


def pass_rate_from_fidelity(doc: Mapping[str, Any], mode: str, threshold_db: float, **kwargs: Any) -> float:
    """Share of the evaluated images whose PSNR at ``mode`` is >= ``threshold_db`` (see :func:`fidelity_table`)."""
    table = fidelity_table(doc, mode, **kwargs)
    return float(np.mean(np.nan_to_num(table["psnr_db"], nan=-np.inf) >= threshold_db))


def assign_samples(n_objects: int, table: Mapping[str, np.ndarray], *, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-object arrays for :func:`tier_series`: each object is one of the evaluated images, drawn uniformly.

    Returns ``sample`` (index into the table per object) and the table's ``lossless_bytes``, ``mode_bytes`` and
    ``psnr_db`` per object.
    """
    if isinstance(n_objects, bool) or not isinstance(n_objects, int | np.integer) or n_objects < 1:
        raise ValueError(f"Expected a positive number of objects. Got {n_objects!r} instead.")
    k = len(table["psnr_db"])
    if k == 0:
        raise ValueError("Expected a fidelity table with at least one image. Got an empty one instead.")
    pick = np.random.default_rng(seed).integers(0, k, size=int(n_objects))
    return {"sample": pick, **{key: np.asarray(table[key], dtype=float)[pick]
                               for key in ("lossless_bytes", "mode_bytes", "psnr_db")}}


def plot_tier_bytes(series: Sequence[TierSeries], path: Any, *, title: str | None = None) -> Any:
    """Persistent bytes (decimal GB) at each month end: lossless only, each policy, and the mode's floor (PNG).

    Parameters
    ----------
    series
        One or more :class:`TierSeries` of the same trace (e.g. several idle days); lossless and floor lines are
        drawn from the first.
    path
        Output PNG file (its folder must exist).
    title
        Figure title.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    from pathlib import Path

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not series:
        raise ValueError("Expected at least one TierSeries. Got none instead.")
    fig = Figure(figsize=(7.0, 4.4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    first = series[0]
    months = np.arange(1, first.months + 1)
    ax.plot(months, first.lossless_bytes / 1e9, color="black", label="lossless only")
    for s in series:
        d = "never" if math.isinf(s.policy.days) else f"{s.policy.days:g} d"
        re = ", re-promote" if s.policy.repromote else ""
        ax.plot(months, s.policy_bytes / 1e9, label=f"{s.policy.mode} after {d} idle, >= {s.policy.threshold_db:g} "
                f"dB{re} ({s.reduction:.0%} less)")
    ax.plot(months, first.floor_bytes / 1e9, color="gray", linestyle="--", label=f"floor: all at {first.policy.mode}")
    ax.set_xlabel("month")
    ax.set_ylabel("persistent bytes (GB)")
    ax.set_title(title or "Persistent bytes under a precision-tier policy")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path
