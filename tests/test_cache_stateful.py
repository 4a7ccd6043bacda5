"""Stateful property tests: DualFormatCache against a plain reference model of the algorithm.

The model keeps each tier as one LRU list (no segments, no tuner of its own). It follows the cache's alpha
changes (the tuner's decisions are tested in ``test_cache_dual.py``) and asks the cache whether a promotion is
due (the price itself is tested there too), and must agree on every outcome, on which tier holds which object in
which recency order, and on the counters.
"""

from __future__ import annotations

from collections import OrderedDict

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from latentzarr.cache import IMAGE_HIT, LATENT_HIT, MISS, DualFormatCache
from latentzarr.errors import ObjectTooLargeError

N_KEYS = 12


class Model:
    """The dual-format policy written the obvious way: two byte-bounded LRU lists and a hit counter per latent."""

    def __init__(self, due, carry) -> None:
        self.img: OrderedDict[int, int] = OrderedDict()
        self.lat: OrderedDict[int, int] = OrderedDict()
        self.hits: dict[int, int] = {}
        self.carried: dict[int, int] = {}  # promoted image -> size of the latent it carries
        self.icap = self.lcap = 0
        self.due = due  # (latent hits so far, image size, latent size) -> promote now?
        self.carry = carry  # (image size, latent size) -> does the promoted image keep its latent?
        self.promotions = self.demotions = 0

    @staticmethod
    def _fit(tier: OrderedDict[int, int], cap: int) -> list[int]:
        out = []
        while sum(tier.values()) > cap:
            out.append(tier.popitem(last=False)[0])
        return out

    def _add_latent(self, k: int, size: int) -> None:
        self.lat[k] = size
        for e in self._fit(self.lat, self.lcap):
            self.hits.pop(e, None)

    def _evicted_images(self, evicted: list[int]) -> None:
        """An evicted image that carries its latent puts the latent back in the latent tier."""
        for k in evicted:
            size = self.carried.pop(k, None)
            if size is not None and k not in self.lat and 0 < size <= self.lcap:
                self.demotions += 1
                self._add_latent(k, size)

    def _add_image(self, k: int, size: int) -> None:
        self.img[k] = size
        self._evicted_images(self._fit(self.img, self.icap))

    def resize(self, icap: int, lcap: int) -> None:
        self.icap, self.lcap = icap, lcap
        evicted = self._fit(self.img, icap)
        for k in self._fit(self.lat, lcap):
            self.hits.pop(k, None)
        self._evicted_images(evicted)

    def _entry(self, si: int, sl: int) -> int:
        return si + sl if self.carry(si, sl) else si

    def _promote(self, k: int, si: int) -> None:
        sl = self.lat.pop(k)
        self.hits.pop(k, None)
        self.promotions += 1
        if self.carry(si, sl):  # the image carries its latent, to demote it when evicted
            self.carried[k] = sl
            si += sl
        self._add_image(k, si)

    def request(self, k: int, si: int, sl: int) -> int:
        if k in self.img:
            self.img.move_to_end(k)
            return IMAGE_HIT
        if k in self.lat:
            h = self.hits.get(k, 0) + 1
            if self.due(h, si, self.lat[k]) and 0 < self._entry(si, self.lat[k]) <= self.icap:
                self._promote(k, si)
            else:
                self.lat.move_to_end(k)
                self.hits[k] = h
            return LATENT_HIT
        if 0 < sl <= self.lcap:
            self._add_latent(k, sl)
            if self.due(0, si, sl) and 0 < self._entry(si, sl) <= self.icap:  # promoted at the miss
                self._promote(k, si)
        elif 0 < si <= self.icap:
            self._add_image(k, si)
        return MISS


