"""DualFormatCache: decoded images and compressed latents in one byte budget, with an online-tuned split.

Algorithm (LatentBox, 2026; defaults in brackets, all settable):

* One byte budget C. The image tier gets ``alpha * C`` bytes, the latent tier the rest [alpha starts at 0.5].
* Lookup cascades image tier -> latent tier -> object store. An object (key) lives in at most one tier.
* A miss admits the fetched latent to the latent tier with a hit counter of 0. If the latent tier cannot hold it
  (alpha = 1, image-only) the decoded image goes to the image tier instead.
* A latent hit bumps the counter. **Promotion is priced** [``promotion="cost"``]: the decoded image is inserted
  into the image tier, and the latent moves with it, once the decodes this object has cost so far (the miss's
  and one per latent hit: ``(h + 1) * d``) reach the price of holding its image, ``(P + 1/2) * k * f * I / L``,
  where ``I / L`` is the object's image bytes per latent byte (how many latents the image's extra bytes would
  hold), ``f`` the fetch cost and ``k = 32.6 / 150 * 0.30 / 1.45`` the decode / fetch and latent / image ratios
  of the paper's costs. So with the paper's costs (d = 32.6 ms, f = 150 ms, I / L = 1.45 / 0.30) promotion
  happens at the ``promote_after`` (P) [3]-th latent hit, the paper's optimum; a decode that costs much more
  (seconds, on a CPU) promotes at the miss itself, so the second read is an image hit; cheaper decodes or
  slower fetches keep more latents. ``d`` and ``f`` are the EWMAs of the observed costs (the first
  observation replaces the prior). While the latent tier shows no tail hit for ``NO_MARGIN_HITS`` [100]
  latent hits (it holds all the reuse it sees: its bytes are worth nothing at the margin) the price is 0 and
  every decoded image is kept at once, as in an image-only cache (adaptive caches only). ``promotion="count"``
  promotes after exactly P latent hits whatever the costs.
* The promoted image *carries its latent* when a demoted latent is worth its bytes, f / (d + f) >= L / I (a
  latent hit instead of a miss saves f of d + f, for L / I of the image's bytes; always with
  ``promotion="count"``): the entry holds both formats and its size is the image's plus the latent's. An image
  evicted from the image tier is *demoted*: its latent goes back to the latent tier (hit counter 0), so an
  object cools from image to latent to store. Images without a latent (image-only at alpha = 1, or promoted
  when d >> f, e.g. a CPU decode of seconds) leave the cache when evicted.
* Each tier is an LRU whose least recently used ``tail`` [0.1] fraction of bytes, but at least one ``step`` of the
  whole budget, is a tail segment; a tail hit is a hit that a tier smaller by that much would have missed (see
  :mod:`latentzarr.cache.tiers`). The floor matters for a small tier: a tail smaller than the step the tuner
  takes (or than one object) shows no hits, so the tier looks worthless and is shrunk step after step.
* Marginal-hit tuner, every ``window`` (W) requests [200,000]: m_img = image-tier miss ratio, m_lat = latent-tier
  miss ratio among image misses, d and f = EWMAs of observed decode and fetch ms; expected extra cost per request
  m_img * (d + m_lat * f) (reported in ``stats()["last_window"]``). A tail hit is a hit that a tier smaller by
  its tail bytes would have lost. A lost image hit becomes a latent hit (d) when the demoted latent is still
  cached at the next request, else a miss (d + f): d + m_lat * f (d + f when there is no latent tier to demote
  to); a lost latent hit costs f. So one byte more saves (image tail hits / image tail bytes) * (d + m_lat * f)
  in the image tier and (latent tail hits / latent tail bytes) * f in the latent tier. Alpha
  moves ``step`` [0.01] toward the larger saving, one more ``step`` for each window in a row that moves the
  same way, up to ``MAX_MOVE`` [0.05] (clamped to [alpha_min, alpha_max] = [0, 1]); both tiers are resized,
  overflow is evicted and the window counters reset. A window with fewer than ``MIN_TAIL_HITS`` [4] tail hits
  in both tiers together is extended (up to 10 W) instead: a decision on one or two tail hits follows noise. A
  tier that cannot show its value (no room at all, or an image tier left empty while promotions are due that it
  is too small to take) gets one step (exploration) rather than the tuner sticking at alpha = 0 or 1.
* Fixed modes: ``adaptive=False`` keeps alpha; :meth:`DualFormatCache.image_only` (alpha = 1) and
  :meth:`DualFormatCache.latent_only` (alpha = 0) are the single-format baselines.

The same instance serves a worker's task threads (values are real bytes; one lock) and the trace simulator
(:meth:`~latentzarr.cache.base.Cache.replay`, an inlined twin of :meth:`~latentzarr.cache.base.Cache.access`
that gives identical results, checked by the tests).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from typing import Any

from latentzarr.cache.base import (
    IMAGE_HIT,
    LATENT_HIT,
    MISS,
    Cache,
    check_fraction,
)
from latentzarr.cache.costs import DEFAULT_DECODE_MS, DEFAULT_FETCH_MS, DEFAULT_IMAGE_SIZE, DEFAULT_LATENT_SIZE
from latentzarr.cache.tiers import NOT_FOUND, TAIL_HIT, SegmentedLRU

__all__ = [
    "DEFAULT_PROMOTE_AFTER",
    "DEFAULT_PROMOTION",
    "DEFAULT_STEP",
    "DEFAULT_TAIL",
    "DEFAULT_TOLERANCE",
    "DEFAULT_WINDOW",
    "PROMOTIONS",
    "PROMOTION_PRICE_RATIO",
    "DualFormatCache",
]

DEFAULT_STEP = 0.01
"""Change of alpha per tuning window (paper's sensitivity study)."""
DEFAULT_WINDOW = 200_000
"""Requests per tuning window for traces of millions of requests; scale down for short traces."""
DEFAULT_TAIL = 0.1
"""Fraction of each tier's bytes forming its tail segment."""
DEFAULT_PROMOTE_AFTER = 3
"""Latent hits before promotion at the paper's costs (its sensitivity optimum; see BENCHMARKS.md)."""
DEFAULT_PROMOTION = "cost"
"""Promotion rule: ``"cost"`` (priced by the measured decode / fetch costs and sizes) or ``"count"`` (P hits)."""
PROMOTIONS = ("cost", "count")
"""The promotion rules."""
PROMOTION_PRICE_RATIO = (DEFAULT_DECODE_MS / DEFAULT_FETCH_MS) * (DEFAULT_LATENT_SIZE / DEFAULT_IMAGE_SIZE)
"""k in the promotion price ``(P + 1/2) * k * f * I / L``: calibrates P at the paper's costs and sizes."""

NO_MARGIN_HITS = 100
"""Latent hits without a latent tail hit (counted over whole tuning windows) that show the latent tier holds all
the reuse it sees: its bytes are worth nothing at the margin, so an image's extra bytes cost nothing and the
adaptive cache (``promotion="cost"``) keeps every decoded image at once, as an image-only cache would, until a
latent tail hit shows up again (a tier whose tail gets even 3% of its hits shows one in 100 with 95% chance)."""

MIN_TAIL_HITS = 4
"""Tail hits (both tiers) a tuning window needs before alpha moves; a window with fewer is extended."""

MAX_MOVE = 0.05
"""Largest change of alpha in one window (or ``step`` if larger): the step grows by ``step`` per window that
moves the same way as the one before, up to this."""

DEFAULT_TOLERANCE = 0.0
"""Relative margin by which one tier's marginal saving must exceed the other's before alpha moves."""

_TRAJECTORY_KEEP = 100_000  # (requests, alpha) points kept by a long-lived cache


class DualFormatCache(Cache):
    """An image tier and a latent tier sharing one byte budget, split by an online-tuned alpha.

    Parameters
    ----------
    capacity
        Byte budget of both tiers together.
    alpha
        Starting fraction of ``capacity`` for the image tier, in [0, 1].
    adaptive
        Whether the marginal-hit tuner moves alpha. ``False`` gives a static split.
    step
        Change of alpha per window, in (0, 1].
    window
        Requests per tuning window (W >= 1).
    promote_after
        Latent hits (P >= 1) before promotion to the image tier: always (``promotion="count"``), or at the
        paper's costs and sizes (``promotion="cost"``, which scales it by the measured costs; see above).
    promotion
        ``"cost"`` or ``"count"``.
    tail
        Fraction of each tier that forms its tail segment, in (0, 1).
    alpha_min, alpha_max
        Bounds of the tuned alpha, 0 <= alpha_min <= alpha_max <= 1.
    tolerance
        Alpha moves only when one saving exceeds the other by more than this relative margin (>= 0); a small
        dead band stops the split from wandering (and evicting on every resize) near the optimum.
    decode_ms, fetch_ms, ewma
        Starting decode / fetch latency estimates in ms and the EWMA weight of new observations.

    Notes
    -----
    Image keys may differ from latent ids (a worker keys images by ``(id, rendition)``): pass ``latent_id`` to
    :meth:`offer_image`. The one-tier rule then holds per key. Values must not be ``None``.
    """

    name = "dual"

    def __init__(
        self,
        capacity: int,
        *,
        alpha: float = 0.5,
        adaptive: bool = True,
        step: float = DEFAULT_STEP,
        window: int = DEFAULT_WINDOW,
        promote_after: int = DEFAULT_PROMOTE_AFTER,
        promotion: str = DEFAULT_PROMOTION,
        tail: float = DEFAULT_TAIL,
        alpha_min: float = 0.0,
        alpha_max: float = 1.0,
        tolerance: float = DEFAULT_TOLERANCE,
        decode_ms: float = DEFAULT_DECODE_MS,
        fetch_ms: float = DEFAULT_FETCH_MS,
        ewma: float = 0.05,
    ) -> None:
        super().__init__(capacity, decode_ms=decode_ms, fetch_ms=fetch_ms, ewma=ewma)
        alpha = check_fraction("alpha", alpha)
        self._step = check_fraction("step", step)
        if self._step == 0.0:
            raise ValueError(f"Expected step in (0, 1]. Got {step!r} instead.")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"Expected window (W, requests per tuning window) as an int >= 1. Got {window!r} instead.")
        if isinstance(promote_after, bool) or not isinstance(promote_after, int) or promote_after < 1:
            raise ValueError(
                f"Expected promote_after (P, latent hits before promotion) as an int >= 1. Got {promote_after!r} "
                "instead."
            )
        if promotion not in PROMOTIONS:
            raise ValueError(f"Expected promotion in {PROMOTIONS}. Got {promotion!r} instead.")
        self._promotion = promotion
        self._tail = check_fraction("tail", tail, upper_open=True)
        if self._tail == 0.0:
            raise ValueError(f"Expected tail in (0, 1): a tier needs a tail segment to measure. Got {tail!r} instead.")
        self._alpha_min = check_fraction("alpha_min", alpha_min)
        self._alpha_max = check_fraction("alpha_max", alpha_max)
        if self._alpha_min > self._alpha_max:
            raise ValueError(f"Expected alpha_min <= alpha_max. Got {alpha_min!r} > {alpha_max!r} instead.")
        tolerance = float(tolerance)
        if not tolerance >= 0.0 or tolerance == float("inf"):
            raise ValueError(f"Expected tolerance as a finite number >= 0. Got {tolerance!r} instead.")
        self._tolerance = tolerance
        self._window = window
        self._promote_after = promote_after
        self._adaptive = bool(adaptive)
        if self._adaptive:
            alpha = min(max(alpha, self._alpha_min), self._alpha_max)
        self._alpha_v = alpha
        image_cap = self._image_capacity(alpha)
        tail_min = round(self._step * self._capacity)  # a tier's tail covers at least one tuning step
        self._img = SegmentedLRU(image_cap, self._tail, tail_min=tail_min)
        self._lat = SegmentedLRU(self._capacity - image_cap, self._tail, tail_min=tail_min)
        self._ivals: dict[Hashable, Any] = {}
        self._lvals: dict[Hashable, Any] = {}
        self._lhits: dict[Hashable, int] = {}  # latent hits so far, only for cached latents with >= 1 hit
        self._carried: dict[Hashable, tuple[Hashable, Any, int]] = {}  # image key -> (latent id, value, size)
        self._w_req = 0  # requests in the current window
        self._direction, self._run = 0, 0  # the tuner's last move (+1 image, -1 latent) and its streak
        self._quiet_latent_hits = 0  # latent hits since the last window with a latent tail hit
        self._no_margin = False  # _quiet_latent_hits >= NO_MARGIN_HITS (see _end_window)
        self._last_window: dict[str, float] = {}
        self._w0 = dict(self._c)  # counters at the start of the window
        self._trajectory: deque[tuple[int, float]] = deque([(0, alpha)], maxlen=_TRAJECTORY_KEEP)

    # ---------------------------------------------------------------- fixed modes
    @classmethod
    def image_only(cls, capacity: int, **kwargs: Any) -> DualFormatCache:
        """A cache of decoded images only (alpha = 1, not tuned): misses admit the image directly."""
        return cls(capacity, alpha=1.0, adaptive=False, **kwargs)

    @classmethod
    def latent_only(cls, capacity: int, **kwargs: Any) -> DualFormatCache:
        """A cache of compressed latents only (alpha = 0, not tuned): every hit costs a decode."""
        return cls(capacity, alpha=0.0, adaptive=False, **kwargs)

    @classmethod
    def static(cls, capacity: int, alpha: float, **kwargs: Any) -> DualFormatCache:
        """A dual-format cache with a fixed split ``alpha``."""
        return cls(capacity, alpha=alpha, adaptive=False, **kwargs)

    # ---------------------------------------------------------------- parameters
    @property
    def adaptive(self) -> bool:
        """Whether the tuner moves alpha."""
        return self._adaptive

    @property
    def window(self) -> int:
        """Requests per tuning window (W)."""
        return self._window

    @property
    def promote_after(self) -> int:
        """Latent hits before promotion (P)."""
        return self._promote_after

    @property
    def promotion(self) -> str:
        """The promotion rule, ``"cost"`` or ``"count"``."""
        return self._promotion

    def promotion_due(self, latent_hits: int, image_size: int, latent_size: int) -> bool:
        """Whether an object with ``latent_hits`` latent hits so far (this one included; 0 at its miss) is
        promoted now, given its image and latent sizes in bytes and the current cost estimates."""
        with self._lock:
            return self._due(latent_hits, image_size, latent_size)

    def _due(self, h: int, image_size: int, latent_size: int) -> bool:
        if self._promotion == "count":
            return h >= self._promote_after
        # decodes paid so far, (h + 1) * d, against the price of the image's extra bytes
        return (h + 1) * self._decode_ms * latent_size >= self._promotion_price() * image_size

    def _carry(self, image_size: int, latent_size: int) -> bool:
        """Whether a promoted image keeps its latent (to demote it when evicted): a demoted latent turns a miss
        (d + f) into a latent hit (d), saving f / (d + f) of it, for L / I of the image's bytes."""
        if self._promotion == "count":
            return True
        f = self._fetch_ms
        return f * image_size >= (self._decode_ms + f) * latent_size

    def _promotion_price(self) -> float:
        """The price of holding an image, in ms per (image byte / latent byte); 0 when no byte is scarce."""
        if self._no_margin:
            return 0.0
        return (self._promote_after + 0.5) * PROMOTION_PRICE_RATIO * self._fetch_ms

    @property
    def step(self) -> float:
        """Change of alpha per window."""
        return self._step

    @property
    def tail(self) -> float:
        """Fraction of each tier forming its tail segment."""
        return self._tail

    @property
    def tier_capacity(self) -> tuple[int, int]:
        """Capacity in bytes of (image tier, latent tier); they add up to ``capacity``."""
        with self._lock:
            return self._img.capacity, self._lat.capacity

    @property
    def alpha_trajectory(self) -> list[tuple[int, float]]:
        """``(requests seen, alpha)`` at the start and after every window (the latest 100,000 points)."""
        with self._lock:
            return list(self._trajectory)

    def where(self, key: Hashable) -> str | None:
        """``"image"``, ``"latent"`` or ``None``: the tier holding ``key`` (no counters change)."""
        with self._lock:
            if key in self._img:
                return "image"
            if key in self._lat:
                return "latent"
            return None

    def peek_image(self, key: Hashable) -> Any | None:
        """The cached image for ``key`` or ``None``, without counting a request or refreshing its recency."""
        with self._lock:
            return self._ivals.get(key) if key in self._img else None

    def peek_latent(self, obj_id: Hashable) -> Any | None:
        """The cached latent of ``obj_id`` or ``None``, without counting or refreshing anything."""
        with self._lock:
            return self._lvals.get(obj_id) if obj_id in self._lat else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._img) + len(self._lat)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._img or key in self._lat

    def clear(self) -> None:
        """Drop every cached object (counters, alpha and EWMAs stay)."""
        with self._lock:
            self._img.clear()
            self._lat.clear()
            self._ivals.clear()
            self._lvals.clear()
            self._lhits.clear()
            self._carried.clear()

    def image_keys(self) -> list[Hashable]:
        """Keys of the images held with their values (the live path)."""
        with self._lock:
            return list(self._ivals)

    def discard(self, keys: Iterable[Hashable]) -> int:
        """Drop ``keys`` (image keys or latent ids) from whichever tier holds them, e.g. because the stored object
        changed; an image's carried latent goes with it. Counters stay. Returns how many entries were dropped."""
        dropped = 0
        with self._lock:
            for key in keys:
                if key in self._img:
                    self._img.pop(key)
                    self._ivals.pop(key, None)
                    self._carried.pop(key, None)
                    dropped += 1
                if key in self._lat:
                    self._drop_latent(key)
                    dropped += 1
        return dropped

    # ---------------------------------------------------------------- live path
    def get_image(self, key: Hashable) -> Any | None:
        with self._lock:
            self._tick()
            c = self._c
            c["requests"] += 1
            found = self._img.touch(key)
            if found == NOT_FOUND:
                return None
            c["image_hits"] += 1
            if found == TAIL_HIT:
                c["image_tail_hits"] += 1
            return self._ivals.get(key)

    def get_latent(self, obj_id: Hashable) -> Any | None:
        with self._lock:
            c = self._c
            found = self._lat.touch(obj_id)
            if found == NOT_FOUND:
                c["misses"] += 1
                return None
            c["latent_hits"] += 1
            if found == TAIL_HIT:
                c["latent_tail_hits"] += 1
            self._lhits[obj_id] = self._lhits.get(obj_id, 0) + 1
            return self._lvals.get(obj_id)

    def put_latent(self, obj_id: Hashable, value: Any, size: int) -> bool:
        """Offer a latent fetched from the store; it enters the latent tier if that tier can hold it.

        Raises :class:`~latentzarr.errors.ObjectTooLargeError` if ``size`` exceeds the whole byte budget.
        Returns ``False`` when the latent tier is too small at the current alpha (the image will then be taken
        by :meth:`offer_image` if it fits) or when ``obj_id`` is cached as an image.
        """
        size = self._check_fits(size, "a latent")
        _check_value(value)
        with self._lock:
            lat = self._lat
            if obj_id in lat:
                lat.insert(obj_id, size)  # refresh; keeps its hit counter
                self._lvals[obj_id] = value
                return True
            if obj_id in self._img or not 0 < size <= lat.capacity:
                return False
            self._insert_latent(obj_id, size)
            self._lvals[obj_id] = value
            return True

    def offer_image(self, key: Hashable, value: Any, size: int, *, latent_id: Hashable | None = None) -> bool:
        """Offer a just-decoded image; the cache keeps it if this decode is a promotion.

        It is kept when the cached latent ``latent_id`` (default ``key``) is due for promotion (see
        :meth:`promotion_due`: after ``promote_after`` latent hits at the paper's costs, at once after the miss
        when decodes are expensive; the latent then moves with the image), or when that latent is not cached at
        all (e.g. alpha = 1), provided the image fits the image tier. Record the decode's latency with
        :meth:`record_decode_ms` first: promotion is priced with it. Raises
        :class:`~latentzarr.errors.ObjectTooLargeError` if ``size`` exceeds the
        whole byte budget.
        """
        size = self._check_fits(size, "an image")
        _check_value(value)
        lid = key if latent_id is None else latent_id
        with self._lock:
            img = self._img
            if key in img:
                img.insert(key, size)
                self._ivals[key] = value
                return True
            promoted, carried = False, None
            if lid in self._lat:
                lsize = self._lat.size_of(lid)
                if not self._due(self._lhits.get(lid, 0), size, lsize):
                    return False
                promoted = True
                if self._carry(size, lsize):
                    carried = (lid, self._lvals.get(lid), lsize)
                    size += lsize
            if not 0 < size <= img.capacity:
                self._c["promotions_blocked" if promoted else "rejected"] += 1
                return False
            if promoted:
                self._drop_latent(lid)
                self._c["promotions"] += 1
                if carried is not None:
                    self._carried[key] = carried
            self._ivals[key] = value
            self._insert_image(key, size)
            return key in self._ivals

    # ---------------------------------------------------------------- simulation (one request)
    def _access(self, obj_id: Hashable, image_size: int, latent_size: int) -> int:
        self._tick()
        c = self._c
        c["requests"] += 1
        found = self._img.touch(obj_id)
        if found:
            c["image_hits"] += 1
            if found == TAIL_HIT:
                c["image_tail_hits"] += 1
            return IMAGE_HIT
        lat = self._lat
        found = lat.touch(obj_id)
        if found:
            c["latent_hits"] += 1
            if found == TAIL_HIT:
                c["latent_tail_hits"] += 1
            hits = self._lhits.get(obj_id, 0) + 1
            size = lat.size_of(obj_id)
            if self._due(hits, image_size, size) and self._promote_sized(obj_id, image_size, size):
                return LATENT_HIT
            self._lhits[obj_id] = hits
            return LATENT_HIT
        c["misses"] += 1
        if 0 < latent_size <= lat.capacity:
            self._insert_latent(obj_id, latent_size)
            # as on a worker: the fetched latent is cached, then the decoded image is offered (promotion at once)
            if self._due(0, image_size, latent_size):
                self._promote_sized(obj_id, image_size, latent_size)
        elif 0 < image_size <= self._img.capacity:
            self._insert_image(obj_id, image_size)
        else:
            c["rejected"] += 1
        return MISS

    def _promote_sized(self, obj_id: Hashable, image_size: int, latent_size: int) -> bool:
        """Simulation: move ``obj_id`` from the latent tier to the image tier (with its latent when carried);
        False (counted as blocked) when the entry does not fit the image tier."""
        carry = self._carry(image_size, latent_size)
        entry = image_size + latent_size if carry else image_size
        if not 0 < entry <= self._img.capacity:
            self._c["promotions_blocked"] += 1
            return False
        self._drop_latent(obj_id)
        self._c["promotions"] += 1
        if carry:
            self._carried[obj_id] = (obj_id, None, latent_size)
        self._insert_image(obj_id, entry)
        return True

    def _insert_image(self, key: Hashable, size: int) -> None:
        evicted = self._img.insert(key, size)
        self._c["image_inserts"] += 1
        self._evicted_images(evicted)

    def _insert_latent(self, obj_id: Hashable, size: int) -> None:
        evicted = self._lat.insert(obj_id, size)
        self._c["latent_inserts"] += 1
        if evicted:
            self._forget_latents(evicted)

    def _forget_latents(self, evicted: list[Hashable]) -> None:
        self._c["latent_evictions"] += len(evicted)
        lvals, lhits = self._lvals, self._lhits
        for k in evicted:
            lvals.pop(k, None)
            lhits.pop(k, None)

    def _drop_latent(self, obj_id: Hashable) -> None:
        self._lat.pop(obj_id)
        self._lvals.pop(obj_id, None)
        self._lhits.pop(obj_id, None)

    # ---------------------------------------------------------------- tuner
    def _image_capacity(self, alpha: float) -> int:
        return min(self._capacity, round(alpha * self._capacity))

    def _tick(self) -> None:
        """Called at the start of every request: close the window first if it is full."""
        if self._w_req >= self._window:
            self._end_window()
        self._w_req += 1

    def _end_window(self) -> None:
        c, w0 = self._c, self._w0
        alpha = self._alpha_v
        tail_hits = c["image_tail_hits"] + c["latent_tail_hits"] - w0["image_tail_hits"] - w0["latent_tail_hits"]
        if self._adaptive and tail_hits < MIN_TAIL_HITS and c["requests"] - w0["requests"] < 10 * self._window:
            # too few tail hits to tell the tiers apart: extend the window (up to 10 W) rather than follow noise
            self._trajectory.append((c["requests"], alpha))
            self._w_req = 0
            return
        if self._adaptive:
            new = self._decide(
                requests=c["requests"] - w0["requests"],
                image_hits=c["image_hits"] - w0["image_hits"],
                image_tail_hits=c["image_tail_hits"] - w0["image_tail_hits"],
                latent_tail_hits=c["latent_tail_hits"] - w0["latent_tail_hits"],
                misses=c["misses"] - w0["misses"],
                blocked=c["promotions_blocked"] - w0["promotions_blocked"],
            )
            if new != alpha:
                self._set_alpha(new)
                c["tuner_steps"] += 1
            if c["latent_tail_hits"] > w0["latent_tail_hits"]:
                self._quiet_latent_hits = 0
            else:
                self._quiet_latent_hits += c["latent_hits"] - w0["latent_hits"]
            self._no_margin = self._promotion == "cost" and self._quiet_latent_hits >= NO_MARGIN_HITS
        self._trajectory.append((c["requests"], self._alpha_v))
        self._w0 = dict(c)
        self._w_req = 0

    def _decide(
        self, *, requests: int, image_hits: int, image_tail_hits: int, latent_tail_hits: int, misses: int,
        blocked: int = 0,
    ) -> float:
        """The next alpha given one window's counts: one step toward the larger marginal saving per byte."""
        image_misses = requests - image_hits
        m_img = image_misses / requests if requests else 0.0
        m_lat = misses / image_misses if image_misses else 0.0
        d, f = self._decode_ms, self._fetch_ms
        img_tail = self._img.tail_capacity
        lat_tail = self._lat.tail_capacity
        # A lost latent hit becomes a miss: f more than the latent hit.
        # A lost image hit is a latent hit (d) if its demoted latent is still cached, else a miss (d + f).
        lost_image = d + (m_lat if lat_tail > 0 else 1.0) * f
        save_image = image_tail_hits / img_tail * lost_image if img_tail > 0 else 0.0
        save_latent = latent_tail_hits / lat_tail * f if lat_tail > 0 else 0.0
        # A tier that cannot show its value gets one step (exploration): no room at all, or (image tier) empty
        # while promotions are due that it is too small to take.
        if lat_tail > 0 and (img_tail == 0 or (blocked > 0 and not self._img)):
            save_image = float("inf")
        elif lat_tail == 0 and img_tail > 0:
            save_latent = float("inf")
        self._last_window = {
            "m_img": m_img,
            "m_lat": m_lat,
            "expected_cost_ms": m_img * (d + m_lat * f),
            "saving_per_image_byte": save_image,
            "saving_per_latent_byte": save_latent,
        }
        alpha = self._alpha_v
        margin = 1.0 + self._tolerance
        direction = 1 if save_image > save_latent * margin else -1 if save_latent > save_image * margin else 0
        # consecutive moves the same way grow the step (1, 2, ... steps, at most MAX_MOVE): a split far from its
        # optimum gets there in fewer windows; any reversal or pause starts again at one step
        self._run = self._run + 1 if direction and direction == self._direction else 1
        self._direction = direction
        step = min(self._step * self._run, max(self._step, MAX_MOVE))
        if direction > 0:
            alpha = min(self._alpha_max, alpha + step)
        elif direction < 0:
            alpha = max(self._alpha_min, alpha - step)
        return round(alpha, 12)

    def _set_alpha(self, alpha: float) -> None:
        self._alpha_v = alpha
        image_cap = self._image_capacity(alpha)
        # shrink first so the total never exceeds the budget; images evicted by a shrink demote afterwards
        if image_cap < self._img.capacity:
            evicted = self._img.set_capacity(image_cap)
            self._forget_latents(self._lat.set_capacity(self._capacity - image_cap))
            self._evicted_images(evicted)
        else:
            self._forget_latents(self._lat.set_capacity(self._capacity - image_cap))
            self._evicted_images(self._img.set_capacity(image_cap))

    def _evicted_images(self, evicted: list[Hashable]) -> None:
        """Forget evicted images; demote the latent an evicted image carries to the latent tier."""
        if not evicted:
            return
        c, ivals, carried, lat = self._c, self._ivals, self._carried, self._lat
        c["image_evictions"] += len(evicted)
        for k in evicted:
            ivals.pop(k, None)
            moved = carried.pop(k, None)
            if moved is None:
                continue
            lid, value, size = moved
            if lid in lat or lid in self._img or not 0 < size <= lat.capacity:
                continue
            c["demotions"] += 1
            self._insert_latent(lid, size)
            if value is not None:
                self._lvals[lid] = value

    def set_alpha(self, alpha: float) -> None:
        """Set the split now (resizing both tiers and evicting overflow); the tuner may move it again."""
        alpha = check_fraction("alpha", alpha)
        with self._lock:
            self._set_alpha(alpha)

    def _after_reset_stats(self) -> None:
        self._w0 = dict(self._c)
        self._w_req = 0

    # ---------------------------------------------------------------- inspection
    def _alpha(self) -> float:
        return self._alpha_v

    def _tier_bytes(self) -> tuple[int, int]:
        return self._img.used_bytes, self._lat.used_bytes

    def _extra_stats(self) -> dict[str, Any]:
        c = self._c
        return {
            "image_misses": c["requests"] - c["image_hits"],
            "image_capacity": self._img.capacity,
            "latent_capacity": self._lat.capacity,
            "image_objects": len(self._img),
            "latent_objects": len(self._lat),
            "adaptive": self._adaptive,
            "window": self._window,
            "promote_after": self._promote_after,
            "promotion": self._promotion,
            "step": self._step,
            "tail": self._tail,
            "last_window": dict(self._last_window),
        }

    # ---------------------------------------------------------------- simulation (whole trace)
    def _replay(self, ids: list[Hashable], isz: list[int], lsz: list[int]) -> list[tuple[int, float]]:
        from latentzarr.cache._dual_replay import replay_dual

        return replay_dual(self, ids, isz, lsz)


def _check_value(value: Any) -> None:
    if value is None:
        raise ValueError("Expected a cached value (e.g. bytes). Got None instead; a cache stores real objects.")
