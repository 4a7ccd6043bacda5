"""DualFormatCache: promotion, tail hits, the tuner, bad input, replay == access, thread safety."""

from __future__ import annotations

import itertools
import random
import threading

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

from latentzarr.cache import IMAGE_HIT, LATENT_HIT, MISS, CostModel, DualFormatCache, LRUImageCache
from latentzarr.errors import ObjectTooLargeError


def test_count_promotion_after_exactly_p_latent_hits():
    cache = DualFormatCache(10_000, alpha=0.5, adaptive=False, promote_after=3, promotion="count")
    assert cache.access("a", 1000, 100) == MISS
    assert cache.where("a") == "latent"
    for _ in range(2):
        assert cache.access("a", 1000, 100) == LATENT_HIT
        assert cache.where("a") == "latent"
    assert cache.access("a", 1000, 100) == LATENT_HIT  # the third latent hit decodes and promotes
    assert cache.where("a") == "image"
    assert cache.access("a", 1000, 100) == IMAGE_HIT
    s = cache.stats()
    assert (s["promotions"], s["latent_objects"], s["image_objects"]) == (1, 0, 1)
    assert (s["image_hits"], s["latent_hits"], s["misses"]) == (1, 3, 1)


def test_evicted_image_demotes_its_latent_instead_of_leaving_the_cache():
    """A promoted image carries its latent (its entry counts both); evicted, the latent returns to the latent tier."""
    cache = DualFormatCache(4_000, alpha=0.5, adaptive=False, promote_after=1, promotion="count")  # 2,000 B a tier
    assert cache.get_image("a") is None and cache.get_latent("a") is None
    assert cache.put_latent("a", b"La", 300)
    assert not cache.offer_image("a", b"Ia", 1_000)  # a miss: the latent tier keeps it
    assert cache.get_image("a") is None and cache.get_latent("a") == b"La"
    assert cache.offer_image("a", b"Ia", 1_000)  # one latent hit: promoted, carrying the latent
    assert cache.where("a") == "image" and cache.stats()["image_bytes"] == 1_300
    for key in ("b", "c"):  # two more promotions of 1,300 bytes evict "a", then "b", from the image tier
        cache.get_image(key)
        cache.get_latent(key)
        cache.put_latent(key, b"L" + key.encode(), 300)
        cache.get_image(key)
        assert cache.get_latent(key) is not None
        assert cache.offer_image(key, b"I" + key.encode(), 1_000)
    assert cache.where("a") == "latent" and cache.peek_latent("a") == b"La"  # demoted with its value
    assert cache.where("b") == "latent" and cache.where("c") == "image"
    s = cache.stats()
    assert (s["promotions"], s["demotions"]) == (3, 2)
    assert cache.access("a", 1_000, 300) == LATENT_HIT  # a latent hit, not a miss
    # image-only: nothing to demote, an evicted image leaves the cache
    only = DualFormatCache.image_only(2_000)
    for key in ("x", "y"):
        only.get_image(key)
        assert only.get_latent(key) is None
        assert not only.put_latent(key, b"L", 300)
        assert only.offer_image(key, b"I", 1_500)
    assert only.where("x") is None and only.stats()["demotions"] == 0


def test_live_promotion_with_rendition_keys():
    """Images keyed by (id, rendition), latents by id: promotion removes the latent of that id."""
    cache = DualFormatCache(10_000, adaptive=False, promote_after=1, promotion="count")
    key = ("img-1", "webp-512")
    assert cache.get_image(key) is None
    assert cache.get_latent("img-1") is None
    assert cache.put_latent("img-1", b"L" * 100, 100)
    assert not cache.offer_image(key, b"I" * 900, 900, latent_id="img-1")  # first fetch: latent tier only
    assert cache.get_image(key) is None
    assert cache.get_latent("img-1") == b"L" * 100
    assert cache.offer_image(key, b"I" * 900, 900, latent_id="img-1")  # P = 1 latent hit: promoted
    assert cache.where("img-1") is None and cache.where(key) == "image"
    assert cache.get_image(key) == b"I" * 900
    s = cache.stats()
    assert s["requests"] == s["image_hits"] + s["latent_hits"] + s["misses"] == 3


