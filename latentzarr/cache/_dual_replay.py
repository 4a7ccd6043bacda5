"""The batch twin of :meth:`DualFormatCache._access`: the same algorithm with its hot loop inlined.

Python spends most of a cache simulation on attribute look-ups and calls, so this loop binds every dictionary,
method and counter to a local variable, runs one tuning window at a time, and writes the state back before the
tuner runs. It must stay step-for-step identical to ``DualFormatCache._access`` (same promotion, slide and
eviction order); ``tests/test_cache_dual.py`` replays random traces both ways and compares every counter and
the exact tier contents.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from latentzarr.cache.dual import DualFormatCache


def replay_dual(cache: DualFormatCache, ids: list[Hashable], isz: list[int], lsz: list[int]) -> list[tuple[int, float]]:
    """Replay a trace through ``cache`` (lock held by the caller); return the alpha trajectory of this replay."""
    n = len(ids)
    c = cache._c
    trajectory: list[tuple[int, float]] = [(0, cache._alpha_v)]
    P = cache._promote_after
    by_cost = cache._promotion == "cost"
    window = cache._window
    pos = 0
    while pos < n:
        if cache._w_req >= window:
            cache._end_window()
            trajectory.append((pos, cache._alpha_v))
        take = min(window - cache._w_req, n - pos)
        end = pos + take

        img, lat = cache._img, cache._lat
        im, it, lm, lt = img.main, img.tail, lat.main, lat.tail
        imb, itb, lmb, ltb = img.main_bytes, img.tail_bytes, lat.main_bytes, lat.tail_bytes
        icap, imcap, lcap, lmcap = img.capacity, img.main_capacity, lat.capacity, lat.main_capacity
        im_move, lm_move = im.move_to_end, lm.move_to_end
        im_popitem, it_popitem = im.popitem, it.popitem
        lm_popitem, lt_popitem = lm.popitem, lt.popitem
        # promotion price of this window (the same expression as DualFormatCache._due, so the same floats)
        dd, ff = cache._decode_ms, cache._fetch_ms
        price = cache._promotion_price()
        lhits = cache._lhits
        lhits_get = lhits.get
        ivals, lvals, carried = cache._ivals, cache._lvals, cache._carried
        ih = ith = lh = lth = ms = prom = blk = dem = iins = lins = iev = lev = rej = 0

        for k, si, sl in zip(ids[pos:end], isz[pos:end], lsz[pos:end], strict=True):
            # ---- image tier
            if k in im:
                im_move(k)
                ih += 1
                continue
            if k in it:
                s = it.pop(k)
                itb -= s
                im[k] = s
                imb += s
                ih += 1
                ith += 1
                while imb > imcap and im:
                    k2, s2 = im_popitem(False)
                    imb -= s2
                    it[k2] = s2
                    itb += s2
                continue
            # ---- latent tier
            if k in lm:
                lh += 1
                h = lhits_get(k, 0) + 1
                s = lm[k]
                due = (h + 1) * dd * s >= price * si if by_cost else h >= P
                # the promoted image carries its latent when a demoted latent is worth its bytes (_carry)
                carry = due and (not by_cost or ff * si >= (dd + ff) * s)
                if due and 0 < (si + s if carry else si) <= icap:
                    lm.pop(k)
                    lmb -= s
                    s_lat = s
                    promote = True
                else:
                    if due:
                        blk += 1
                    lm_move(k)
                    lhits[k] = h
                    continue
            elif k in lt:
                lh += 1
                lth += 1
                s = lt.pop(k)
                ltb -= s
                lm[k] = s
                lmb += s
                while lmb > lmcap and lm:
                    k2, s2 = lm_popitem(False)
                    lmb -= s2
                    lt[k2] = s2
                    ltb += s2
                h = lhits_get(k, 0) + 1
                due = (h + 1) * dd * s >= price * si if by_cost else h >= P
                carry = due and (not by_cost or ff * si >= (dd + ff) * s)
                if due and 0 < (si + s if carry else si) <= icap:
                    s_lat = s
                    if k in lm:
                        lmb -= lm.pop(k)
                    else:  # a main segment smaller than the object slid it straight back
                        ltb -= lt.pop(k)
                    promote = True
                else:
                    if due:
                        blk += 1
                    lhits[k] = h
                    continue
            else:
                # ---- miss: admit the latent, else the image, else nothing
                ms += 1
                promote = False
                if 0 < sl <= lcap:
                    lm[k] = sl
                    lmb += sl
                    lins += 1
                    while lmb > lmcap and lm:
                        k2, s2 = lm_popitem(False)
                        lmb -= s2
                        lt[k2] = s2
                        ltb += s2
                    while lmb + ltb > lcap:
                        if lt:
                            k2, s2 = lt_popitem(False)
                            ltb -= s2
                        else:
                            k2, s2 = lm_popitem(False)
                            lmb -= s2
                        lev += 1
                        if lhits:
                            lhits.pop(k2, None)
                        if lvals:
                            lvals.pop(k2, None)
                    # the decoded image is offered at once: promoted at the miss when decodes are expensive
                    if not (by_cost and (0 + 1) * dd * sl >= price * si):
                        continue
                    carry = ff * si >= (dd + ff) * sl
                    if not 0 < (si + sl if carry else si) <= icap:
                        blk += 1
                        continue
                    if k in lm:
                        lmb -= lm.pop(k)
                    else:  # a main segment smaller than the object slid it straight to the tail
                        ltb -= lt.pop(k)
                    s_lat = sl
                    promote = True
                elif not 0 < si <= icap:
                    rej += 1
                    continue
            # ---- insert the image (promotion: it carries its latent; or image-only admission)
            if promote:
                prom += 1
                if lhits:
                    lhits.pop(k, None)
                if lvals:
                    lvals.pop(k, None)
                if carry:
                    carried[k] = (k, None, s_lat)
                    si += s_lat
            iins += 1
            im[k] = si
            imb += si
            while imb > imcap and im:
                k2, s2 = im_popitem(False)
                imb -= s2
                it[k2] = s2
                itb += s2
            while imb + itb > icap:
                if it:
                    k2, s2 = it_popitem(False)
                    itb -= s2
                else:
                    k2, s2 = im_popitem(False)
                    imb -= s2
                iev += 1
                if ivals:
                    ivals.pop(k2, None)
                moved = carried.pop(k2, None) if carried else None
                if moved is None:
                    continue
                # ---- demote the evicted image's latent to the latent tier
                lid, value, s3 = moved
                if lid in lm or lid in lt or lid in im or lid in it or not 0 < s3 <= lcap:
                    continue
                dem += 1
                lins += 1
                lm[lid] = s3
                lmb += s3
                if value is not None:
                    lvals[lid] = value
                while lmb > lmcap and lm:
                    k3, s4 = lm_popitem(False)
                    lmb -= s4
                    lt[k3] = s4
                    ltb += s4
                while lmb + ltb > lcap:
                    if lt:
                        k3, s4 = lt_popitem(False)
                        ltb -= s4
                    else:
                        k3, s4 = lm_popitem(False)
                        lmb -= s4
                    lev += 1
                    if lhits:
                        lhits.pop(k3, None)
                    if lvals:
                        lvals.pop(k3, None)

        img.main_bytes, img.tail_bytes, lat.main_bytes, lat.tail_bytes = imb, itb, lmb, ltb
        c["requests"] += take
        c["image_hits"] += ih
        c["image_tail_hits"] += ith
        c["latent_hits"] += lh
        c["latent_tail_hits"] += lth
        c["misses"] += ms
        c["promotions"] += prom
        c["demotions"] += dem
        c["promotions_blocked"] += blk
        c["image_inserts"] += iins
        c["latent_inserts"] += lins
        c["image_evictions"] += iev
        c["latent_evictions"] += lev
        c["rejected"] += rej
        cache._w_req += take
        pos = end
    return trajectory
