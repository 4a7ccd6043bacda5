"""The interface every latentzarr cache implements, shared by live workers and the trace simulator.

Two ways in, one state:

* **Live (a worker's task threads).** ``get_image(key)`` counts one request and returns the cached encoded
  image or ``None``; on ``None`` the worker calls ``get_latent(obj_id)`` (cached latent or ``None``), on ``None``
  fetches the latent from the store and offers it with ``put_latent``; after decoding it offers the image with
  ``offer_image``, and the cache decides whether to keep it (promotion). Observed latencies go to
  ``record_decode_ms`` / ``record_fetch_ms``. Values are opaque objects; sizes are given in bytes.
* **Simulation.** ``access(obj_id, image_size, latent_size)`` runs that whole cascade for one request without
  values and returns :data:`IMAGE_HIT`, :data:`LATENT_HIT` or :data:`MISS`; ``replay(ids, image_sizes,
  latent_sizes)`` does the same for a whole trace in one locked, optimised loop with identical results.

Every public method takes the cache's one lock, so a cache may be shared by threads.
"""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latentzarr.cache.costs import DEFAULT_DECODE_MS, DEFAULT_FETCH_MS, CostModel
from latentzarr.errors import ObjectTooLargeError

__all__ = ["IMAGE_HIT", "LATENT_HIT", "MISS", "Cache", "ReplayResult"]

IMAGE_HIT = 0
"""Outcome of a request served from the image tier."""
LATENT_HIT = 1
"""Outcome of a request served from the latent tier (one decode)."""
MISS = 2
"""Outcome of a request served from the object store (one fetch, one decode)."""

_COUNTERS = (
    "requests",
    "image_hits",
    "image_tail_hits",
    "latent_hits",
    "latent_tail_hits",
    "misses",
    "promotions",
    "promotions_blocked",
    "demotions",
    "image_inserts",
    "latent_inserts",
    "image_evictions",
    "latent_evictions",
    "rejected",
    "tuner_steps",
)


@dataclass
class ReplayResult:
    """Outcome of :meth:`Cache.replay`: counts, the alpha trajectory and the time the loop took.

    ``requests == image_hits + latent_hits + misses``. ``alpha_trajectory`` holds ``(requests_seen, alpha)``
    pairs: the starting alpha at 0, then the value after each tuning window. ``seconds`` is the wall time of the
    replay (including the conversion of numpy arrays to lists, none when lists are given), ``cpu_seconds`` the CPU
    time of the replaying thread over the same span (one core; unaffected by other processes on the machine).
    """

    requests: int = 0
    image_hits: int = 0
    image_tail_hits: int = 0
    latent_hits: int = 0
    latent_tail_hits: int = 0
    misses: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    alpha_trajectory: list[tuple[int, float]] = field(default_factory=list)

    def mean_latency_ms(self, cost: CostModel | None = None) -> float:
        """Mean latency per request in ms under ``cost`` (default: :class:`CostModel`)."""
        return (cost or CostModel()).mean_ms(self.image_hits, self.latent_hits, self.misses)

    @property
    def requests_per_second(self) -> float:
        """Replay speed on one core: requests per CPU second of the replaying thread."""
        return self.requests / self.cpu_seconds if self.cpu_seconds > 0 else math.inf

    @property
    def wall_requests_per_second(self) -> float:
        """Replay speed in requests per wall-clock second (lower when the machine is shared)."""
        return self.requests / self.seconds if self.seconds > 0 else math.inf

    def as_dict(self, cost: CostModel | None = None) -> dict[str, Any]:
        """A JSON-ready summary, with fractions of requests and the mean latency under ``cost``."""
        n = max(self.requests, 1)
        return {
            "requests": self.requests,
            "mean_latency_ms": self.mean_latency_ms(cost),
            "image_hit_ratio": self.image_hits / n,
            "latent_hit_ratio": self.latent_hits / n,
            "miss_ratio": self.misses / n,
            "image_hits": self.image_hits,
            "image_tail_hits": self.image_tail_hits,
            "latent_hits": self.latent_hits,
            "latent_tail_hits": self.latent_tail_hits,
            "misses": self.misses,
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
            "requests_per_second": self.requests_per_second,
            "wall_requests_per_second": self.wall_requests_per_second,
        }


def check_capacity(capacity: object) -> int:
    """Return ``capacity`` as an int number of bytes >= 0, or raise ``ValueError``."""
    if isinstance(capacity, bool) or not isinstance(capacity, int | np.integer):
        if isinstance(capacity, float) and capacity.is_integer():
            capacity = int(capacity)
        else:
            raise ValueError(f"Expected the capacity as a whole number of bytes >= 0. Got {capacity!r} instead.")
    if capacity < 0:
        raise ValueError(f"Expected the capacity as a whole number of bytes >= 0. Got {capacity!r} instead.")
    return int(capacity)


