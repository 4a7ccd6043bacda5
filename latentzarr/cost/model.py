"""Long-term cost of keeping AI-generated images: ImgStore, ImgStore with archive tiering, and latent-first.

The model
=========
Time runs in whole months ``t = 1 .. months``; month ``trace_months`` ends at calendar time ``trace_end_year``.
Month ``t`` has ``births[t]`` new images (the catalogue only grows: nothing is deleted) and ``requests[t]`` reads.

* **Workload.** Within the trace the birth rate rises geometrically, fixed by two published numbers (images at
  trace end, new images per month at trace end), the shape of the synthetic traces (:mod:`latentzarr.traces.synth`,
  ``growth=0.75``: end rate 1.42x the mean); reads are ``requests_per_month`` every month. After the trace, births
  continue from the trace-end rate, growing by ``catalogue_growth_per_year`` (0: a steady 3.76 M a month), and
  reads are ``views_per_image_per_year / 12`` per catalogued image per month (or, with
  ``views_per_image_per_year=None``, ``requests_per_month`` growing by ``request_growth_per_year``).
  An image born ``y`` years after the trace end has ``(1 + g) ** y`` times the bytes of a trace image (PNG and
  latent alike), ``g`` being the rate at which the stored bytes (the cumulative working set) grow by
  ``working_set_cagr`` a year, compounded, from the trace end to the end of ``working_set_cagr_until_year``
  (:meth:`CostInputs.bytes_growth_per_year`; ``g = 0`` without it). The image count, and so the reads, do not
  depend on it. ``volume[t]``: the stored images counted in trace-image sizes.
* **ImgStore**: ``volume[t] * image_bytes`` on standard object storage.
* **ImgStore + archive tiering**: images older than ``archive_after_months`` sit in the archive tier (cheaper per
  GB-month) and the rest on standard storage; a lifecycle-transition fee per archived image; and, for the reads
  that land on archived images, a retrieval fee per GB and per request. Which share of a month's reads lands on
  archived images follows an **age-decay read model**: an image aged ``a`` days draws reads at a rate proportional
  to ``(1 + a / read_decay_scale_days) ** -(read_decay_exponent + 1)`` (the decay law the synthetic traces fit to
  the published re-access facts), weighted by the number of images of each age.
* **Latent-first** (one line per GPU): ``volume[t] * latent_bytes`` on standard storage, plus GPU time
  ``requests[t] * decode_trigger_rate * decode_ms / 3.6e6 / gpu_utilization`` hours at the GPU's price.
* **Latent-first + tiers** (one line per GPU, only when ``tier_bytes`` is set): latent-first whose images are
  rewritten at a lossy precision tier of ``tier_bytes`` bytes once idle (:mod:`latentzarr.sim.tiers`). A share
  ``f[a]`` (``tier_demoted_by_age``) of the images aged ``a`` whole months is at the tier, so storage is
  ``volume[t] * latent_bytes - (latent_bytes - tier_bytes) * sum_s births[s] * size[s] * f[t - s]`` (``size[s]``:
  month ``s``'s image bytes over a trace image's); the GPU time is that of latent-first (a demoted latent decodes
  as fast). The rewrites' request fees are not modelled.

Prices may decline geometrically from calendar time ``price_decline_from_year``: a price ``p`` in a month that
starts ``y`` years after it is ``p * (1 - decline_per_year) ** y`` (constant before it). The archive's retrieval
and transition fees follow the archive price decline.

Costs not modelled (the same in every scenario, or second order): GET requests, egress, the image cache's memory,
compute for PNG encoding of decoded images, and the one-off encode at ingest.

Where the inputs come from
==========================
:data:`PUBLISHED` holds the LatentBox paper's own cost-model inputs (its Table 5 and cost section, via
``shared/paper-figures.md``) and the workload facts of its trace (design.md, "Workload facts from the paper");
:data:`PUBLISHED_SOURCES` names the source of every field, and :data:`PAPER_FIGURES` the paper's published
results, which :mod:`latentzarr.cost.report` sets beside ours. :data:`OPTIMISTIC` is the paper's falling-price
scenario. BENCHMARKS.md ("Cost model") says which figures reproduce within 10% and which modelling choice
explains the ones that do not.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

__all__ = [
    "ARCHIVE",
    "IMGSTORE",
    "OPTIMISTIC",
    "OPTIMISTIC_DECLINES",
    "PAPER_FIGURES",
    "PAPER_SOURCE",
    "PUBLISHED",
    "PUBLISHED_SOURCES",
    "TOLERANCE",
    "CostInputs",
    "CostSeries",
    "Gpu",
    "archived_read_share",
    "cost_series",
    "decode_rate_from_sim",
    "headline_ratios",
    "latent_name",
    "months_until",
    "paper_comparison",
    "sensitivity",
    "tier_name",
]

GB = 1e9  # storage is billed per decimal GB (cloud price lists)
MS_PER_HOUR = 3.6e6


@dataclass(frozen=True)
class Gpu:
    """A GPU that decodes latents on the read path.

    Parameters
    ----------
    name
        Label used in tables and plots, e.g. ``"H100"``.
    usd_per_hour
        Price of one GPU-hour in US dollars (>= 0).
    decode_ms
        GPU time of one decode in milliseconds (> 0), batch effects included.
    """

    name: str
    usd_per_hour: float
    decode_ms: float

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Expected a non-empty GPU name. Got {self.name!r} instead.")
        _check_number(f"Gpu({self.name}).usd_per_hour", self.usd_per_hour, low=0.0)
        _check_number(f"Gpu({self.name}).decode_ms", self.decode_ms, low=0.0, strict=True)


def _check_number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                  strict: bool = False, high_strict: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"Expected a finite number for {name}. Got {value!r} instead.")
    if low is not None and (value <= low if strict else value < low):
        sign = ">" if strict else ">="
        raise ValueError(f"Expected {name} {sign} {low:g}. Got {value!r} instead; prices, sizes and rates "
                         "cannot be negative.")
    if high is not None and (value >= high if high_strict else value > high):
        sign = "<" if high_strict else "<="
        raise ValueError(f"Expected {name} {sign} {high:g}. Got {value!r} instead.")


@dataclass(frozen=True)
class CostInputs:
    """Every input of the cost model, with its unit. See the module docstring for the equations.

    Parameters
    ----------
    trace_months
        Length of the observed period in months (>= 1); the "trace period" ratio is taken over it.
    images_at_trace_end
        Images in the catalogue at the end of the trace period (count; nothing is deleted).
    new_images_per_month_at_trace_end
        Birth rate in the trace's last month (images/month). With ``images_at_trace_end`` it fixes the geometric
        growth of the birth rate within the trace. Must be below ``images_at_trace_end``.
    requests_per_month
        Reads per month during the trace (requests/month), constant within the trace.
    views_per_image_per_year
        Reads per catalogued image per year after the trace (> 0): month ``t`` has
        ``catalogue[t] * views_per_image_per_year / 12`` reads. ``None``: ``requests_per_month`` growing by
        ``request_growth_per_year`` instead.
    image_bytes
        Bytes of one stored image (PNG) in the image store.
    latent_bytes
        Bytes of one stored compressed latent in the latent-first store.
    storage_usd_per_gb_month
        Standard object storage price ($ per decimal GB-month).
    archive_usd_per_gb_month
        Archive tier price ($ per GB-month); used by the archive-tiering scenario only.
    archive_retrieval_usd_per_gb
        Archive retrieval fee ($ per GB read back).
    archive_retrieval_usd_per_request
        Archive retrieval fee ($ per read of an archived object).
    archive_transition_usd_per_1000
        Lifecycle transition fee ($ per 1000 objects moved to the archive tier).
    archive_after_months
        Age in whole months after which an image moves to the archive tier (>= 0).
    read_decay_scale_days, read_decay_exponent
        The age-decay read model (> 0 each): an image aged ``a`` days draws reads at a rate proportional to
        ``(1 + a / scale) ** -(exponent + 1)``; it sets the share of reads that land on archived images.
    decode_trigger_rate
        Fraction of reads (0..1) that run a decode in the latent-first store: 1 - image-tier hit ratio of its cache
        (latent hits and misses both decode).
    gpu_utilization
        Fraction (0, 1] of billed GPU time spent decoding; 1 bills only decode time.
    gpus
        The GPUs of the latent-first scenarios (one scenario per GPU), e.g. a datacenter and a consumer GPU.
    storage_price_decline_per_year, archive_price_decline_per_year, gpu_price_decline_per_year
        Fractional price decline per year, 0 <= d < 1 (0.1: prices fall 10% a year), from
        ``price_decline_from_year``.
    price_decline_from_year
        Calendar time (decimal year) from which the price declines apply; prices are constant before it.
    catalogue_growth_per_year, request_growth_per_year
        Growth per year (> -1) of the birth rate and of the request rate after the trace period.
    working_set_cagr, working_set_cagr_until_year
        Compound annual growth (> -1) of the stored bytes (the cumulative working set) from the trace end to the
        end of calendar year ``working_set_cagr_until_year``. The bytes of each image born after the trace (PNG and
        latent alike) then grow geometrically by the rate that gives it (:meth:`bytes_growth_per_year`), while the
        image count follows the birth rate. ``None``: every image keeps ``image_bytes`` / ``latent_bytes``.
    trace_end_year
        Calendar time of the end of the trace period as a decimal year (2026.25 = end of March 2026); places the
        months in the calendar (:func:`months_until`, ``price_decline_from_year``).
    tier_bytes
        Bytes of one latent rewritten at the lossy precision tier (0 < tier_bytes <= latent_bytes), or ``None``
        (the default: no "Latent-first + tiers" scenario).
    tier_demoted_by_age
        Element ``a`` (0..1): share of the images aged ``a`` whole months that sit at the tier; the last value
        holds for older images. Required with ``tier_bytes`` (see :meth:`with_tiers`).
    """

    trace_months: int = 35
    images_at_trace_end: float = 92.3e6
    new_images_per_month_at_trace_end: float = 3.76e6
    requests_per_month: float = 2.07e9 / 35
    views_per_image_per_year: float | None = 10.2
    image_bytes: float = 1.5e6
    latent_bytes: float = 0.29e6
    storage_usd_per_gb_month: float = 0.023
    archive_usd_per_gb_month: float = 0.004
    archive_retrieval_usd_per_gb: float = 0.01
    archive_retrieval_usd_per_request: float = 0.0001
    archive_transition_usd_per_1000: float = 0.0
    archive_after_months: int = 60
    read_decay_scale_days: float = 7.0
    read_decay_exponent: float = 0.32
    decode_trigger_rate: float = 0.632
    gpu_utilization: float = 1.0
    gpus: tuple[Gpu, ...] = field(default_factory=lambda: (Gpu("H100", 2.50, 40.0), Gpu("RTX 5090", 0.69, 40.0)))
    storage_price_decline_per_year: float = 0.0
    archive_price_decline_per_year: float = 0.0
    gpu_price_decline_per_year: float = 0.0
    price_decline_from_year: float = 2026.0
    catalogue_growth_per_year: float = 0.0
    request_growth_per_year: float = 0.0
    working_set_cagr: float | None = 0.127
    working_set_cagr_until_year: float = 2050.0
    trace_end_year: float = 2026.25
    tier_bytes: float | None = None
    tier_demoted_by_age: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name in ("trace_months", "archive_after_months"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer):
                raise ValueError(f"Expected a whole number of months for {name}. Got {v!r} instead.")
        _check_number("trace_months", self.trace_months, low=1)
        _check_number("archive_after_months", self.archive_after_months, low=0)
        for name in ("images_at_trace_end", "new_images_per_month_at_trace_end", "image_bytes", "latent_bytes"):
            _check_number(name, getattr(self, name), low=0.0, strict=True)
        for name in ("requests_per_month", "storage_usd_per_gb_month", "archive_usd_per_gb_month",
                     "archive_retrieval_usd_per_gb", "archive_retrieval_usd_per_request",
                     "archive_transition_usd_per_1000"):
            _check_number(name, getattr(self, name), low=0.0)
        _check_number("decode_trigger_rate", self.decode_trigger_rate, low=0.0, high=1.0)
        if self.views_per_image_per_year is not None:
            _check_number("views_per_image_per_year", self.views_per_image_per_year, low=0.0, strict=True)
        for name in ("read_decay_scale_days", "read_decay_exponent"):
            _check_number(name, getattr(self, name), low=0.0, strict=True)
        _check_number("gpu_utilization", self.gpu_utilization, low=0.0, high=1.0, strict=True)
        for name in ("storage_price_decline_per_year", "archive_price_decline_per_year", "gpu_price_decline_per_year"):
            _check_number(name, getattr(self, name), low=0.0, high=1.0, high_strict=True)
        for name in ("catalogue_growth_per_year", "request_growth_per_year"):
            _check_number(name, getattr(self, name), low=-1.0, strict=True)
        if self.working_set_cagr is not None:
            _check_number("working_set_cagr", self.working_set_cagr, low=-1.0, strict=True)
        _check_number("working_set_cagr_until_year", self.working_set_cagr_until_year)
        _check_number("trace_end_year", self.trace_end_year)
        _check_number("price_decline_from_year", self.price_decline_from_year)
        if self.new_images_per_month_at_trace_end >= self.images_at_trace_end:
            raise ValueError(
                "Expected new_images_per_month_at_trace_end below images_at_trace_end. Got "
                f"{self.new_images_per_month_at_trace_end!r} >= {self.images_at_trace_end!r} instead."
            )
        gpus = tuple(self.gpus)
        if not gpus or not all(isinstance(g, Gpu) for g in gpus):
            raise ValueError(f"Expected a non-empty tuple of Gpu for gpus. Got {self.gpus!r} instead.")
        if len({g.name for g in gpus}) != len(gpus):
            raise ValueError(f"Expected distinct GPU names. Got {[g.name for g in gpus]!r} instead.")
        object.__setattr__(self, "gpus", gpus)
        by_age = tuple(self.tier_demoted_by_age)
        for i, v in enumerate(by_age):
            _check_number(f"tier_demoted_by_age[{i}]", v, low=0.0, high=1.0)
        object.__setattr__(self, "tier_demoted_by_age", tuple(float(v) for v in by_age))
        if self.tier_bytes is not None:
            _check_number("tier_bytes", self.tier_bytes, low=0.0, strict=True, high=self.latent_bytes)
            if not by_age:
                raise ValueError("Expected tier_demoted_by_age (one share per month of age) with tier_bytes. Got "
                                 "none instead; see CostInputs.with_tiers().")
        elif by_age:
            raise ValueError(f"Expected tier_bytes with tier_demoted_by_age. Got {self.tier_bytes!r} instead.")
        self.bytes_growth_per_year()  # a working_set_cagr no growth of the bytes per image reaches fails here

    def with_tiers(self, mode_bytes_ratio: float, demoted_by_age: Any) -> CostInputs:
        """A copy with the "Latent-first + tiers" scenario, e.g. from a :class:`latentzarr.sim.tiers.TierSeries`.

        Parameters
        ----------
        mode_bytes_ratio
            Bytes of a latent at the tier over its lossless bytes (0 < ratio <= 1); ``tier_bytes`` is
            ``latent_bytes * mode_bytes_ratio``.
        demoted_by_age
            Share of images at the tier by age in whole months (NaN, an age never observed, takes the previous
            age's value, or 0 at age 0).
        """
        _check_number("mode_bytes_ratio", mode_bytes_ratio, low=0.0, strict=True, high=1.0)
        shares = np.asarray(demoted_by_age, dtype=float).ravel()
        if shares.size == 0:
            raise ValueError("Expected at least one share in demoted_by_age. Got none instead.")
        filled = []
        for v in shares:
            filled.append((filled[-1] if filled else 0.0) if math.isnan(v) else float(v))
        return self.replace(tier_bytes=self.latent_bytes * float(mode_bytes_ratio), tier_demoted_by_age=tuple(filled))

    def bytes_growth_per_year(self) -> float:
        """Growth per year of the bytes of each new image after the trace, fixed by ``working_set_cagr``.

        0 when ``working_set_cagr`` is ``None``. Otherwise the rate ``g`` at which the stored bytes at the end of
        ``working_set_cagr_until_year`` are ``(1 + working_set_cagr) ** years`` times those at the trace end, an
        image born ``y`` years after the trace end having ``(1 + g) ** y`` times the bytes of a trace image.
        """
        return _bytes_growth(self)

    def replace(self, **changes: Any) -> CostInputs:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)

    def gpu(self, name: str) -> Gpu:
        """The GPU called ``name``."""
        for g in self.gpus:
            if g.name == name:
                return g
        raise ValueError(f"Expected one of the GPU names {[g.name for g in self.gpus]!r}. Got {name!r} instead.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of every input."""
        d = asdict(self)
        d["gpus"] = [asdict(g) for g in self.gpus]
        return d

    @classmethod
    def from_measurements(
        cls,
        base: CostInputs | None = None,
        *,
        store_info: dict[str, Any] | None = None,
        latent_bytes: float | None = None,
        image_bytes: float | None = None,
        sim_doc: dict[str, Any] | None = None,
        sim_config: str = "adaptive",
        sim_cache_fraction: float | None = None,
        decode_trigger_rate: float | None = None,
        gpu_decode_ms: dict[str, float] | None = None,
        **overrides: Any,
    ) -> CostInputs:
        """Inputs from figures measured on this platform, everything else taken from ``base`` (default ``PUBLISHED``).

        Parameters
        ----------
        base
            Inputs to start from (prices, workload, calendar).
        store_info
            A :meth:`latentzarr.store.LatentStore.info` dictionary: ``bytes_per_image`` gives ``latent_bytes``;
            ``source_bytes / source_known`` (the ingested image files) gives ``image_bytes`` when known.
        latent_bytes, image_bytes
            Bytes per stored latent / image, overriding ``store_info``.
        sim_doc
            A :func:`latentzarr.sim.simulate` document; the decode-trigger rate is ``1 - image_hit_ratio`` of the
            ``sim_config`` result at ``sim_cache_fraction`` (the only size in the document when ``None``).
        decode_trigger_rate
            Fraction of reads that decode, overriding ``sim_doc``.
        gpu_decode_ms
            GPU name -> measured decode milliseconds, replacing those GPUs' ``decode_ms``.
        **overrides
            Any other :class:`CostInputs` field.
        """
        base = base if base is not None else PUBLISHED
        changes: dict[str, Any] = {}
        if store_info is not None:
            bpi = store_info.get("bytes_per_image")
            if bpi is None:
                raise ValueError("Expected store_info with 'bytes_per_image' (a store with images). Got "
                                 f"{store_info.get('bytes_per_image')!r} instead; ingest images first.")
            changes["latent_bytes"] = float(bpi)
            known = store_info.get("source_known") or 0
            if known and store_info.get("source_bytes"):
                changes["image_bytes"] = float(store_info["source_bytes"]) / known
        if latent_bytes is not None:
            changes["latent_bytes"] = float(latent_bytes)
        if image_bytes is not None:
            changes["image_bytes"] = float(image_bytes)
        if sim_doc is not None and decode_trigger_rate is None:
            changes["decode_trigger_rate"] = decode_rate_from_sim(sim_doc, sim_config, sim_cache_fraction)
        if decode_trigger_rate is not None:
            changes["decode_trigger_rate"] = float(decode_trigger_rate)
        if gpu_decode_ms:
            names = {g.name for g in base.gpus}
            unknown = set(gpu_decode_ms) - names
            if unknown:
                raise ValueError(f"Expected GPU names from {sorted(names)!r}. Got {sorted(unknown)!r} instead.")
            changes["gpus"] = tuple(
                replace(g, decode_ms=float(gpu_decode_ms[g.name])) if g.name in gpu_decode_ms else g for g in base.gpus
            )
        changes.update(overrides)
        return base.replace(**changes)


def decode_rate_from_sim(doc: dict[str, Any], config: str = "adaptive", cache_fraction: float | None = None) -> float:
    """Decode-trigger rate (1 - image-hit ratio) of one result of a :func:`latentzarr.sim.simulate` document."""
    rows = [r for r in doc.get("results", []) if r.get("config") == config]
    if cache_fraction is not None:
        rows = [r for r in rows if math.isclose(r.get("cache_fraction", math.nan), cache_fraction, rel_tol=1e-9)]
    if len(rows) != 1:
        sizes = sorted({r.get("cache_fraction") for r in doc.get("results", []) if r.get("config") == config})
        raise ValueError(
            f"Expected exactly one {config!r} result at cache fraction {cache_fraction!r} in the simulation. Got "
            f"{len(rows)} instead (sizes there: {sizes!r}); choose one with sim_cache_fraction (--sim-fraction on the "
            "command line)."
        )
    return 1.0 - float(rows[0]["image_hit_ratio"])


# ---------------------------------------------------------------------------------------------------------------
# The model


@dataclass(frozen=True)
class CostSeries:
    """Monthly and cumulative cost per scenario, in US dollars; arrays of length ``months`` (month 1 first).

    ``monthly`` / ``cumulative`` map a scenario name to its array: ``"ImgStore"``, ``"ImgStore+archive"`` and one
    ``"Latent-first (<GPU>)"`` per GPU, then one ``"Latent-first + tiers (<GPU>)"`` per GPU when the inputs have a
    precision tier. ``catalogue`` (images, end of month) and ``requests`` (per month) are the workload, and
    ``archived_reads`` the reads per month that land on archived images (the age-decay read model);
    ``image_store_bytes`` the bytes ImgStore holds at the end of each month (latent-first holds
    ``latent_bytes / image_bytes`` of it).
    ``parts`` splits every latent-first scenario into ``storage`` and ``gpu`` and the archive scenario into
    ``standard``, ``archive``, ``transition`` and ``retrieval`` (monthly dollars).
    """

    months: int
    catalogue: np.ndarray
    requests: np.ndarray
    monthly: dict[str, np.ndarray]
    cumulative: dict[str, np.ndarray]
    parts: dict[str, dict[str, np.ndarray]]
    archived_reads: np.ndarray
    image_store_bytes: np.ndarray

    @property
    def scenarios(self) -> list[str]:
        """Scenario names in plotting order."""
        return list(self.monthly)

    def total(self, scenario: str) -> float:
        """Cumulative cost of ``scenario`` over all months (dollars)."""
        return float(self.cumulative[scenario][-1])


IMGSTORE = "ImgStore"
ARCHIVE = "ImgStore+archive"


def latent_name(gpu: Gpu | str) -> str:
    """Scenario name of latent-first on ``gpu``."""
    return f"Latent-first ({gpu if isinstance(gpu, str) else gpu.name})"


def tier_name(gpu: Gpu | str) -> str:
    """Scenario name of latent-first with precision tiers on ``gpu``."""
    return f"Latent-first + tiers ({gpu if isinstance(gpu, str) else gpu.name})"


def _trace_growth(inputs: CostInputs) -> float:
    """Monthly growth factor q of the birth rate within the trace: sum_{k<T} b_T q^-k = images_at_trace_end."""
    T, n, b = inputs.trace_months, inputs.images_at_trace_end, inputs.new_images_per_month_at_trace_end

    def total(log_q: float) -> float:
        q_inv = math.exp(-log_q)
        return b * T if abs(log_q) < 1e-12 else b * (1 - q_inv**T) / (1 - q_inv)

    if T == 1:
        return 1.0
    lo, hi = -5.0, 5.0  # total() decreases in log q
    for _ in range(200):
        mid = (lo + hi) / 2
        if total(mid) > n:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)


