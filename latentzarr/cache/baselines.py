"""Single-format baselines behind the same interface: image-only LRU and image-only S3-FIFO.

Both cache decoded images only: every miss costs a store fetch and a decode, exactly as in the dual-format
cache, so comparisons are like for like. ``get_latent`` always misses and ``put_latent`` keeps nothing.

S3-FIFO (Yang et al., SOSP 2023; as in libCacheSim ``S3FIFO.c``), defaults in brackets:

* a small FIFO S [10% of the bytes], a main FIFO M [the rest] and a ghost FIFO G of ids only [90% of the bytes];
* a hit sets ``freq = min(freq + 1, 3)`` (two bits); nothing moves on a hit;
* a miss whose id is in G enters M, any other enters S (or M while S is full before the first eviction);
  objects of at least S's size are not cached;
* evicting from S: an object with ``freq >= 2`` [move-to-main threshold] moves to M with ``freq = 0``, others
  go to G; evicting from M: an object with ``freq >= 1`` is reinserted with ``freq - 1``, others leave;
* M is evicted from when it exceeds its share or S is empty, else S.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from latentzarr.cache.base import IMAGE_HIT, MISS, Cache, check_fraction

__all__ = ["LRUImageCache", "S3FIFOImageCache"]


class _ImageOnly(Cache):
    """Shared parts of the image-only baselines."""

    def __init__(self, capacity: int, **kwargs: Any) -> None:
        super().__init__(capacity, **kwargs)
        self._vals: dict[Hashable, Any] = {}

    def get_latent(self, obj_id: Hashable) -> Any | None:
        with self._lock:
            self._c["misses"] += 1
        return None

    def peek_image(self, key: Hashable) -> Any | None:
        """The cached image for ``key`` or ``None``, without counting a request or touching its metadata."""
        with self._lock:
            return self._vals.get(key) if key in self else None

    def peek_latent(self, obj_id: Hashable) -> Any | None:
        """Always ``None``: image-only caches hold no latents."""
        return None

    def put_latent(self, obj_id: Hashable, value: Any, size: int) -> bool:
        self._check_fits(size, "a latent")
        return False

    def _alpha(self) -> float:
        return 1.0

    def _extra_stats(self) -> dict[str, Any]:
        c = self._c
        return {"image_misses": c["requests"] - c["image_hits"], "image_objects": len(self)}

    def __len__(self) -> int:
        raise NotImplementedError


class LRUImageCache(_ImageOnly):
    """Image-only LRU over a byte budget (same behaviour as ``DualFormatCache.image_only``).

    Parameters
    ----------
    capacity
        Byte budget.
    decode_ms, fetch_ms, ewma
        As for :class:`~latentzarr.cache.base.Cache`.
    """

    name = "lru-image"

    def __init__(self, capacity: int, **kwargs: Any) -> None:
        super().__init__(capacity, **kwargs)
        self._od: OrderedDict[Hashable, int] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._od)

    def __contains__(self, key: object) -> bool:
        return key in self._od

    def _tier_bytes(self) -> tuple[int, int]:
        return self._bytes, 0

    def get_image(self, key: Hashable) -> Any | None:
        with self._lock:
            self._c["requests"] += 1
            if key not in self._od:
                return None
            self._od.move_to_end(key)
            self._c["image_hits"] += 1
            return self._vals.get(key)

    def offer_image(self, key: Hashable, value: Any, size: int, *, latent_id: Hashable | None = None) -> bool:
        size = self._check_fits(size, "an image")
        with self._lock:
            if key in self._od:
                self._bytes -= self._od.pop(key)
            if not self._insert(key, size):
                return False
            self._vals[key] = value
            return True

    def _insert(self, key: Hashable, size: int) -> bool:
        if not 0 < size <= self._capacity:
            self._c["rejected"] += 1
            return False
        od = self._od
        od[key] = size
        self._bytes += size
        self._c["image_inserts"] += 1
        while self._bytes > self._capacity:
            k, s = od.popitem(last=False)
            self._bytes -= s
            self._c["image_evictions"] += 1
            self._vals.pop(k, None)
        return True

    def _access(self, obj_id: Hashable, image_size: int, latent_size: int) -> int:
        c = self._c
        c["requests"] += 1
        if obj_id in self._od:
            self._od.move_to_end(obj_id)
            c["image_hits"] += 1
            return IMAGE_HIT
        c["misses"] += 1
        self._insert(obj_id, image_size)
        return MISS

    def _replay(self, ids: list[Hashable], isz: list[int], lsz: list[int]) -> list[tuple[int, float]]:
        od = self._od
        move, popitem = od.move_to_end, od.popitem
        vals = self._vals
        cap = self._capacity
        b = self._bytes
        hits = ins = ev = rej = 0
        for k, s in zip(ids, isz, strict=True):
            if k in od:
                move(k)
                hits += 1
                continue
            if not 0 < s <= cap:
                rej += 1
                continue
            od[k] = s
            b += s
            ins += 1
            while b > cap:
                k2, s2 = popitem(False)
                b -= s2
                ev += 1
                if vals:
                    vals.pop(k2, None)
        self._bytes = b
        c = self._c
        c["requests"] += len(ids)
        c["image_hits"] += hits
        c["misses"] += len(ids) - hits
        c["image_inserts"] += ins
        c["image_evictions"] += ev
        c["rejected"] += rej
        return [(0, 1.0)]


class S3FIFOImageCache(_ImageOnly):
    """Image-only S3-FIFO over a byte budget (see the module docstring for the algorithm).

    Parameters
    ----------
    capacity
        Byte budget.
    small_ratio
        Fraction of ``capacity`` for the small FIFO, in (0, 1).
    ghost_ratio
        Ghost FIFO budget as a fraction of ``capacity`` (sizes of the remembered ids), in [0, 1].
    move_to_main
        ``freq`` an object in the small FIFO needs to move to the main FIFO on eviction (>= 1).
    decode_ms, fetch_ms, ewma
        As for :class:`~latentzarr.cache.base.Cache`.
    """

    name = "s3fifo-image"
    MAX_FREQ = 3

    def __init__(
        self,
        capacity: int,
        *,
        small_ratio: float = 0.1,
        ghost_ratio: float = 0.9,
        move_to_main: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(capacity, **kwargs)
        small_ratio = check_fraction("small_ratio", small_ratio, upper_open=True)
        if small_ratio == 0.0:
            raise ValueError(f"Expected small_ratio in (0, 1). Got {small_ratio!r} instead.")
        ghost_ratio = check_fraction("ghost_ratio", ghost_ratio)
        if isinstance(move_to_main, bool) or not isinstance(move_to_main, int) or move_to_main < 1:
            raise ValueError(f"Expected move_to_main as an int >= 1. Got {move_to_main!r} instead.")
        self.small_ratio, self.ghost_ratio, self.move_to_main = small_ratio, ghost_ratio, move_to_main
        self._small_cap = int(self._capacity * small_ratio)
        self._main_cap = self._capacity - self._small_cap
        self._ghost_cap = int(self._capacity * ghost_ratio)
        self._small: OrderedDict[Hashable, int] = OrderedDict()
        self._main: OrderedDict[Hashable, int] = OrderedDict()
        self._ghost: OrderedDict[Hashable, int] = OrderedDict()
        self._freq: dict[Hashable, int] = {}
        self._sb = self._mb = self._gb = 0  # bytes in small, main, ghost
        self._has_evicted = False

    def __len__(self) -> int:
        return len(self._small) + len(self._main)

    def __contains__(self, key: object) -> bool:
        return key in self._freq

    def _tier_bytes(self) -> tuple[int, int]:
        return self._sb + self._mb, 0

    def _extra_stats(self) -> dict[str, Any]:
        out = super()._extra_stats()
        out.update(
            small_bytes=self._sb,
            main_bytes=self._mb,
            ghost_bytes=self._gb,
            ghost_objects=len(self._ghost),
        )
        return out

    # ---------------------------------------------------------------- live path
    def get_image(self, key: Hashable) -> Any | None:
        with self._lock:
            self._c["requests"] += 1
            f = self._freq.get(key)
            if f is None:
                return None
            if f < self.MAX_FREQ:
                self._freq[key] = f + 1
            self._c["image_hits"] += 1
            return self._vals.get(key)

    def offer_image(self, key: Hashable, value: Any, size: int, *, latent_id: Hashable | None = None) -> bool:
        size = self._check_fits(size, "an image")
        with self._lock:
            if key in self._freq:
                self._vals[key] = value
                return True
            if not self._insert(key, size):
                return False
            self._vals[key] = value
            return True

    # ---------------------------------------------------------------- algorithm
    def _insert(self, key: Hashable, size: int) -> bool:
        """Admit a missed object (the ghost check, evictions, then insertion into S or M)."""
        ghost = self._ghost
        on_ghost = key in ghost
        if on_ghost:
            self._gb -= ghost.pop(key)
        if not 0 < size < self._small_cap:
            self._c["rejected"] += 1
            return False
        while self._sb + self._mb + size > self._capacity:
            self._evict()
        if on_ghost or (not self._has_evicted and self._sb >= self._small_cap):
            self._main[key] = size
            self._mb += size
        else:
            self._small[key] = size
            self._sb += size
        self._freq[key] = 0
        self._c["image_inserts"] += 1
        return True

    def _evict(self) -> None:
        self._has_evicted = True
        freq = self._freq
        if self._mb > self._main_cap or not self._small:
            main = self._main
            while main:
                k, s = main.popitem(last=False)
                f = freq[k]
                if f >= 1:
                    main[k] = s
                    freq[k] = min(f, self.MAX_FREQ) - 1
                else:
                    self._mb -= s
                    del freq[k]
                    self._vals.pop(k, None)
                    self._c["image_evictions"] += 1
                    return
        else:
            small = self._small
            while small:
                k, s = small.popitem(last=False)
                self._sb -= s
                if freq[k] >= self.move_to_main:
                    self._main[k] = s
                    self._mb += s
                    freq[k] = 0
                else:
                    del freq[k]
                    self._vals.pop(k, None)
                    self._c["image_evictions"] += 1
                    self._ghost[k] = s
                    self._gb += s
                    while self._gb > self._ghost_cap and self._ghost:
                        self._gb -= self._ghost.popitem(last=False)[1]
                    return

    def _access(self, obj_id: Hashable, image_size: int, latent_size: int) -> int:
        c = self._c
        c["requests"] += 1
        f = self._freq.get(obj_id)
        if f is not None:
            if f < self.MAX_FREQ:
                self._freq[obj_id] = f + 1
            c["image_hits"] += 1
            return IMAGE_HIT
        c["misses"] += 1
        self._insert(obj_id, image_size)
        return MISS

    def _replay(self, ids: list[Hashable], isz: list[int], lsz: list[int]) -> list[tuple[int, float]]:
        freq = self._freq
        fget = freq.get
        c = self._c
        hits = 0
        insert = self._insert
        for k, s in zip(ids, isz, strict=True):
            f = fget(k)
            if f is not None:
                if f < 3:
                    freq[k] = f + 1
                hits += 1
                continue
            insert(k, s)
        c["requests"] += len(ids)
        c["image_hits"] += hits
        c["misses"] += len(ids) - hits
        return [(0, 1.0)]