def test_discard_drops_images_and_latents_of_a_changed_object():
    cache = DualFormatCache(10_000, adaptive=False, promote_after=1, promotion="count")
    a, b = ("img-1", "png"), ("img-2", "png")
    for obj, key in (("img-1", a), ("img-2", b)):
        cache.put_latent(obj, b"L" * 100, 100)
        cache.get_latent(obj)
        assert cache.offer_image(key, b"I" * 900, 900, latent_id=obj)  # promoted: the image carries the latent
    cache.put_latent("img-3", b"L" * 100, 100)
    used = cache.stats()
    assert sorted(cache.image_keys()) == [a, b]
    assert cache.discard([a, "img-3", "nothing"]) == 2
    assert cache.image_keys() == [b] and cache.where(a) is None and cache.where("img-3") is None
    assert cache.get_image(a) is None and cache.get_latent("img-3") is None
    cache.set_alpha(0.0)  # evicting b's image would demote its carried latent; a's carried latent is gone for good
    assert cache.where("img-2") == "latent" and cache.where("img-1") is None
    assert cache.stats()["requests"] == used["requests"] + 1  # discard counts no request


def test_image_only_admits_images_and_latent_only_never_promotes():
    img = DualFormatCache.image_only(5000)
    assert img.access("a", 1000, 100) == MISS and img.where("a") == "image"
    assert img.access("a", 1000, 100) == IMAGE_HIT
    lat = DualFormatCache.latent_only(5000, promote_after=1)
    assert lat.access("a", 1000, 100) == MISS
    for _ in range(3):
        assert lat.access("a", 1000, 100) == LATENT_HIT
    assert lat.where("a") == "latent" and lat.stats()["promotions"] == 0
    assert (img.alpha, lat.alpha) == (1.0, 0.0)
    assert DualFormatCache.static(5000, 0.3).tier_capacity == (1500, 3500)


def test_tail_hits_count_only_the_lru_tail():
    # image tier of 100 bytes, tail 20%: of ten 10-byte objects the two least recently used are the tail
    cache = DualFormatCache.image_only(100, tail=0.2)
    for k in range(10):
        cache.access(k, 10, 1)
    assert cache.access(9, 10, 1) == IMAGE_HIT  # most recent: main segment
    assert cache.stats()["image_tail_hits"] == 0
    assert cache.access(0, 10, 1) == IMAGE_HIT  # least recent: tail segment
    assert cache.stats()["image_tail_hits"] == 1
    assert cache.access(2, 10, 1) == IMAGE_HIT  # 1 and 2 form the tail now (0 moved to the front)
    assert cache.access(1, 10, 1) == IMAGE_HIT
    s = cache.stats()
    assert (s["image_hits"], s["image_tail_hits"]) == (4, 3)


def test_latent_tail_hits():
    cache = DualFormatCache.latent_only(100, tail=0.2, promote_after=5)
    for k in range(10):
        cache.access(k, 1000, 10)
    cache.access(0, 1000, 10)
    cache.access(5, 1000, 10)
    s = cache.stats()
    assert (s["latent_hits"], s["latent_tail_hits"]) == (2, 1)


def _zipf_ids(n: int, n_objects: int, a: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.zipf(a, n) - 1) % n_objects