class DualCacheMachine(RuleBasedStateMachine):
    @initialize(
        capacity=st.integers(0, 400),
        alpha=st.floats(0, 1),
        adaptive=st.booleans(),
        window=st.integers(1, 8),
        promote_after=st.integers(1, 3),
        tail=st.sampled_from([0.1, 0.25, 0.5]),
        step=st.sampled_from([0.05, 0.2, 0.5]),
        sizes=st.lists(st.tuples(st.integers(1, 120), st.integers(1, 40)), min_size=N_KEYS, max_size=N_KEYS),
        live=st.booleans(),
        promotion=st.sampled_from(["cost", "count"]),
        decode_ms=st.sampled_from([5.0, 32.6, 2000.0]),
    )
    def setup(self, capacity, alpha, adaptive, window, promote_after, tail, step, sizes, live, promotion, decode_ms):
        self.cache = DualFormatCache(
            capacity,
            alpha=alpha,
            adaptive=adaptive,
            window=window,
            promote_after=promote_after,
            tail=tail,
            step=step,
            promotion=promotion,
            decode_ms=decode_ms,
        )
        self.model = Model(self.cache.promotion_due, self.cache._carry)
        self.model.resize(*self.cache.tier_capacity)
        self.sizes = sizes
        self.live = live  # live mode (real values) or simulation mode (access/replay), never mixed
        self.window = window
        self.w_req = 0
        self.outcomes = {IMAGE_HIT: 0, LATENT_HIT: 0, MISS: 0}

    def _model_step(self, k: int, outcome: int) -> None:
        if self.w_req >= self.window:  # the cache tuned at the start of this request
            self.w_req = 0
            self.model.resize(*self.cache.tier_capacity)
        self.w_req += 1
        si, sl = self.sizes[k]
        assert outcome == self.model.request(k, si, sl)
        self.outcomes[outcome] += 1

    @precondition(lambda self: hasattr(self, "cache") and not self.live)
    @rule(k=st.integers(0, N_KEYS - 1))
    def simulated_request(self, k):
        si, sl = self.sizes[k]
        self._model_step(k, self.cache.access(k, si, sl))

    @precondition(lambda self: hasattr(self, "cache") and self.live)
    @rule(k=st.integers(0, N_KEYS - 1))
    def live_request(self, k):
        """The worker's sequence of calls, with real values that must come back intact."""
        si, sl = self.sizes[k]
        cache = self.cache
        image = cache.get_image(k)
        if image is not None:
            assert image == f"image {k}".encode()
            outcome = IMAGE_HIT
        else:
            latent = cache.get_latent(k)
            if latent is not None:
                assert latent == f"latent {k}".encode()
                outcome = LATENT_HIT
            else:
                try:
                    cache.put_latent(k, f"latent {k}".encode(), sl)
                except ObjectTooLargeError:
                    assert sl > cache.capacity
                outcome = MISS
            try:
                cache.offer_image(k, f"image {k}".encode(), si)
            except ObjectTooLargeError:
                assert si > cache.capacity
        self._model_step(k, outcome)

    @precondition(lambda self: hasattr(self, "cache") and not self.live)
    @rule(k=st.integers(0, N_KEYS - 1))
    def replay_burst(self, k):
        """A short replay through the batch loop must leave the same state as the per-request path."""
        ids = [k, (k + 1) % N_KEYS, k]
        result = self.cache.replay(ids, [self.sizes[i][0] for i in ids], [self.sizes[i][1] for i in ids])
        alphas = dict(result.alpha_trajectory)  # request index in this replay -> alpha chosen before it
        cap = self.cache.capacity
        for pos, i in enumerate(ids):
            if self.w_req >= self.window:
                self.w_req = 0
                image_cap = min(cap, round(alphas[pos] * cap))
                self.model.resize(image_cap, cap - image_cap)
            self.w_req += 1
            self.outcomes[self.model.request(i, *self.sizes[i])] += 1
        assert result.requests == 3
        assert result.image_hits + result.latent_hits + result.misses == 3

    @invariant()
    def agrees_with_model(self):
        if not hasattr(self, "cache"):
            return
        cache, model = self.cache, self.model
        img, lat = cache._img, cache._lat
        # same objects, same recency order (tail segment = least recent end)
        assert [*img.tail, *img.main] == list(model.img)
        assert [*lat.tail, *lat.main] == list(model.lat)
        assert {k: v for k, v in cache._lhits.items() if v} == {k: v for k, v in model.hits.items() if v}

    @invariant()
    def budget_and_tiers(self):
        if not hasattr(self, "cache"):
            return
        cache = self.cache
        s = cache.stats()
        assert 0.0 <= s["alpha"] <= 1.0
        assert s["image_capacity"] + s["latent_capacity"] == s["capacity"]
        assert abs(s["image_capacity"] - s["alpha"] * s["capacity"]) <= 1
        assert s["image_bytes"] <= s["image_capacity"]
        assert s["latent_bytes"] <= s["latent_capacity"]
        assert s["image_bytes"] + s["latent_bytes"] <= s["capacity"]
        img, lat = cache._img, cache._lat
        assert img.main_bytes == sum(img.main.values()) and img.tail_bytes == sum(img.tail.values())
        assert lat.main_bytes == sum(lat.main.values()) and lat.tail_bytes == sum(lat.tail.values())
        keys_img, keys_lat = set(img.main) | set(img.tail), set(lat.main) | set(lat.tail)
        assert not keys_img & keys_lat, "an object is in two tiers"
        assert not set(img.main) & set(img.tail) and not set(lat.main) & set(lat.tail)

    @invariant()
    def counters_add_up(self):
        if not hasattr(self, "cache"):
            return
        s = self.cache.stats()
        assert s["requests"] == s["image_hits"] + s["latent_hits"] + s["misses"]
        assert s["image_hits"] == self.outcomes[IMAGE_HIT]
        assert s["latent_hits"] == self.outcomes[LATENT_HIT]
        assert s["misses"] == self.outcomes[MISS]
        assert s["promotions"] == self.model.promotions
        assert s["demotions"] == self.model.demotions
        assert 0 <= s["image_tail_hits"] <= s["image_hits"]
        assert 0 <= s["latent_tail_hits"] <= s["latent_hits"]
        # every object ever inserted is cached, was evicted or was promoted out of the latent tier
        assert s["image_inserts"] - s["image_evictions"] == s["image_objects"]
        assert s["latent_inserts"] - s["latent_evictions"] - s["promotions"] == s["latent_objects"]
        if not s["adaptive"]:
            assert s["tuner_steps"] == 0


DualCacheMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestDualCacheMachine = DualCacheMachine.TestCase