def _workload(inputs: CostInputs, months: int, bytes_growth: float | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Births, catalogue (end of month), reads per month, and each month's images' bytes over a trace image's."""
    t = np.arange(1, months + 1, dtype=float)
    T = inputs.trace_months
    q = _trace_growth(inputs)
    births = np.empty(months)
    requests = np.empty(months)
    inside = t <= T
    births[inside] = inputs.new_images_per_month_at_trace_end * q ** (t[inside] - T)
    after = (t[~inside] - T) / 12.0
    births[~inside] = inputs.new_images_per_month_at_trace_end * (1 + inputs.catalogue_growth_per_year) ** after
    if T == 1:  # a one-month trace: its whole catalogue is born in that month
        births[0] = inputs.images_at_trace_end
    catalogue = np.cumsum(births)
    requests[inside] = inputs.requests_per_month
    if inputs.views_per_image_per_year is not None:
        requests[~inside] = catalogue[~inside] * inputs.views_per_image_per_year / 12.0
    else:
        requests[~inside] = inputs.requests_per_month * (1 + inputs.request_growth_per_year) ** after
    g = inputs.bytes_growth_per_year() if bytes_growth is None else bytes_growth
    size = np.ones(months)
    size[~inside] = (1 + g) ** after
    return births, catalogue, requests, size


@functools.lru_cache(maxsize=256)
def _bytes_growth(inputs: CostInputs) -> float:
    if inputs.working_set_cagr is None:
        return 0.0
    T = inputs.trace_months
    months = T if inputs.working_set_cagr_until_year + 1 <= inputs.trace_end_year else months_until(
        inputs, inputs.working_set_cagr_until_year)
    if months <= T:
        raise ValueError(f"Expected working_set_cagr_until_year after the trace end ({inputs.trace_end_year:g}). "
                         f"Got {inputs.working_set_cagr_until_year!r} instead.")
    target = (1 + inputs.working_set_cagr) ** ((months - T) / 12.0)

    births = _workload(inputs, months, 0.0)[0]
    years_after = np.maximum(0.0, np.arange(1, months + 1, dtype=float) - T) / 12.0

    def growth(log_g: float) -> float:
        volume = np.cumsum(births * np.exp(log_g * years_after))
        return volume[-1] / volume[T - 1]

    lo, hi = math.log(0.01), math.log(100.0)  # growth() increases with log(1 + g)
    if not growth(lo) <= target <= growth(hi):
        raise ValueError(f"Expected a working_set_cagr reachable by growing the bytes per image (between "
                         f"{growth(lo) ** (12 / (months - T)) - 1:.3g} and {growth(hi) ** (12 / (months - T)) - 1:.3g}"
                         f" here). Got {inputs.working_set_cagr!r} instead.")
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if growth(mid) < target else (lo, mid)
    return math.expm1((lo + hi) / 2)


def _price(p: float, decline: float, inputs: CostInputs, months: int) -> np.ndarray:
    """Price in each month: constant until ``price_decline_from_year``, then falling by ``decline`` a year."""
    start = inputs.trace_end_year + (np.arange(1, months + 1, dtype=float) - 1 - inputs.trace_months) / 12.0
    years = np.maximum(0.0, start - inputs.price_decline_from_year)
    return p * (1.0 - decline) ** years


DAYS_PER_MONTH = 365.25 / 12


def archived_read_share(inputs: CostInputs, births: np.ndarray) -> np.ndarray:
    """Share (0..1) of each month's reads that land on images older than ``archive_after_months``.

    The age-decay read model: an image aged ``a`` days draws reads at a rate proportional to
    ``(1 + a / read_decay_scale_days) ** -(read_decay_exponent + 1)``, so the images aged ``k`` whole months weigh
    ``S(k) - S(k + 1)`` with ``S(m) = (1 + m * 30.44 / scale) ** -exponent``, times how many there are
    (``births``, images per month, month 1 first).
    """
    births = np.asarray(births, dtype=float)
    return _archived_reads(inputs, births, np.ones(births.size))[0]


def _archived_reads(inputs: CostInputs, births: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of each month's reads on archived images, and those reads' mean bytes over a trace image's."""
    n = births.size
    ages = np.arange(n + 1, dtype=float) * DAYS_PER_MONTH
    survival = (1.0 + ages / inputs.read_decay_scale_days) ** -inputs.read_decay_exponent
    weight = survival[:-1] - survival[1:]  # weight[k]: images aged k whole months
    old = weight.copy()
    old[: min(n, inputs.archive_after_months)] = 0.0
    total = np.convolve(births, weight)[:n]
    old_count = np.convolve(births, old)[:n]
    share = np.divide(old_count, total, out=np.zeros(n), where=total > 0)
    mean_size = np.divide(np.convolve(births * size, old)[:n], old_count, out=np.ones(n), where=old_count > 0)
    return share, mean_size


def months_until(inputs: CostInputs, year: float) -> int:
    """Months from the start of the trace to the end of calendar ``year`` (e.g. 2050 -> end of December 2050)."""
    _check_number("year", year)
    after = round((float(year) + 1.0 - inputs.trace_end_year) * 12.0)
    months = inputs.trace_months + after
    if months < 1:
        raise ValueError(f"Expected a year at or after the trace start. Got {year!r} instead.")
    return months


# ---------------------------------------------------------------------------------------------------------------
# The paper's inputs, where each comes from, and the paper's published results.

PUBLISHED = CostInputs()

#: The paper's optimistic price scenario: GPU prices fall 20% a year and storage 10% a year from 2026.
OPTIMISTIC_DECLINES: dict[str, float] = {
    "storage_price_decline_per_year": 0.10,
    "archive_price_decline_per_year": 0.10,
    "gpu_price_decline_per_year": 0.20,
}
OPTIMISTIC = PUBLISHED.replace(**OPTIMISTIC_DECLINES)

#: How to cite the paper's cost section (its Table 5 and text), transcribed in shared/paper-figures.md.
PAPER_SOURCE = "LatentBox paper, via shared/paper-figures.md ('Cost model')"
_PAPER = f"paper ({PAPER_SOURCE})"
_TRACE = "paper's trace facts (design.md, 'Workload facts from the paper')"
PUBLISHED_SOURCES: dict[str, str] = {
    "trace_months": f"{_TRACE}: 35-month trace; {_PAPER}: trace end March 2026 after 35 months",
    "images_at_trace_end": f"{_TRACE}: 92.3 M images",
    "new_images_per_month_at_trace_end": f"{_PAPER}: 3.76 M new images per month (steady state); {_TRACE}",
    "requests_per_month": f"{_TRACE}: 2.07 B requests over 35 months",
    "views_per_image_per_year": f"{_PAPER}: mean views per image 10.2 per year",
    "image_bytes": f"{_PAPER}: average PNG (1024^2) 1.5 MB",
    "latent_bytes": f"{_PAPER}: compressed latent (SD 3.5) 0.29 MB",
    "storage_usd_per_gb_month": f"{_PAPER}: S3 Standard $0.023 per GB-month",
    "archive_usd_per_gb_month": f"{_PAPER}: S3 Glacier Instant Retrieval $0.004 per GB-month",
    "archive_retrieval_usd_per_gb": f"{_PAPER}: Glacier IR retrieval $0.01 per GB",
    "archive_retrieval_usd_per_request": f"{_PAPER}: Glacier IR retrieval $0.0001 per request",
    "archive_transition_usd_per_1000": f"{_PAPER}: no transition fee among its inputs (0)",
    "archive_after_months": f"{_PAPER}: Glacier IR for objects older than 5 years (60 months)",
    "read_decay_scale_days": ("derived from the paper's trace facts (the age-decay model the paper fitted on its "
                              "trace is not published): latentzarr.traces.synth's decay law (SynthParams."
                              "decay_scale_days), fitted to the published re-access intervals (BENCHMARKS.md, "
                              "'Workload traces')"),
    "read_decay_exponent": ("derived from the paper's trace facts, as read_decay_scale_days "
                            "(SynthParams.decay_exponent)"),
    "decode_trigger_rate": f"{_PAPER}: decode-trigger rate (share of reads that decode) 63.2%",
    "gpu_utilization": f"{_PAPER}: decode cost = decodes x decode time x GPU price (only decode time is billed)",
    "gpus": f"{_PAPER}: H100 $2.50 and RTX 5090 $0.69 per GPU-hour; decode time (SD 3.5) 40 ms",
    "storage_price_decline_per_year": f"{_PAPER}: constant prices (OPTIMISTIC: 10%/yr)",
    "archive_price_decline_per_year": f"{_PAPER}: constant prices (OPTIMISTIC: storage 10%/yr, archive included)",
    "gpu_price_decline_per_year": f"{_PAPER}: constant prices (OPTIMISTIC: 20%/yr)",
    "price_decline_from_year": f"{_PAPER}: prices fall 'from 2026'",
    "catalogue_growth_per_year": f"{_PAPER}: steady state of 3.76 M new images per month after the trace",
    "request_growth_per_year": "not used: reads after the trace follow views_per_image_per_year",
    "working_set_cagr": (f"{_PAPER}: growth after the trace '3.76 M new images per month (12.7% CAGR of the "
                         "cumulative working set)'; the working set is in bytes (the cache is '1% of the working "
                         "set'), so with the image count steady the bytes per new image grow"),
    "working_set_cagr_until_year": f"{_PAPER}: the projection runs to 2050",
    "trace_end_year": f"{_PAPER}: trace end March 2026 (2026.25)",
    "tier_bytes": "not in the paper's model: no precision tiers (see latentzarr.sim.tiers and with_tiers)",
    "tier_demoted_by_age": "not in the paper's model: no precision tiers",
}

TOLERANCE = 0.10  # the bar: within 10% of the paper's figure

#: The paper's published results, each with what it measures. ``measure``: ``"normalised"`` (cumulative cost over
#: ImgStore's cumulative cost at trace end), ``"saving_vs_imgstore"`` or ``"saving_vs_archive"`` (1 - ratio of the
#: cumulative costs at that horizon). ``horizon``: ``"trace"`` (35 months) or ``"2050"`` (end of 2050);
#: ``prices``: ``"constant"`` or ``"optimistic"`` (:data:`OPTIMISTIC_DECLINES`).
PAPER_FIGURES: dict[str, dict[str, Any]] = {}


def _figure(key: str, value: float, scenario: str, horizon: str, prices: str, measure: str = "normalised") -> None:
    PAPER_FIGURES[key] = {"value": value, "scenario": scenario, "horizon": horizon, "prices": prices,
                          "measure": measure, "source": PAPER_SOURCE}


_figure("trace/RTX 5090", 0.40, "Latent-first (RTX 5090)", "trace", "constant")
_figure("trace/H100", 0.91, "Latent-first (H100)", "trace", "constant")
_figure("2050/ImgStore", 164.0, "ImgStore", "2050", "constant")
_figure("2050/ImgStore+archive", 79.0, "ImgStore+archive", "2050", "constant")
_figure("2050/RTX 5090", 49.0, "Latent-first (RTX 5090)", "2050", "constant")
_figure("2050/H100", 88.0, "Latent-first (H100)", "2050", "constant")
_figure("2050 optimistic/ImgStore", 40.0, "ImgStore", "2050", "optimistic")
_figure("2050 optimistic/ImgStore+archive", 27.0, "ImgStore+archive", "2050", "optimistic")
_figure("2050 optimistic/RTX 5090", 9.7, "Latent-first (RTX 5090)", "2050", "optimistic")
_figure("2050/RTX 5090 saving vs ImgStore", 0.70, "Latent-first (RTX 5090)", "2050", "constant", "saving_vs_imgstore")
_figure("2050/RTX 5090 saving vs archive", 0.39, "Latent-first (RTX 5090)", "2050", "constant", "saving_vs_archive")
_figure("2050/H100 saving vs ImgStore", 0.46, "Latent-first (H100)", "2050", "constant", "saving_vs_imgstore")
_figure("2050 optimistic/RTX 5090 saving vs ImgStore", 0.75, "Latent-first (RTX 5090)", "2050", "optimistic",
        "saving_vs_imgstore")
_figure("2050 optimistic/RTX 5090 saving vs archive", 0.64, "Latent-first (RTX 5090)", "2050", "optimistic",
        "saving_vs_archive")



# ---------------------------------------------------------------------------------------------------------------
# Costs


def cost_series(inputs: CostInputs = PUBLISHED, months: int | None = None) -> CostSeries:
    """Monthly and cumulative cost of every scenario over ``months`` months (default: the trace period).

    Parameters
    ----------
    inputs
        The model's inputs (:class:`CostInputs`).
    months
        Number of months from the start of the trace (>= 1); beyond ``trace_months`` the workload is extrapolated.

    Returns
    -------
    CostSeries
    """
    months = inputs.trace_months if months is None else months
    if isinstance(months, bool) or not isinstance(months, int | np.integer) or months < 1:
        raise ValueError(f"Expected months to be a whole number >= 1. Got {months!r} instead.")
    months = int(months)
    births, catalogue, requests, size = _workload(inputs, months)
    volume = np.cumsum(births * size)  # stored images weighted by their bytes (trace image = 1)
    k = inputs.archive_after_months
    archived = np.zeros(months)
    moved = np.zeros(months)
    if k < months:
        archived[k:] = volume[: months - k]
        moved[k:] = births[: months - k]
    share, read_size = _archived_reads(inputs, births, size)
    archived_reads = requests * share

    p_std = _price(inputs.storage_usd_per_gb_month, inputs.storage_price_decline_per_year, inputs, months)
    arc_decline = inputs.archive_price_decline_per_year
    p_arc = _price(inputs.archive_usd_per_gb_month, arc_decline, inputs, months)
    p_ret = _price(inputs.archive_retrieval_usd_per_gb, arc_decline, inputs, months)
    p_req = _price(inputs.archive_retrieval_usd_per_request, arc_decline, inputs, months)
    p_tr = _price(inputs.archive_transition_usd_per_1000, arc_decline, inputs, months)
    img_gb = inputs.image_bytes / GB
    lat_gb = inputs.latent_bytes / GB

    monthly: dict[str, np.ndarray] = {}
    parts: dict[str, dict[str, np.ndarray]] = {}
    monthly[IMGSTORE] = volume * img_gb * p_std
    arc_parts = {
        "standard": (volume - archived) * img_gb * p_std,
        "archive": archived * img_gb * p_arc,
        "transition": moved / 1000.0 * p_tr,
        "retrieval": archived_reads * (read_size * img_gb * p_ret + p_req),
    }
    parts[ARCHIVE] = arc_parts
    monthly[ARCHIVE] = sum(arc_parts.values())
    storage = volume * lat_gb * p_std
    decodes = requests * inputs.decode_trigger_rate
    for g in inputs.gpus:
        hours = decodes * g.decode_ms / MS_PER_HOUR / inputs.gpu_utilization
        gpu = hours * _price(g.usd_per_hour, inputs.gpu_price_decline_per_year, inputs, months)
        parts[latent_name(g)] = {"storage": storage, "gpu": gpu}
        monthly[latent_name(g)] = storage + gpu
    if inputs.tier_bytes is not None:
        shares = np.asarray(inputs.tier_demoted_by_age, dtype=float)
        by_age = np.full(months, shares[-1])
        by_age[: min(months, len(shares))] = shares[:months]
        at_tier = np.convolve(births * size, by_age)[:months]  # images at the tier at the end of each month
        tier_storage = storage - at_tier * (inputs.latent_bytes - inputs.tier_bytes) / GB * p_std
        for g in inputs.gpus:
            gpu = parts[latent_name(g)]["gpu"]
            parts[tier_name(g)] = {"storage": tier_storage, "gpu": gpu}
            monthly[tier_name(g)] = tier_storage + gpu
    cumulative = {name: np.cumsum(v) for name, v in monthly.items()}
    return CostSeries(months, catalogue, requests, monthly, cumulative, parts, archived_reads,
                      volume * inputs.image_bytes)


def headline_ratios(inputs: CostInputs = PUBLISHED, *, horizon_year: float = 2050) -> dict[str, Any]:
    """Cumulative cost of every scenario and its ratio to ImgStore, over the trace period and to ``horizon_year``.

    Returns
    -------
    dict
        ``{"trace_period": {...}, "horizon": {...}}``; each has ``months``, ``total_usd`` (scenario -> dollars),
        ``ratio_to_imgstore`` and ``saving_vs_imgstore`` (1 - ratio), ``saving_vs_archive`` (against ImgStore with
        archive tiering), ``normalised`` (total over ImgStore's total at trace end at constant prices, the
        paper's unit), and
        ``gpu_share`` (GPU part of each latent-first total).
    """
    out: dict[str, Any] = {}
    norm = cost_series(inputs.replace(**dict.fromkeys(OPTIMISTIC_DECLINES, 0.0))).total(IMGSTORE)
    for key, months in (("trace_period", inputs.trace_months), ("horizon", months_until(inputs, horizon_year))):
        s = cost_series(inputs, months)
        totals = {name: s.total(name) for name in s.scenarios}
        base, arc = totals[IMGSTORE], totals[ARCHIVE]
        entry: dict[str, Any] = {
            "months": months,
            "total_usd": totals,
            "ratio_to_imgstore": {n: v / base for n, v in totals.items()},
            "normalised": {n: v / norm for n, v in totals.items()},
            "saving_vs_imgstore": {n: 1 - v / base for n, v in totals.items()},
            "saving_vs_archive": {n: 1 - v / arc for n, v in totals.items()},
            "gpu_share": {latent_name(g): float(s.parts[latent_name(g)]["gpu"].sum()) / totals[latent_name(g)]
                          for g in inputs.gpus},
        }
        if key == "horizon":
            entry["year"] = horizon_year
        out[key] = entry
    return out


def paper_comparison(published: CostInputs = PUBLISHED, optimistic: CostInputs | None = None) -> list[dict[str, Any]]:
    """Every figure of :data:`PAPER_FIGURES` beside this model's value for it.

    Parameters
    ----------
    published
        The constant-price inputs (default: the paper's, :data:`PUBLISHED`).
    optimistic
        The falling-price inputs; default ``published`` with :data:`OPTIMISTIC_DECLINES`.

    Returns
    -------
    list of dict
        One row per figure: ``figure`` (its key), ``scenario``, ``horizon``, ``prices``, ``measure``, ``paper``,
        ``ours``, ``relative_error`` ((ours - paper) / paper), ``within_10pct`` and ``source``. Normalised figures
        divide by ImgStore's cumulative cost at trace end at constant prices, for both price scenarios. ``ours``,
        ``relative_error`` and ``within_10pct`` are ``None`` for a figure whose scenario the inputs lack (a GPU
        list without that GPU).
    """
    optimistic = published.replace(**OPTIMISTIC_DECLINES) if optimistic is None else optimistic
    horizon = months_until(published, 2050)
    base = cost_series(published).total(IMGSTORE)
    series = {
        ("trace", "constant"): cost_series(published),
        ("2050", "constant"): cost_series(published, horizon),
        ("2050", "optimistic"): cost_series(optimistic, horizon),
    }
    rows = []
    for key, fig in PAPER_FIGURES.items():
        s = series[(fig["horizon"], fig["prices"])]
        row = {"figure": key, **{k: fig[k] for k in ("scenario", "horizon", "prices", "measure")},
               "paper": fig["value"], "ours": None, "relative_error": None, "within_10pct": None,
               "source": fig["source"]}
        rows.append(row)
        if fig["scenario"] not in s.monthly:  # e.g. the GPU list was replaced
            continue
        total = s.total(fig["scenario"])
        ours = {
            "normalised": total / base,
            "saving_vs_imgstore": 1 - total / s.total(IMGSTORE),
            "saving_vs_archive": 1 - total / s.total(ARCHIVE),
        }[fig["measure"]]
        err = (ours - fig["value"]) / fig["value"]
        row.update(ours=ours, relative_error=err, within_10pct=bool(abs(err) <= TOLERANCE))
    return rows


def sensitivity(
    inputs: CostInputs = PUBLISHED,
    gpu: str | None = None,
    *,
    horizon_year: float = 2050,
    variations: dict[str, list[Any]] | None = None,
) -> list[dict[str, Any]]:
    """Latent-first's saving vs ImgStore when one input varies (others at ``inputs``).

    ``gpu`` defaults to the last GPU (the consumer one in ``PUBLISHED``). ``variations`` maps a field name (or
    ``"gpu_usd_per_hour"`` / ``"decode_ms"`` for that GPU) to its values. Returns one row per value with
    ``param``, ``value``, ``saving_trace_period`` and ``saving_horizon``.
    """
    g = inputs.gpu(gpu) if gpu is not None else inputs.gpus[-1]
    if variations is None:
        variations = {
            "decode_trigger_rate": [0.2, 0.415, 0.632, 1.0],
            "gpu_usd_per_hour": [g.usd_per_hour * f for f in (0.5, 1.0, 2.0, 4.0)],
            "storage_usd_per_gb_month": [0.01, 0.015, 0.023],
            "gpu_price_decline_per_year": [0.0, 0.1, 0.2],
            "storage_price_decline_per_year": [0.0, 0.05, 0.1],
            "catalogue_growth_per_year": [0.0, 0.2],
            "views_per_image_per_year": [5.1, 10.2, 20.4],
            "working_set_cagr": [0.11, 0.127, 0.15],
            "gpu_utilization": [0.5, 1.0],
        }
    names = {f.name for f in fields(CostInputs)}
    rows = []
    for param, values in variations.items():
        for value in values:
            if param in ("gpu_usd_per_hour", "decode_ms"):
                attr = "usd_per_hour" if param == "gpu_usd_per_hour" else "decode_ms"
                new_g = replace(g, **{attr: value})
                x = inputs.replace(gpus=tuple(new_g if o.name == g.name else o for o in inputs.gpus))
            elif param in names:
                x = inputs.replace(**{param: value})
            else:
                raise ValueError(f"Expected a CostInputs field, 'gpu_usd_per_hour' or 'decode_ms'. Got {param!r} "
                                 "instead.")
            h = headline_ratios(x, horizon_year=horizon_year)
            name = latent_name(g)
            rows.append({
                "param": param,
                "value": value,
                "gpu": g.name,
                "saving_trace_period": h["trace_period"]["saving_vs_imgstore"][name],
                "saving_horizon": h["horizon"]["saving_vs_imgstore"][name],
            })
    return rows
