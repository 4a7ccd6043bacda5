"""Image-only baselines: LRU and S3-FIFO behind the cache interface."""

from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

from latentzarr.cache import IMAGE_HIT, MISS, LRUImageCache, S3FIFOImageCache
from latentzarr.errors import ObjectTooLargeError


def test_lru_evicts_least_recently_used():
    cache = LRUImageCache(300)
    for k in "abc":
        assert cache.access(k, 100, 20) == MISS
    assert cache.access("a", 100, 20) == IMAGE_HIT
    cache.access("d", 100, 20)  # evicts b
    assert "b" not in cache and {"a", "c", "d"} <= {k for k in "abcd" if k in cache}
    assert cache.tier_bytes == (300, 0)


def test_s3fifo_one_hit_wonders_go_to_the_ghost_and_come_back_to_main():
    cache = S3FIFOImageCache(1000)  # small FIFO 100 bytes, main 900
    cache.access("a", 60, 1)
    cache.access("b", 60, 1)
    cache.access("c", 60, 1)  # S is full and nothing was evicted yet: c enters M
    assert list(cache._small) == ["a", "b"] and list(cache._main) == ["c"]
    for k in range(15):  # fill main, then keep missing: a (never hit again) leaves S for the ghost
        cache.access(k, 60, 1)
    assert "a" not in cache and "a" in cache._ghost
    assert cache.access("a", 60, 1) == MISS
    assert "a" in cache._main and "a" not in cache._ghost  # a ghost hit enters main directly


def test_s3fifo_frequent_objects_move_to_main_and_frequency_is_capped():
    cache = S3FIFOImageCache(1000)
    for k in range(12):
        cache.access(k, 60, 1)
    small_first = next(iter(cache._small))
    for _ in range(5):
        assert cache.access(small_first, 60, 1) == IMAGE_HIT
    assert cache._freq[small_first] == 3  # two bits
    for k in range(100, 110):
        cache.access(k, 60, 1)
    assert small_first in cache._main  # accessed >= 2 times in S: moved to M, not evicted


def test_s3fifo_resists_a_scan_that_flushes_lru():
    hot = list(range(5))
    scan = list(range(100, 400))
    trace = (hot * 4 + scan[:30]) * 10
    lru, s3 = LRUImageCache(1000), S3FIFOImageCache(1000)
    r_lru = lru.replay(trace, [60] * len(trace), [10] * len(trace))
    r_s3 = s3.replay(trace, [60] * len(trace), [10] * len(trace))
    assert r_s3.image_hits > r_lru.image_hits


def test_image_only_baselines_have_no_latent_tier():
    for cache in (LRUImageCache(1000), S3FIFOImageCache(1000)):
        assert cache.get_image("x") is None
        assert cache.get_latent("x") is None
        assert cache.put_latent("x", b"L", 10) is False
        assert cache.offer_image("x", b"I" * 50, 50)
        assert cache.get_image("x") == b"I" * 50
        s = cache.stats()
        assert s["alpha"] == 1.0 and s["latent_bytes"] == 0
        assert s["requests"] == s["image_hits"] + s["misses"] == 2
        with pytest.raises(ObjectTooLargeError):
            cache.offer_image("y", b"I", 1001)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"small_ratio": 0.0}, "small_ratio"),
        ({"small_ratio": 1.0}, "small_ratio"),
        ({"ghost_ratio": 2.0}, "ghost_ratio"),
        ({"move_to_main": 0}, "move_to_main"),
    ],
)
def test_s3fifo_parameters_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        S3FIFOImageCache(1000, **kwargs)


def test_negative_capacity_is_refused():
    with pytest.raises(ValueError, match="capacity"):
        LRUImageCache(-5)


@settings(max_examples=60, deadline=None)
@given(
    ids=st.lists(st.integers(0, 40), min_size=1, max_size=500),
    capacity=st.integers(0, 5000),
    seed=st.integers(0, 2**16),
)
def test_s3fifo_replay_matches_access_and_respects_the_budget(ids, capacity, seed):
    sizes = np.random.default_rng(seed).integers(1, 300, 41)
    isz = [int(sizes[k]) for k in ids]
    batch, single = S3FIFOImageCache(capacity), S3FIFOImageCache(capacity)
    batch.replay(ids, isz, [1] * len(ids))
    for k, s in zip(ids, isz, strict=True):
        single.access(k, s, 1)
        assert single._sb + single._mb <= capacity
        assert single._sb == sum(single._small.values()) and single._mb == sum(single._main.values())
        assert not set(single._small) & set(single._main)
        assert set(single._freq) == set(single._small) | set(single._main)
        assert all(0 <= f <= 3 for f in single._freq.values())
        assert single._gb <= single._ghost_cap
    assert batch.stats() == single.stats()
    assert list(batch._main) == list(single._main) and list(batch._small) == list(single._small)


def test_peek_on_baselines():
    for cache in (LRUImageCache(1000), S3FIFOImageCache(1000)):
        cache.offer_image("x", b"I", 10)
        before = cache.stats()
        assert cache.peek_image("x") == b"I" and cache.peek_image("y") is None and cache.peek_latent("x") is None
        assert cache.stats() == before
