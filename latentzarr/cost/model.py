"""Long-term cost of keeping AI-generated images: ImgStore, ImgStore with archive tiering, and latent-first.

The model
=========
Time runs in whole months ``t = 1 .. months``. Month ``t`` has ``births[t]`` new images (the catalogue only grows:
nothing is deleted) and ``requests[t]`` reads. Every scenario pays, per month:

* **ImgStore**: ``catalogue[t] * image_bytes`` on standard object storage.
* **ImgStore + archive tiering**: images older than ``archive_after_months`` sit in an archive tier (cheaper per
  GB-month) and the rest on standard storage; plus a lifecycle-transition fee per archived image and a retrieval
  fee per GB for the share ``archived_request_fraction`` of the month's reads that land on archived images.
* **Latent-first** (one line per GPU): ``catalogue[t] * latent_bytes`` on standard storage, plus GPU time
  ``requests[t] * decode_trigger_rate * decode_ms / 3.6e6 / gpu_utilization`` hours at the GPU's price.
* **Latent-first + tiers** (one line per GPU, only when ``tier_bytes`` is set): latent-first whose images are
  rewritten at a lossy precision tier of ``tier_bytes`` bytes once idle (:mod:`latentzarr.sim.tiers`). A share
  ``f[a]`` (``tier_demoted_by_age``) of the images aged ``a`` whole months is at the tier, so storage is
  ``catalogue[t] * latent_bytes - (latent_bytes - tier_bytes) * sum_s births[s] * f[t - s]``; the GPU time is that
  of latent-first (a demoted latent decodes as fast). The rewrites' request fees are not modelled.

Prices may decline geometrically: a price ``p`` at month ``t`` is ``p * (1 - decline_per_year) ** ((t - 1) / 12)``.
Within the trace period the catalogue grows with an exponentially rising birth rate fixed by two published numbers
(images at trace end, new images per month at trace end), the same shape as the synthetic traces
(:mod:`latentzarr.traces.synth`, ``growth=0.75``). After the trace the birth and request rates continue from their
trace-end values, growing by ``catalogue_growth_per_year`` and ``request_growth_per_year``.

Costs not modelled (the same in every scenario, or second order): GET requests, egress, the image cache's memory,
compute for PNG encoding of decoded images, and the one-off encode at ingest.

Where the inputs come from
==========================
The paper this project builds on (LatentBox, arXiv 2605.19385, "LatentBox: An Efficient Latent-First Storage
System for AI-Generated Images", 2026) gives the workload: a 35-month trace of 2.07 B requests over 92.3 M images,
about 2 M requests a day, 3.76 M new images a month at trace end; decode 32.6 ms on an H100 and 67 ms on an RTX
4090 (SD3.5, 1024^2); PNG about 1.4-1.5 MB and pcodec latent about 0.28-0.32 MB per image; persistent storage
78.7% below the PNG store. These figures are also in ``/work/shared/design.md`` ("Workload facts from the paper").

The paper's cost section (its $/GB-month, GPU $/hour, archive prices, decode-trigger rate, calendar and price
declines) could **not** be read for this implementation: the stored copy of the paper available to us ends in the
introduction. Every such input is therefore a **documented default** from public list prices or from this
project's own simulator, and ``PUBLISHED_SOURCES`` says, field by field, which is which. Replace them when the
paper's values are at hand; nothing else changes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

__all__ = [
    "ARCHIVE",
    "IMGSTORE",
    "PAPER_FIGURES",
    "PUBLISHED",
    "PUBLISHED_SOURCES",
    "CostInputs",
    "CostSeries",
    "Gpu",
    "cost_series",
    "decode_rate_from_sim",
    "headline_ratios",
    "implied_decode_trigger_rate",
    "latent_name",
    "months_until",
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
    archive_transition_usd_per_1000
        Lifecycle transition fee ($ per 1000 objects moved to the archive tier).
    archive_after_months
        Age in whole months after which an image moves to the archive tier (>= 0).
    archived_request_fraction
        Fraction of each month's reads (0..1) that land on archived images and pay the retrieval fee (none while
        nothing is archived yet).
    decode_trigger_rate
        Fraction of reads (0..1) that run a decode in the latent-first store: 1 - image-tier hit ratio of its cache
        (latent hits and misses both decode).
    gpu_utilization
        Fraction (0, 1] of billed GPU time spent decoding; 1 bills only decode time.
    gpus
        The GPUs of the latent-first scenarios (one scenario per GPU), e.g. a datacenter and a consumer GPU.
    storage_price_decline_per_year, archive_price_decline_per_year, gpu_price_decline_per_year
        Fractional price decline per year, 0 <= d < 1 (0.1: prices fall 10% a year), applied from month 1.
    catalogue_growth_per_year, request_growth_per_year
        Growth per year (> -1) of the birth rate and of the request rate after the trace period.
    trace_end_year
        Calendar time of the end of the trace period as a decimal year (2026.0 = 1 January 2026); only used to
        turn a calendar year into a month count (:func:`months_until`).
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
    image_bytes: float = 1.45e6
    latent_bytes: float = 1.45e6 * (1 - 0.787)
    storage_usd_per_gb_month: float = 0.023
    archive_usd_per_gb_month: float = 0.004
    archive_retrieval_usd_per_gb: float = 0.03
    archive_transition_usd_per_1000: float = 0.02
    archive_after_months: int = 1
    archived_request_fraction: float = 0.06
    decode_trigger_rate: float = 0.415
    gpu_utilization: float = 1.0
    gpus: tuple[Gpu, ...] = field(default_factory=lambda: (Gpu("H100", 2.69, 32.6), Gpu("RTX 4090", 0.34, 67.0)))
    storage_price_decline_per_year: float = 0.0
    archive_price_decline_per_year: float = 0.0
    gpu_price_decline_per_year: float = 0.0
    catalogue_growth_per_year: float = 0.0
    request_growth_per_year: float = 0.0
    trace_end_year: float = 2026.0
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
                     "archive_retrieval_usd_per_gb", "archive_transition_usd_per_1000"):
            _check_number(name, getattr(self, name), low=0.0)
        for name in ("archived_request_fraction", "decode_trigger_rate"):
            _check_number(name, getattr(self, name), low=0.0, high=1.0)
        _check_number("gpu_utilization", self.gpu_utilization, low=0.0, high=1.0, strict=True)
        for name in ("storage_price_decline_per_year", "archive_price_decline_per_year", "gpu_price_decline_per_year"):
            _check_number(name, getattr(self, name), low=0.0, high=1.0, high_strict=True)
        for name in ("catalogue_growth_per_year", "request_growth_per_year"):
            _check_number(name, getattr(self, name), low=-1.0, strict=True)
        _check_number("trace_end_year", self.trace_end_year)
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
# The inputs we use for the published reproduction, and where each comes from.

PUBLISHED = CostInputs()

_PAPER = "LatentBox (arXiv 2605.19385), as summarised in design.md 'Workload facts from the paper'"
PUBLISHED_SOURCES: dict[str, str] = {
    "trace_months": f"paper: 35-month trace ({_PAPER})",
    "images_at_trace_end": "paper: 92.3 M images",
    "new_images_per_month_at_trace_end": "paper: 3.76 M new images/month at trace end",
    "requests_per_month": "paper: 2.07 B requests over 35 months (about 2 M/day)",
    "image_bytes": "paper: PNG at 1024^2 about 1.4-1.5 MB (midpoint 1.45 MB)",
    "latent_bytes": "paper: 78.7% less persistent storage than PNG -> 0.213 x 1.45 MB (paper: 0.28-0.32 MB)",
    "storage_usd_per_gb_month": "DEFAULT, not from the paper: AWS S3 Standard list price, first 50 TB, us-east-1",
    "archive_usd_per_gb_month": "DEFAULT: AWS S3 Glacier Instant Retrieval list price",
    "archive_retrieval_usd_per_gb": "DEFAULT: S3 Glacier Instant Retrieval retrieval fee",
    "archive_transition_usd_per_1000": "DEFAULT: S3 lifecycle transition fee into Glacier Instant Retrieval",
    "archive_after_months": "DEFAULT: archive after 1 month (paper: only 6% of re-accesses come after 30 days)",
    "archived_request_fraction": "DEFAULT: 0.06, the paper's share of re-access intervals beyond 30 days",
    "decode_trigger_rate": ("DEFAULT from this project's simulator, not the paper's: adaptive cache at 1% of the "
                            "working set on the 10 M-request synthetic trace, 1 - 58.5% image hits, as measured "
                            "before the cache demoted evicted images (since then 1 - 48.2% = 0.518, which gives "
                            "64.7% on the RTX 4090; see the sensitivity table)"),
    "gpu_utilization": "DEFAULT: 1.0 (GPU billed for decode time only)",
    "gpus": ("paper: decode 32.6 ms (H100) / 67 ms (RTX 4090); prices DEFAULT, not from the paper: on-demand "
             "cloud list prices of 2026 (H100 about $2.69/h, RTX 4090 about $0.34/h)"),
    "storage_price_decline_per_year": "DEFAULT: 0 (S3 Standard's list price has not changed since 2016)",
    "archive_price_decline_per_year": "DEFAULT: 0",
    "gpu_price_decline_per_year": "DEFAULT: 0 (sensitivity shows declines)",
    "catalogue_growth_per_year": "DEFAULT: 0 after the trace (births stay at the trace-end rate)",
    "request_growth_per_year": "DEFAULT: 0 after the trace (about 2 M requests/day)",
    "trace_end_year": "DEFAULT: 2026.0 (paper submitted May 2026; trace end date not available to us)",
    "tier_bytes": "not in the paper's model: no precision tiers (see latentzarr.sim.tiers and with_tiers)",
    "tier_demoted_by_age": "not in the paper's model: no precision tiers",
}

#: The paper's headline figures as far as we could source them. ``None``: not available to us.
PAPER_FIGURES: dict[str, dict[str, Any]] = {
    "saving_trace_period_consumer_gpu": {
        "value": 0.60,
        "source": "issue 6's summary of the paper: 'about 60% cumulative saving over the trace period on a "
                  "consumer-class GPU price' (the paper's cost section itself was not readable here)",
    },
    "saving_2050_consumer_gpu": {"value": None, "source": "not available: the paper's cost section was not readable"},
}


# ---------------------------------------------------------------------------------------------------------------
# The model


@dataclass(frozen=True)
class CostSeries:
    """Monthly and cumulative cost per scenario, in US dollars; arrays of length ``months`` (month 1 first).

    ``monthly`` / ``cumulative`` map a scenario name to its array: ``"ImgStore"``, ``"ImgStore+archive"`` and one
    ``"Latent-first (<GPU>)"`` per GPU, then one ``"Latent-first + tiers (<GPU>)"`` per GPU when the inputs have a
    precision tier. ``catalogue`` (images) and ``requests`` (per month) are the workload.
    ``parts`` splits every latent-first scenario into ``storage`` and ``gpu`` and the archive scenario into
    ``standard``, ``archive``, ``transition`` and ``retrieval`` (monthly dollars).
    """

    months: int
    catalogue: np.ndarray
    requests: np.ndarray
    monthly: dict[str, np.ndarray]
    cumulative: dict[str, np.ndarray]
    parts: dict[str, dict[str, np.ndarray]]

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


def _workload(inputs: CostInputs, months: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(1, months + 1, dtype=float)
    T = inputs.trace_months
    q = _trace_growth(inputs)
    births = np.empty(months)
    requests = np.empty(months)
    inside = t <= T
    births[inside] = inputs.new_images_per_month_at_trace_end * q ** (t[inside] - T)
    after = (t[~inside] - T) / 12.0
    births[~inside] = inputs.new_images_per_month_at_trace_end * (1 + inputs.catalogue_growth_per_year) ** after
    requests[inside] = inputs.requests_per_month
    requests[~inside] = inputs.requests_per_month * (1 + inputs.request_growth_per_year) ** after
    if T == 1:  # a one-month trace: its whole catalogue is born in that month
        births[0] = inputs.images_at_trace_end
    return births, requests


def _price(p: float, decline: float, months: int) -> np.ndarray:
    return p * (1.0 - decline) ** (np.arange(months, dtype=float) / 12.0)


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
    births, requests = _workload(inputs, months)
    catalogue = np.cumsum(births)
    k = inputs.archive_after_months
    archived = np.zeros(months)
    moved = np.zeros(months)
    if k < months:
        archived[k:] = catalogue[: months - k]
        moved[k:] = births[: months - k]

    p_std = _price(inputs.storage_usd_per_gb_month, inputs.storage_price_decline_per_year, months)
    p_arc = _price(inputs.archive_usd_per_gb_month, inputs.archive_price_decline_per_year, months)
    p_ret = _price(inputs.archive_retrieval_usd_per_gb, inputs.archive_price_decline_per_year, months)
    p_tr = _price(inputs.archive_transition_usd_per_1000, inputs.archive_price_decline_per_year, months)
    img_gb = inputs.image_bytes / GB
    lat_gb = inputs.latent_bytes / GB

    monthly: dict[str, np.ndarray] = {}
    parts: dict[str, dict[str, np.ndarray]] = {}
    monthly[IMGSTORE] = catalogue * img_gb * p_std
    arc_parts = {
        "standard": (catalogue - archived) * img_gb * p_std,
        "archive": archived * img_gb * p_arc,
        "transition": moved / 1000.0 * p_tr,
        "retrieval": np.where(archived > 0, requests * inputs.archived_request_fraction, 0.0) * img_gb * p_ret,
    }
    parts[ARCHIVE] = arc_parts
    monthly[ARCHIVE] = sum(arc_parts.values())
    storage = catalogue * lat_gb * p_std
    decodes = requests * inputs.decode_trigger_rate
    for g in inputs.gpus:
        hours = decodes * g.decode_ms / MS_PER_HOUR / inputs.gpu_utilization
        gpu = hours * _price(g.usd_per_hour, inputs.gpu_price_decline_per_year, months)
        parts[latent_name(g)] = {"storage": storage, "gpu": gpu}
        monthly[latent_name(g)] = storage + gpu
    if inputs.tier_bytes is not None:
        shares = np.asarray(inputs.tier_demoted_by_age, dtype=float)
        by_age = np.full(months, shares[-1])
        by_age[: min(months, len(shares))] = shares[:months]
        at_tier = np.convolve(births, by_age)[:months]  # images at the tier at the end of each month
        tier_storage = storage - at_tier * (inputs.latent_bytes - inputs.tier_bytes) / GB * p_std
        for g in inputs.gpus:
            gpu = parts[latent_name(g)]["gpu"]
            parts[tier_name(g)] = {"storage": tier_storage, "gpu": gpu}
            monthly[tier_name(g)] = tier_storage + gpu
    cumulative = {name: np.cumsum(v) for name, v in monthly.items()}
    return CostSeries(months, catalogue, requests, monthly, cumulative, parts)


def months_until(inputs: CostInputs, year: float) -> int:
    """Months from the start of the trace to the end of calendar ``year`` (e.g. 2050 -> end of December 2050)."""
    _check_number("year", year)
    after = round((float(year) + 1.0 - inputs.trace_end_year) * 12.0)
    months = inputs.trace_months + after
    if months < 1:
        raise ValueError(f"Expected a year at or after the trace start. Got {year!r} instead.")
    return months


def headline_ratios(inputs: CostInputs = PUBLISHED, *, horizon_year: float = 2050) -> dict[str, Any]:
    """Cumulative cost of every scenario and its ratio to ImgStore, over the trace period and to ``horizon_year``.

    Returns
    -------
    dict
        ``{"trace_period": {...}, "horizon": {...}}``; each has ``months``, ``total_usd`` (scenario -> dollars),
        ``ratio_to_imgstore`` and ``saving_vs_imgstore`` (1 - ratio), ``saving_vs_archive`` (against ImgStore with
        archive tiering), and ``gpu_share`` (GPU part of each latent-first total).
    """
    out: dict[str, Any] = {}
    for key, months in (("trace_period", inputs.trace_months), ("horizon", months_until(inputs, horizon_year))):
        s = cost_series(inputs, months)
        totals = {name: s.total(name) for name in s.scenarios}
        base, arc = totals[IMGSTORE], totals[ARCHIVE]
        entry: dict[str, Any] = {
            "months": months,
            "total_usd": totals,
            "ratio_to_imgstore": {n: v / base for n, v in totals.items()},
            "saving_vs_imgstore": {n: 1 - v / base for n, v in totals.items()},
            "saving_vs_archive": {n: 1 - v / arc for n, v in totals.items()},
            "gpu_share": {latent_name(g): float(s.parts[latent_name(g)]["gpu"].sum()) / totals[latent_name(g)]
                          for g in inputs.gpus},
        }
        if key == "horizon":
            entry["year"] = horizon_year
        out[key] = entry
    return out


def implied_decode_trigger_rate(inputs: CostInputs, gpu: str, saving: float, months: int | None = None) -> float:
    """Decode-trigger rate at which latent-first on ``gpu`` saves ``saving`` (fraction) of ImgStore's cost.

    Costs are linear in the rate, so this is exact. The answer may fall outside [0, 1] (no rate reaches ``saving``).
    """
    a = cost_series(inputs.replace(decode_trigger_rate=0.0), months)
    b = cost_series(inputs.replace(decode_trigger_rate=1.0), months)
    name = latent_name(inputs.gpu(gpu))
    target = (1 - saving) * a.total(IMGSTORE)
    lo, hi = a.total(name), b.total(name)
    if hi == lo:
        return math.nan
    return (target - lo) / (hi - lo)


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
            "decode_trigger_rate": [0.2, 0.25, 0.415, 0.664, 1.0],
            "gpu_usd_per_hour": [g.usd_per_hour * f for f in (0.5, 1.0, 2.0, 4.0)],
            "storage_usd_per_gb_month": [0.01, 0.015, 0.023],
            "gpu_price_decline_per_year": [0.0, 0.1, 0.2],
            "storage_price_decline_per_year": [0.0, 0.05, 0.1],
            "catalogue_growth_per_year": [0.0, 0.2],
            "request_growth_per_year": [0.0, 0.2],
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