def check_fraction(name: str, value: object, *, upper_open: bool = False) -> float:
    """Return ``value`` as a float in [0, 1] (or [0, 1) with ``upper_open``), or raise ``ValueError``."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        v = math.nan
    ok = 0.0 <= v < 1.0 if upper_open else 0.0 <= v <= 1.0
    if not ok:
        interval = "[0, 1)" if upper_open else "[0, 1]"
        raise ValueError(f"Expected {name} in {interval}. Got {value!r} instead.")
    return v


def check_size(size: object) -> int:
    """Return an object size as an int number of bytes >= 0, or raise ``ValueError``."""
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 0:
        raise ValueError(f"Expected an object size as a whole number of bytes >= 0. Got {size!r} instead.")
    return int(size)


def as_list(values: Sequence[Any] | np.ndarray, n: int, what: str) -> list[Any]:
    """A plain list of ``n`` Python scalars (fast to iterate), or ``ValueError`` if the length differs."""
    # a list is used as is (read only, no copy)
    out = values if isinstance(values, list) else values.tolist() if isinstance(values, np.ndarray) else list(values)
    if len(out) != n:
        raise ValueError(f"Expected {n} {what} (one per request). Got {len(out)} instead.")
    return out


class Cache(ABC):
    """Base class: the lock, the event counters, latency EWMAs and the shared replay driver.

    Parameters
    ----------
    capacity
        Byte budget of the whole cache.
    decode_ms, fetch_ms
        Starting values (priors) of the EWMAs of observed decode and store-fetch latency, in ms. The first
        observation of each replaces its prior (a CPU decode of seconds must not take dozens of reads to show);
        later ones are averaged in with weight ``ewma``.
    ewma
        Weight of a new observation in those EWMAs, in (0, 1].
    """

    name = "cache"

    def __init__(
        self,
        capacity: int,
        *,
        decode_ms: float = DEFAULT_DECODE_MS,
        fetch_ms: float = DEFAULT_FETCH_MS,
        ewma: float = 0.05,
    ) -> None:
        self._capacity = check_capacity(capacity)
        self._decode_ms = self._check_ms("decode_ms", decode_ms)
        self._fetch_ms = self._check_ms("fetch_ms", fetch_ms)
        ewma = float(ewma)
        if not 0.0 < ewma <= 1.0:
            raise ValueError(f"Expected ewma (weight of a new observation) in (0, 1]. Got {ewma!r} instead.")
        self._ewma = ewma
        self._observed = {"decode": False, "fetch": False}  # whether the prior was replaced by an observation
        self._lock = threading.Lock()
        self._c = dict.fromkeys(_COUNTERS, 0)

    # ---------------------------------------------------------------- properties
    @property
    def capacity(self) -> int:
        """Byte budget of the whole cache."""
        return self._capacity

    @property
    def decode_ms(self) -> float:
        """EWMA of observed decode latency, in ms."""
        return self._decode_ms

    @property
    def fetch_ms(self) -> float:
        """EWMA of observed store-fetch latency, in ms."""
        return self._fetch_ms

    @property
    def alpha(self) -> float:
        """Fraction of the byte budget given to the image tier, in [0, 1]."""
        with self._lock:
            return self._alpha()

    @property
    def tier_bytes(self) -> tuple[int, int]:
        """Bytes held by (image tier, latent tier)."""
        with self._lock:
            return self._tier_bytes()

    # ---------------------------------------------------------------- observations
    def record_decode_ms(self, ms: float) -> None:
        """Feed one observed decode latency (ms) into the decode EWMA (the first one replaces the prior)."""
        ms = self._check_ms("decode_ms", ms)
        with self._lock:
            weight = self._ewma if self._observed["decode"] else 1.0
            self._observed["decode"] = True
            self._decode_ms += weight * (ms - self._decode_ms)

    def record_fetch_ms(self, ms: float) -> None:
        """Feed one observed store-fetch latency (ms) into the fetch EWMA (the first one replaces the prior)."""
        ms = self._check_ms("fetch_ms", ms)
        with self._lock:
            weight = self._ewma if self._observed["fetch"] else 1.0
            self._observed["fetch"] = True
            self._fetch_ms += weight * (ms - self._fetch_ms)

    # ---------------------------------------------------------------- live path
    @abstractmethod
    def get_image(self, key: Hashable) -> Any | None:
        """Count one request; return the cached image for ``key`` or ``None`` (an image-tier miss)."""

    @abstractmethod
    def peek_image(self, key: Hashable) -> Any | None:
        """The cached image for ``key`` or ``None``, without counting a request or refreshing recency."""

    @abstractmethod
    def peek_latent(self, obj_id: Hashable) -> Any | None:
        """The cached latent of ``obj_id`` or ``None``, without counting or refreshing anything."""

    @abstractmethod
    def get_latent(self, obj_id: Hashable) -> Any | None:
        """After an image miss: return the cached latent of ``obj_id`` (a latent hit) or ``None`` (a miss)."""

    @abstractmethod
    def put_latent(self, obj_id: Hashable, value: Any, size: int) -> bool:
        """Offer a latent just fetched from the store; return whether it was cached."""

    @abstractmethod
    def offer_image(self, key: Hashable, value: Any, size: int, *, latent_id: Hashable | None = None) -> bool:
        """Offer a just-decoded image of latent ``latent_id`` (default ``key``); return whether it was cached."""

    # ---------------------------------------------------------------- simulation
    def access(self, obj_id: Hashable, image_size: int, latent_size: int) -> int:
        """Simulate one request for ``obj_id`` (cascade, admission, promotion, tuning) without values.

        Returns :data:`IMAGE_HIT`, :data:`LATENT_HIT` or :data:`MISS`. Objects too large for the cache are
        never admitted (counted as ``rejected``).
        """
        with self._lock:
            return self._access(obj_id, int(image_size), int(latent_size))

    def replay(
        self,
        ids: Sequence[Hashable] | np.ndarray,
        image_sizes: Sequence[int] | np.ndarray,
        latent_sizes: Sequence[int] | np.ndarray,
    ) -> ReplayResult:
        """Run :meth:`access` for every request of a trace, in one locked, optimised loop.

        Parameters
        ----------
        ids
            Object id of each request (hashable; numpy arrays are converted to Python scalars).
        image_sizes, latent_sizes
            Size in bytes of the requested object's image and latent, one per request.

        Returns
        -------
        ReplayResult
            Counts for this replay only (``stats()`` keeps the cumulative ones); ``seconds`` covers the loop.
        """
        n = len(ids)
        t0, c0 = time.perf_counter(), time.thread_time()
        id_list = as_list(ids, n, "ids")
        isz = as_list(image_sizes, n, "image sizes")
        lsz = as_list(latent_sizes, n, "latent sizes")
        with self._lock:
            before = dict(self._c)
            trajectory = self._replay(id_list, isz, lsz)
            after = self._c
        seconds, cpu_seconds = time.perf_counter() - t0, time.thread_time() - c0
        return ReplayResult(
            requests=after["requests"] - before["requests"],
            image_hits=after["image_hits"] - before["image_hits"],
            image_tail_hits=after["image_tail_hits"] - before["image_tail_hits"],
            latent_hits=after["latent_hits"] - before["latent_hits"],
            latent_tail_hits=after["latent_tail_hits"] - before["latent_tail_hits"],
            misses=after["misses"] - before["misses"],
            seconds=seconds,
            cpu_seconds=cpu_seconds,
            alpha_trajectory=trajectory,
        )

    @abstractmethod
    def _access(self, obj_id: Hashable, image_size: int, latent_size: int) -> int: ...

    @abstractmethod
    def _replay(self, ids: list[Hashable], isz: list[int], lsz: list[int]) -> list[tuple[int, float]]: ...

    # ---------------------------------------------------------------- inspection
    def stats(self) -> dict[str, Any]:
        """Every counter (cumulative since construction or :meth:`reset_stats`) plus the current state."""
        with self._lock:
            out: dict[str, Any] = dict(self._c)
            image_bytes, latent_bytes = self._tier_bytes()
            out.update(
                name=self.name,
                capacity=self._capacity,
                alpha=self._alpha(),
                image_bytes=image_bytes,
                latent_bytes=latent_bytes,
                decode_ms=self._decode_ms,
                fetch_ms=self._fetch_ms,
            )
            out.update(self._extra_stats())
            return out

    def reset_stats(self) -> None:
        """Zero the cumulative counters (cached contents and alpha stay)."""
        with self._lock:
            self._c = dict.fromkeys(_COUNTERS, 0)
            self._after_reset_stats()

    def _after_reset_stats(self) -> None:  # noqa: B027 - optional hook
        """Hook for subclasses that keep window snapshots of the counters."""

    def _extra_stats(self) -> dict[str, Any]:
        return {}

    @abstractmethod
    def _alpha(self) -> float: ...

    @abstractmethod
    def _tier_bytes(self) -> tuple[int, int]: ...

    # ---------------------------------------------------------------- helpers
    @staticmethod
    def _check_ms(name: str, value: float) -> float:
        v = float(value)
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"Expected {name} as a finite number of ms >= 0. Got {value!r} instead.")
        return v

    def _check_fits(self, size: int, what: str) -> int:
        size = check_size(size)
        if size > self._capacity:
            raise ObjectTooLargeError(
                f"Expected {what} of at most {self._capacity} bytes (the whole cache). Got {size} bytes instead; "
                "give the cache a larger byte budget or do not cache objects this large."
            )
        return size

    def __repr__(self) -> str:
        image_bytes, latent_bytes = self.tier_bytes
        return (
            f"{type(self).__name__}(capacity={self._capacity}, alpha={self.alpha:.3f}, "
            f"image_bytes={image_bytes}, latent_bytes={latent_bytes})"
        )