def test_tuner_moves_alpha_toward_images_when_decodes_are_expensive():
    ids = _zipf_ids(30_000, 5000, 1.2, seed=1)
    cache = DualFormatCache(100_000, alpha=0.5, window=1000, decode_ms=1000, fetch_ms=1)
    result = cache.replay(ids, np.full(len(ids), 1000), np.full(len(ids), 100))
    assert cache.alpha > 0.7
    alphas = [a for _, a in result.alpha_trajectory]
    assert alphas[0] == 0.5 and len(alphas) == 30
    moves = [round(b - a, 9) for a, b in itertools.pairwise(alphas)]
    assert all(abs(m) <= 0.05 + 1e-9 for m in moves)  # MAX_MOVE
    assert moves[:3] == [0.01, 0.02, 0.03]  # moving the same way, the step grows by one step a window


def test_tuner_moves_alpha_toward_latents_when_fetches_are_expensive():
    # 500 objects requested uniformly: all their latents fit in half the budget, their images do not
    ids = np.random.default_rng(2).integers(0, 500, 30_000)
    cache = DualFormatCache(100_000, alpha=0.9, window=1000, decode_ms=1, fetch_ms=1000)
    cache.replay(ids, np.full(len(ids), 1000), np.full(len(ids), 100))
    assert cache.alpha < 0.8


def test_tuner_explores_out_of_an_empty_tier():
    ids = _zipf_ids(20_000, 5000, 1.2, seed=3)
    cache = DualFormatCache(100_000, alpha=0.0, window=1000, decode_ms=1000, fetch_ms=1)
    cache.replay(ids, np.full(len(ids), 900), np.full(len(ids), 100))  # a promoted entry: 900 + 100 bytes
    assert cache.alpha > 0.05


def test_static_modes_never_tune():
    ids = _zipf_ids(5000, 500, 1.2, seed=4)
    cache = DualFormatCache.static(20_000, 0.25, window=100)
    result = cache.replay(ids, np.full(len(ids), 1000), np.full(len(ids), 100))
    assert {a for _, a in result.alpha_trajectory} == {0.25}
    assert cache.stats()["tuner_steps"] == 0


def test_ewma_follows_observations():
    cache = DualFormatCache(1000, decode_ms=30.0, fetch_ms=100.0, ewma=0.5)
    assert (cache.decode_ms, cache.fetch_ms) == (30.0, 100.0)  # the priors
    cache.record_decode_ms(50.0)
    cache.record_fetch_ms(200.0)
    assert (cache.decode_ms, cache.fetch_ms) == (50.0, 200.0)  # the first observation replaces the prior
    cache.record_decode_ms(30.0)
    cache.record_fetch_ms(100.0)
    assert cache.decode_ms == pytest.approx(40.0)
    assert cache.fetch_ms == pytest.approx(150.0)
    with pytest.raises(ValueError, match="Expected decode_ms"):
        cache.record_decode_ms(-1.0)


def test_object_larger_than_cache_says_so():
    cache = DualFormatCache(1000)
    with pytest.raises(ObjectTooLargeError, match="Expected a latent of at most 1000 bytes"):
        cache.put_latent("a", b"x", 1001)
    with pytest.raises(ObjectTooLargeError, match="Expected an image of at most 1000 bytes"):
        cache.offer_image("a", b"x", 5000)
    # the simulator counts such objects as rejected (a miss that is not cached)
    assert cache.access("b", 5000, 2000) == MISS
    assert cache.stats()["rejected"] == 1 and len(cache) == 0


def test_object_larger_than_its_tier_is_not_cached():
    cache = DualFormatCache.static(1000, 0.1)  # image tier 100 bytes
    assert cache.put_latent("a", b"L", 50)
    cache.get_latent("a")
    cache.get_latent("a")
    assert not cache.offer_image("a", b"I" * 500, 500)  # promotion due, but the image tier is too small
    assert cache.where("a") == "latent"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"capacity": -1}, "capacity as a whole number of bytes >= 0"),
        ({"capacity": 1.5}, "capacity as a whole number of bytes >= 0"),
        ({"capacity": 100, "alpha": 1.5}, r"alpha in \[0, 1\]"),
        ({"capacity": 100, "alpha": -0.1}, r"alpha in \[0, 1\]"),
        ({"capacity": 100, "alpha": float("nan")}, r"alpha in \[0, 1\]"),
        ({"capacity": 100, "window": 0}, "window .* int >= 1"),
        ({"capacity": 100, "window": 2.5}, "window .* int >= 1"),
        ({"capacity": 100, "promote_after": 0}, "promote_after .* int >= 1"),
        ({"capacity": 100, "step": 0.0}, r"step in \(0, 1\]"),
        ({"capacity": 100, "step": 2.0}, r"step in \[0, 1\]"),
        ({"capacity": 100, "tail": 1.0}, r"tail in \[0, 1\)"),
        ({"capacity": 100, "tail": 0.0}, r"tail in \(0, 1\)"),
        ({"capacity": 100, "alpha_min": 0.8, "alpha_max": 0.2}, "alpha_min <= alpha_max"),
        ({"capacity": 100, "ewma": 0.0}, r"ewma .* in \(0, 1\]"),
        ({"capacity": 100, "decode_ms": -5}, "decode_ms as a finite number"),
    ],
)
def test_nonsense_parameters_fail_at_construction(kwargs, message):
    capacity = kwargs.pop("capacity")
    with pytest.raises(ValueError, match=message):
        DualFormatCache(capacity, **kwargs)


def test_bad_sizes_and_values_are_refused():
    cache = DualFormatCache(1000)
    with pytest.raises(ValueError, match="object size"):
        cache.put_latent("a", b"x", -3)
    with pytest.raises(ValueError, match="Got None instead"):
        cache.put_latent("a", None, 10)
    with pytest.raises(ValueError, match="one per request"):
        cache.replay([1, 2, 3], [10, 10], [1, 1, 1])


@settings(max_examples=60, deadline=None)
@given(
    ids=st.lists(st.integers(0, 30), min_size=1, max_size=400),
    capacity=st.integers(0, 3000),
    alpha=st.floats(0, 1),
    adaptive=st.booleans(),
    window=st.integers(1, 50),
    promote_after=st.integers(1, 4),
    tail=st.sampled_from([0.05, 0.1, 0.3]),
    seed=st.integers(0, 2**16),
    promotion=st.sampled_from(["cost", "count"]),
    decode_ms=st.sampled_from([3.0, 32.6, 400.0]),
)
def test_replay_is_identical_to_access(
    ids, capacity, alpha, adaptive, window, promote_after, tail, seed, promotion, decode_ms
):
    rng = random.Random(seed)
    sizes = {k: (rng.randint(1, 400), rng.randint(1, 100)) for k in range(31)}
    isz = [sizes[k][0] for k in ids]
    lsz = [sizes[k][1] for k in ids]
    kw = dict(alpha=alpha, adaptive=adaptive, window=window, promote_after=promote_after, tail=tail, step=0.1,
              promotion=promotion, decode_ms=decode_ms)
    batch, single = DualFormatCache(capacity, **kw), DualFormatCache(capacity, **kw)
    result = batch.replay(np.asarray(ids), np.asarray(isz), np.asarray(lsz))
    outcomes = [single.access(k, a, b) for k, a, b in zip(ids, isz, lsz, strict=True)]
    assert batch.stats() == single.stats()
    assert [(k, a) for k, a in result.alpha_trajectory if k > 0] == [
        (k, a) for k, a in single.alpha_trajectory if k > 0
    ]
    for tier in ("_img", "_lat"):
        b, s = getattr(batch, tier), getattr(single, tier)
        assert list(b.main.items()) == list(s.main.items())
        assert list(b.tail.items()) == list(s.tail.items())
        assert (b.main_bytes, b.tail_bytes) == (s.main_bytes, s.tail_bytes)
    assert (result.image_hits, result.latent_hits, result.misses) == (
        outcomes.count(IMAGE_HIT),
        outcomes.count(LATENT_HIT),
        outcomes.count(MISS),
    )


def test_replay_result_latency_uses_the_cost_model():
    cache = DualFormatCache(10_000, adaptive=False, promote_after=1, promotion="count")
    result = cache.replay(["a", "a", "a", "b"], [1000] * 4, [100] * 4)  # miss, latent hit, image hit, miss
    cost = CostModel(image_hit_ms=10, decode_ms=20, fetch_ms=100)
    assert result.mean_latency_ms(cost) == pytest.approx((10 + 30 + 130 + 130) / 4)
    assert result.as_dict(cost)["miss_ratio"] == 0.5


def test_image_only_matches_the_plain_lru_baseline():
    ids = _zipf_ids(20_000, 3000, 1.1, seed=5)
    sizes = np.random.default_rng(6).integers(500, 1500, 3000)[ids]
    a = DualFormatCache.image_only(200_000).replay(ids, sizes, sizes // 5)
    b = LRUImageCache(200_000).replay(ids, sizes, sizes // 5)
    assert (a.image_hits, a.misses) == (b.image_hits, b.misses)
    assert a.image_hits > 0


def test_threads_hammering_one_cache_keep_invariants():
    cache = DualFormatCache(50_000, window=200, promote_after=2)
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(3000):
                k = int(rng.paretovariate(1.0)) % 300
                if cache.get_image(k) is not None:
                    continue
                if cache.get_latent(k) is None:
                    cache.put_latent(k, b"L%d" % k, 200)
                cache.record_decode_ms(rng.uniform(20, 40))
                cache.offer_image(k, b"I%d" % k, 1000)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    s = cache.stats()
    assert s["requests"] == 6 * 3000 == s["image_hits"] + s["latent_hits"] + s["misses"]
    assert s["image_bytes"] <= s["image_capacity"] and s["latent_bytes"] <= s["latent_capacity"]
    assert s["image_bytes"] + s["latent_bytes"] <= s["capacity"]
    img = set(cache._img.main) | set(cache._img.tail)
    lat = set(cache._lat.main) | set(cache._lat.tail)
    assert not img & lat
    assert set(cache._ivals) == img and set(cache._lvals) == lat
    assert all(cache._ivals[k] == b"I%d" % k for k in img)
    assert 20 <= s["decode_ms"] <= 40


def test_peek_changes_nothing():
    cache = DualFormatCache(10_000, adaptive=False, promote_after=1, promotion="count")
    cache.put_latent("a", b"L", 100)
    cache.get_latent("a")
    cache.offer_image("a", b"I", 1000)
    cache.put_latent("b", b"LB", 100)
    before = cache.stats()
    order = list(cache._img.main)
    assert cache.peek_image("a") == b"I" and cache.peek_latent("b") == b"LB"
    assert cache.peek_image("b") is None and cache.peek_latent("a") is None and cache.peek_image("zz") is None
    assert cache.stats() == before and list(cache._img.main) == order


PAPER_IMAGE, PAPER_LATENT = 1_450_000, 300_000  # bytes: the paper's PNG and latent sizes (the default costs' sizes)


@pytest.mark.parametrize("p", [1, 2, 3, 4])
def test_priced_promotion_is_p_latent_hits_at_the_papers_costs(p):
    """At the paper's costs and sizes the priced rule promotes exactly where the count rule does."""
    priced = DualFormatCache(10**8, adaptive=False, promote_after=p)
    counted = DualFormatCache(10**8, adaptive=False, promote_after=p, promotion="count")
    for cache in (priced, counted):
        assert cache.access("a", PAPER_IMAGE, PAPER_LATENT) == MISS
        for _ in range(p - 1):
            assert cache.access("a", PAPER_IMAGE, PAPER_LATENT) == LATENT_HIT
            assert cache.where("a") == "latent"
        assert cache.access("a", PAPER_IMAGE, PAPER_LATENT) == LATENT_HIT  # the P-th latent hit promotes
        assert cache.where("a") == "image"
        assert cache.stats()["image_bytes"] == PAPER_IMAGE + PAPER_LATENT  # it carries its latent
    assert [priced.promotion_due(h, PAPER_IMAGE, PAPER_LATENT) for h in range(6)] == [h >= p for h in range(6)]


def _worker_read(cache: DualFormatCache, image_id: str, decode_ms: float, fetch_ms: float = 20.0) -> str:
    """One read through the cache as the worker plugin does it; returns the outcome."""
    key = (image_id, "png")
    if cache.get_image(key) is not None:
        return "image"
    latent = cache.get_latent(image_id)
    outcome = "latent" if latent is not None else "miss"
    cache.record_decode_ms(decode_ms)
    if latent is None:
        cache.record_fetch_ms(fetch_ms)
        cache.put_latent(image_id, b"L" * 64, PAPER_LATENT)
    cache.offer_image(key, b"I" * 64, PAPER_IMAGE, latent_id=image_id)
    return outcome


def test_second_read_after_a_slow_decode_is_an_image_hit():
    """A decode of over a second (a CPU) is worth more than the image's bytes: the first read keeps the image."""
    slow = DualFormatCache(20 * PAPER_IMAGE, window=1000)
    assert [_worker_read(slow, "a", decode_ms=1_100.0) for _ in range(2)] == ["miss", "image"]
    assert slow.stats()["promotions"] == 1
    # and with the default fetch estimate (no fetch recorded yet) too
    fresh = DualFormatCache(20 * PAPER_IMAGE, window=1000)
    fresh.record_decode_ms(1_100.0)
    assert fresh.promotion_due(0, PAPER_IMAGE, PAPER_LATENT)
    # a GPU-fast decode keeps the latent for P latent hits first
    fast = DualFormatCache(20 * PAPER_IMAGE, window=1000)
    assert [_worker_read(fast, "a", decode_ms=30.0, fetch_ms=150.0) for _ in range(5)] == [
        "miss", "latent", "latent", "latent", "image"
    ]


def test_an_image_whose_decode_dwarfs_the_fetch_leaves_its_latent_behind():
    """With d >> f a demoted latent saves little (f of d + f) for its bytes: the promoted image goes alone."""
    cache = DualFormatCache(2 * PAPER_IMAGE, alpha=0.5, adaptive=False, decode_ms=1_200.0, fetch_ms=150.0)
    assert cache.access("a", PAPER_IMAGE, PAPER_LATENT) == MISS  # promoted at the miss, without its latent
    assert cache.where("a") == "image" and cache.stats()["image_bytes"] == PAPER_IMAGE
    assert cache.access("b", PAPER_IMAGE, PAPER_LATENT) == MISS  # evicts "a": nothing to demote
    assert cache.where("a") is None and cache.stats()["demotions"] == 0
    assert cache.access("a", PAPER_IMAGE, PAPER_LATENT) == MISS
    # at the paper's costs the image keeps its latent, and an evicted image demotes it
    paper = DualFormatCache(4 * PAPER_IMAGE, alpha=0.5, adaptive=False, promote_after=1)
    for k in ("a", "a", "b", "b"):
        paper.access(k, PAPER_IMAGE, PAPER_LATENT)
    assert paper.where("a") == "latent" and paper.stats()["demotions"] == 1


def test_unknown_promotion_rule_says_so():
    with pytest.raises(ValueError, match="Expected promotion in"):
        DualFormatCache(1000, promotion="lru")


def test_the_tail_covers_at_least_one_tuning_step():
    """A small image tier's tail is one step of the whole budget, not 10% of the tier (which may hold no object)."""
    cache = DualFormatCache(100_000, alpha=0.1, step=0.05)
    assert cache._img.tail_capacity == 5_000 and cache._lat.tail_capacity == 9_000
