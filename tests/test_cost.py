"""Tests of the long-term cost model (latentzarr.cost), its workflow and the ``latentzarr cost`` command."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from latentzarr.cli import cli
from latentzarr.cost import (
    ARCHIVE,
    IMGSTORE,
    OPTIMISTIC,
    PAPER_FIGURES,
    PUBLISHED,
    PUBLISHED_SOURCES,
    CostInputs,
    Gpu,
    archived_read_share,
    cost_series,
    decode_rate_from_sim,
    headline_ratios,
    latent_name,
    months_until,
    paper_comparison,
)
from latentzarr.cost.report import parse_gpu, parse_setting

ROOT = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------------ the paper's numbers
# Written here by hand from /work/shared/paper-figures.md ("Cost model": Table 5 and the cost section of the
# LatentBox paper) and design.md ("Workload facts from the paper"); not produced by our code.
PAPER_INPUTS = {
    "png_bytes": 1.5e6, "latent_bytes": 0.29e6, "s3_usd_per_gb_month": 0.023, "glacier_usd_per_gb_month": 0.004,
    "glacier_after_years": 5, "glacier_usd_per_gb": 0.01, "glacier_usd_per_request": 0.0001,
    "h100_usd_per_hour": 2.50, "rtx5090_usd_per_hour": 0.69, "decode_ms": 40.0, "decode_trigger_rate": 0.632,
    "views_per_image_per_year": 10.2, "new_images_per_month": 3.76e6, "images": 92.3e6, "requests": 2.07e9,
    "trace_months": 35, "trace_end": "March 2026", "working_set_cagr": 0.127,
}
# The paper's results: cumulative cost normalised so that ImgStore at trace end (35 months) = 1, and its savings.
H100, RTX5090 = latent_name("H100"), latent_name("RTX 5090")
PAPER_RESULTS = {  # key: (value, scenario, horizon, prices, measure)
    "trace/RTX 5090": (0.40, RTX5090, "trace", "constant", "normalised"),
    "trace/H100": (0.91, H100, "trace", "constant", "normalised"),
    "2050/ImgStore": (164.0, IMGSTORE, "2050", "constant", "normalised"),
    "2050/ImgStore+archive": (79.0, ARCHIVE, "2050", "constant", "normalised"),
    "2050/RTX 5090": (49.0, RTX5090, "2050", "constant", "normalised"),
    "2050/H100": (88.0, H100, "2050", "constant", "normalised"),
    "2050 optimistic/ImgStore": (40.0, IMGSTORE, "2050", "optimistic", "normalised"),
    "2050 optimistic/ImgStore+archive": (27.0, ARCHIVE, "2050", "optimistic", "normalised"),
    "2050 optimistic/RTX 5090": (9.7, RTX5090, "2050", "optimistic", "normalised"),
    "2050/RTX 5090 saving vs ImgStore": (0.70, RTX5090, "2050", "constant", "saving_vs_imgstore"),
    "2050/RTX 5090 saving vs archive": (0.39, RTX5090, "2050", "constant", "saving_vs_archive"),
    "2050/H100 saving vs ImgStore": (0.46, H100, "2050", "constant", "saving_vs_imgstore"),
    "2050 optimistic/RTX 5090 saving vs ImgStore": (0.75, RTX5090, "2050", "optimistic", "saving_vs_imgstore"),
    "2050 optimistic/RTX 5090 saving vs archive": (0.64, RTX5090, "2050", "optimistic", "saving_vs_archive"),
}

# Figures that do not reproduce within 10% with the paper's inputs, and why (BENCHMARKS.md, "Cost model").
GLACIER_RETRIEVAL = (
    "Glacier IR retrieval: at constant prices the paper's 79 leaves no room for retrieval fees (our storage alone "
    "is 82.6), at falling prices its 27 needs about 5 units of them; no age-decay law gives both. Ours, derived "
    "from the trace facts (the synthetic traces' Lomax law, exponent 0.32; the paper's fitted model is not "
    "published), sends 5.8% of reads to images over 5 years old and matches the falling-price figure "
    "(BENCHMARKS.md, 'Cost model')"
)
LATENT_SHARE = (
    "latent storage share: both pairs of the paper's H100 / RTX 5090 figures (35 months, 2050) imply latent/PNG "
    "storage of about 0.207 (0.29 MB over 1.4 MB, Table 3's lower PNG size), where its Table 5 inputs give "
    "0.29/1.5 = 0.193; this storage-dominated figure comes out 10.6% low (BENCHMARKS.md, 'Cost model')"
)
NOT_REPRODUCED = {
    "2050/ImgStore+archive": GLACIER_RETRIEVAL,
    "2050/RTX 5090 saving vs archive": GLACIER_RETRIEVAL,
    "2050 optimistic/RTX 5090": LATENT_SHARE,
}


def _ours(scenario: str, horizon: str, prices: str, measure: str) -> float:
    """Our value of one paper figure, computed from cost_series directly (not through paper_comparison)."""
    inputs = OPTIMISTIC if prices == "optimistic" else PUBLISHED
    months = PAPER_INPUTS["trace_months"] if horizon == "trace" else months_until(inputs, 2050)
    s = cost_series(inputs, months)
    if measure == "normalised":
        return s.total(scenario) / cost_series(PUBLISHED, PAPER_INPUTS["trace_months"]).total(IMGSTORE)
    other = IMGSTORE if measure == "saving_vs_imgstore" else ARCHIVE
    return 1 - s.total(scenario) / s.total(other)


# ------------------------------------------------------------------------------------------ the paper's inputs
def test_published_inputs_are_the_papers() -> None:
    p = PAPER_INPUTS
    assert PUBLISHED.image_bytes == p["png_bytes"] and PUBLISHED.latent_bytes == p["latent_bytes"]
    assert PUBLISHED.storage_usd_per_gb_month == p["s3_usd_per_gb_month"]
    assert PUBLISHED.archive_usd_per_gb_month == p["glacier_usd_per_gb_month"]
    assert PUBLISHED.archive_after_months == 12 * p["glacier_after_years"]
    assert PUBLISHED.archive_retrieval_usd_per_gb == p["glacier_usd_per_gb"]
    assert PUBLISHED.archive_retrieval_usd_per_request == p["glacier_usd_per_request"]
    assert PUBLISHED.archive_transition_usd_per_1000 == 0  # not among the paper's inputs
    assert PUBLISHED.gpu("H100") == Gpu("H100", p["h100_usd_per_hour"], p["decode_ms"])
    assert PUBLISHED.gpu("RTX 5090") == Gpu("RTX 5090", p["rtx5090_usd_per_hour"], p["decode_ms"])
    assert PUBLISHED.decode_trigger_rate == p["decode_trigger_rate"]
    assert PUBLISHED.views_per_image_per_year == p["views_per_image_per_year"]
    assert PUBLISHED.working_set_cagr == p["working_set_cagr"] and PUBLISHED.working_set_cagr_until_year == 2050
    assert PUBLISHED.trace_end_year == 2026 + 3 / 12  # end of March 2026
    for name in ("storage_price_decline_per_year", "archive_price_decline_per_year", "gpu_price_decline_per_year"):
        assert getattr(PUBLISHED, name) == 0.0
    # the paper's optimistic scenario: GPU -20%/yr, storage -10%/yr from 2026
    expected = PUBLISHED.replace(gpu_price_decline_per_year=0.2, storage_price_decline_per_year=0.1,
                                 archive_price_decline_per_year=0.1)
    assert expected == OPTIMISTIC
    assert OPTIMISTIC.price_decline_from_year == 2026.0


def test_paper_figures_are_the_papers() -> None:
    assert set(PAPER_FIGURES) == set(PAPER_RESULTS)
    for key, (value, scenario, horizon, prices, measure) in PAPER_RESULTS.items():
        fig = PAPER_FIGURES[key]
        assert (fig["value"], fig["scenario"], fig["horizon"], fig["prices"], fig["measure"]) == (
            value, scenario, horizon, prices, measure), key
        assert "paper-figures.md" in fig["source"]


def test_every_input_says_where_it_comes_from() -> None:
    """A new CostInputs field needs its source in PUBLISHED_SOURCES (the cost notebook tabulates them)."""
    assert set(PUBLISHED.to_dict()) == set(PUBLISHED_SOURCES)
    assert all(isinstance(text, str) and text for text in PUBLISHED_SOURCES.values())
    assert not [k for k, s in PUBLISHED_SOURCES.items() if "DEFAULT" in s]  # no stand-ins left
    for name in ("image_bytes", "latent_bytes", "storage_usd_per_gb_month", "archive_usd_per_gb_month",
                 "archive_retrieval_usd_per_gb", "archive_retrieval_usd_per_request", "archive_after_months",
                 "decode_trigger_rate", "gpus", "views_per_image_per_year", "trace_end_year", "working_set_cagr"):
        assert "paper-figures.md" in PUBLISHED_SOURCES[name], name


def test_age_decay_is_the_synthetic_traces_law() -> None:
    # the read-decay inputs are the decay law the synthetic traces fit to the published re-access facts
    from latentzarr.traces.synth import SynthParams

    assert PUBLISHED.read_decay_scale_days == SynthParams().decay_scale_days
    assert PUBLISHED.read_decay_exponent == SynthParams().decay_exponent


def test_published_workload_matches_the_paper() -> None:
    s = cost_series(PUBLISHED)
    assert s.months == PAPER_INPUTS["trace_months"]
    assert s.catalogue[-1] == pytest.approx(PAPER_INPUTS["images"], rel=1e-6)
    assert s.catalogue[-1] - s.catalogue[-2] == pytest.approx(PAPER_INPUTS["new_images_per_month"], rel=1e-6)
    assert s.requests.sum() == pytest.approx(PAPER_INPUTS["requests"], rel=1e-9)
    assert np.all(np.diff(s.catalogue) > 0)
    # after the trace: 3.76 M new images a month and 10.2 views per image per year, to the end of 2050
    months = months_until(PUBLISHED, 2050)
    assert months == 35 + 9 + 24 * 12  # April-December 2026, then 2027-2050
    long = cost_series(PUBLISHED, months)
    np.testing.assert_allclose(np.diff(long.catalogue[34:]), PAPER_INPUTS["new_images_per_month"])
    np.testing.assert_allclose(long.requests[35:], long.catalogue[35:] * 10.2 / 12)
    # ... and the cumulative working set (stored bytes) grows at the paper's 12.7% CAGR to the end of 2050
    years = (months - 35) / 12
    assert (long.image_store_bytes[-1] / long.image_store_bytes[34]) ** (1 / years) - 1 == pytest.approx(
        PAPER_INPUTS["working_set_cagr"], abs=1e-6)
    assert long.image_store_bytes[34] == pytest.approx(PAPER_INPUTS["images"] * PAPER_INPUTS["png_bytes"])
    assert np.all(long.archived_reads[:60] == 0)  # nothing is 5 years old yet
    assert 0 < long.archived_reads[-1] < long.requests[-1]


# ------------------------------------------------------------------------------------------ against the paper
@pytest.mark.parametrize(
    "key",
    [pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=NOT_REPRODUCED[k])) if k in NOT_REPRODUCED else k
     for k in PAPER_RESULTS],
)
def test_paper_figure_within_10pct(key: str) -> None:
    """Our model on the paper's inputs against the paper's published result, within 10% (the bar)."""
    paper, *how = PAPER_RESULTS[key]
    ours = _ours(*how)
    assert abs(ours - paper) <= 0.10 * paper, f"{key}: ours {ours:.4g}, paper {paper:g}"


def test_paper_comparison_reports_what_the_model_gives() -> None:
    rows = paper_comparison()
    assert [r["figure"] for r in rows] == list(PAPER_RESULTS)
    for r in rows:
        paper, *how = PAPER_RESULTS[r["figure"]]
        assert r["paper"] == paper
        assert r["ours"] == pytest.approx(_ours(*how), rel=1e-12)
        assert r["relative_error"] == pytest.approx((r["ours"] - paper) / paper)
        assert r["within_10pct"] == (abs(r["ours"] - paper) <= 0.1 * paper)
    assert {r["figure"] for r in rows if not r["within_10pct"]} == set(NOT_REPRODUCED)


# ------------------------------------------------------------------------------------------ hand-computed costs
def test_one_month_costs_by_hand() -> None:
    # 1e6 images of 2 MB = 2e12 B = 2000 GB at $0.02/GB-month = $40
    # latents 0.5 MB: 500 GB = $10; 1e7 requests, 30% decode, 50 ms at $3.60/h: 3e6 * 50 ms = 41.667 h = $150
    x = CostInputs(
        trace_months=1, images_at_trace_end=1e6, new_images_per_month_at_trace_end=5e5, requests_per_month=1e7,
        image_bytes=2e6, latent_bytes=5e5, storage_usd_per_gb_month=0.02, decode_trigger_rate=0.3,
        archive_after_months=1, gpus=(Gpu("g", 3.6, 50.0),),
    )
    s = cost_series(x)
    assert s.total(IMGSTORE) == pytest.approx(40.0)
    assert s.total(ARCHIVE) == pytest.approx(40.0)  # nothing is a month old yet
    assert s.total(latent_name("g")) == pytest.approx(10.0 + 150.0)


def test_archive_costs_by_hand() -> None:
    # two months; month 1 births b1, month 2 births b2 with b2 = 2 * b1 (geometric growth: q = 2), b1 + b2 = 3e6.
    # Age decay with scale = one month and exponent 1: S(m) = 1 / (1 + m), so images aged 0 months weigh
    # 1 - 1/2 = 1/2 and those aged 1 month 1/2 - 1/3 = 1/6; in month 2 the archived (1 month old) b1 images draw
    # b1/6 / (b1/6 + b2/2) = 1/7 of the reads.
    x = CostInputs(
        trace_months=2, images_at_trace_end=3e6, new_images_per_month_at_trace_end=2e6, requests_per_month=7e5,
        image_bytes=1e9, latent_bytes=1e8, storage_usd_per_gb_month=0.02, archive_usd_per_gb_month=0.005,
        archive_retrieval_usd_per_gb=0.01, archive_retrieval_usd_per_request=0.001,
        archive_transition_usd_per_1000=0.05, archive_after_months=1, read_decay_scale_days=365.25 / 12,
        read_decay_exponent=1.0, decode_trigger_rate=0.0,
    )
    s = cost_series(x)
    assert s.catalogue == pytest.approx([1e6, 3e6])
    assert s.archived_reads == pytest.approx([0.0, 1e5])
    month1 = 1e6 * 0.02
    # month 2: 2e6 GB standard, 1e6 GB archive, 1e6 transitions, 1e5 retrievals of 1 GB at $0.01/GB + $0.001 each
    month2 = 2e6 * 0.02 + 1e6 * 0.005 + 1e6 / 1000 * 0.05 + 1e5 * (0.01 + 0.001)
    assert s.monthly[ARCHIVE] == pytest.approx([month1, month2])
    assert s.monthly[IMGSTORE] == pytest.approx([1e6 * 0.02, 3e6 * 0.02])


def test_archived_read_share_by_hand() -> None:
    x = PUBLISHED.replace(archive_after_months=2, read_decay_scale_days=365.25 / 12, read_decay_exponent=1.0)
    # equal births; weights by age 0, 1, 2, 3 months: 1/2, 1/6, 1/12, 1/20 (S(m) = 1 / (1 + m))
    share = archived_read_share(x, np.ones(4))
    w = [1 / 2, 1 / 6, 1 / 12, 1 / 20]
    assert share == pytest.approx([0, 0, w[2] / sum(w[:3]), (w[2] + w[3]) / sum(w)])
    assert archived_read_share(x, np.zeros(3)) == pytest.approx([0, 0, 0])  # no images, no reads to share


def test_bytes_per_image_grow_after_the_trace() -> None:
    # the working-set CAGR grows the bytes of each new image geometrically; the image count and reads do not change
    steady = PUBLISHED.replace(working_set_cagr=None)
    assert steady.bytes_growth_per_year() == 0.0
    g = PUBLISHED.bytes_growth_per_year()
    assert 0 < g < PUBLISHED.working_set_cagr
    a, b = cost_series(steady, 120), cost_series(PUBLISHED, 120)
    np.testing.assert_array_equal(a.catalogue, b.catalogue)
    np.testing.assert_array_equal(a.requests, b.requests)
    np.testing.assert_allclose(a.image_store_bytes, a.catalogue * PUBLISHED.image_bytes)
    new_bytes = np.diff(b.image_store_bytes) / np.diff(b.catalogue)  # bytes per image born in months 2..120
    np.testing.assert_allclose(new_bytes[:34], PUBLISHED.image_bytes)
    np.testing.assert_allclose(new_bytes[34:], PUBLISHED.image_bytes * (1 + g) ** (np.arange(1, 86) / 12))
    np.testing.assert_allclose(b.monthly[IMGSTORE], b.image_store_bytes / 1e9 * PUBLISHED.storage_usd_per_gb_month)
    for gpu in PUBLISHED.gpus:  # the GPU time follows the reads, not the bytes
        np.testing.assert_allclose(b.parts[latent_name(gpu)]["gpu"], a.parts[latent_name(gpu)]["gpu"])


def test_months_until_end_of_2050() -> None:
    assert months_until(PUBLISHED.replace(trace_end_year=2026.0), 2050) == 35 + 25 * 12
    assert months_until(PUBLISHED.replace(trace_end_year=2026.0), 2025) == 35


def test_price_declines_start_in_2026() -> None:
    x = PUBLISHED.replace(storage_price_decline_per_year=0.1)
    base, cheaper = cost_series(PUBLISHED, 60), cost_series(x, 60)
    factor = cheaper.monthly[IMGSTORE] / base.monthly[IMGSTORE]
    # month 33 starts on 1 January 2026 (month 35 ends with March 2026): constant until then, then -10% a year
    np.testing.assert_allclose(factor[:33], 1.0)
    np.testing.assert_allclose(factor[33:], 0.9 ** (np.arange(1, 28) / 12))


# ------------------------------------------------------------------------------------------ behaviour
def test_higher_gpu_price_costs_more() -> None:
    cheap = PUBLISHED.replace(gpus=(Gpu("g", 0.5, 50.0),))
    dear = PUBLISHED.replace(gpus=(Gpu("g", 1.0, 50.0),))
    a, b = cost_series(cheap, 120), cost_series(dear, 120)
    assert np.all(b.cumulative[latent_name("g")] > a.cumulative[latent_name("g")])
    assert b.total(IMGSTORE) == a.total(IMGSTORE)


def test_more_decodes_cost_more_and_zero_decodes_is_storage_only() -> None:
    totals = [cost_series(PUBLISHED.replace(decode_trigger_rate=r)).total(latent_name("H100")) for r in (0, 0.3, 1)]
    assert totals[0] < totals[1] < totals[2]
    s = cost_series(PUBLISHED.replace(decode_trigger_rate=0.0), 60)
    for g in PUBLISHED.gpus:
        name = latent_name(g)
        assert np.all(s.parts[name]["gpu"] == 0)
        ratio = PUBLISHED.latent_bytes / PUBLISHED.image_bytes
        np.testing.assert_allclose(s.monthly[name], s.monthly[IMGSTORE] * ratio)


def test_archive_never_above_imgstore_when_retrieval_is_free() -> None:
    for after in (0, 1, 6, 40):
        x = PUBLISHED.replace(archive_after_months=after, archive_retrieval_usd_per_gb=0.0,
                              archive_retrieval_usd_per_request=0.0, archive_transition_usd_per_1000=0.0,
                              catalogue_growth_per_year=0.3)
        s = cost_series(x, 200)
        assert np.all(s.monthly[ARCHIVE] <= s.monthly[IMGSTORE] * (1 + 1e-12))
    # archiving everything at the standard price costs exactly the same
    same = cost_series(PUBLISHED.replace(archive_usd_per_gb_month=PUBLISHED.storage_usd_per_gb_month,
                                         archive_retrieval_usd_per_gb=0.0, archive_retrieval_usd_per_request=0.0))
    np.testing.assert_allclose(same.monthly[ARCHIVE], same.monthly[IMGSTORE])


def test_faster_read_decay_sends_fewer_reads_to_the_archive() -> None:
    months = months_until(PUBLISHED, 2050)
    slow = cost_series(PUBLISHED, months)
    fast = cost_series(PUBLISHED.replace(read_decay_exponent=1.0), months)
    assert fast.archived_reads.sum() < slow.archived_reads.sum()
    assert fast.total(ARCHIVE) < slow.total(ARCHIVE)
    assert fast.total(IMGSTORE) == slow.total(IMGSTORE)


def test_price_declines_lower_costs_and_cumulative_is_monotone() -> None:
    base = cost_series(PUBLISHED, 300)
    cheaper = cost_series(OPTIMISTIC, 300)
    for name in base.scenarios:
        assert np.all(np.diff(base.cumulative[name]) >= 0)
        assert cheaper.total(name) < base.total(name)
        assert cheaper.monthly[name][0] == pytest.approx(base.monthly[name][0])  # the trace's prices are constant


def test_storage_dominates_in_the_long_run_when_reads_stay_flat() -> None:
    # with reads flat after the trace (no views model) the catalogue outgrows them: the saving grows toward the
    # storage reduction and the GPU share falls
    flat = PUBLISHED.replace(views_per_image_per_year=None)
    h = headline_ratios(flat, horizon_year=2050)
    name = latent_name(PUBLISHED.gpus[-1])
    reduction = 1 - PUBLISHED.latent_bytes / PUBLISHED.image_bytes
    assert h["trace_period"]["saving_vs_imgstore"][name] < h["horizon"]["saving_vs_imgstore"][name] < reduction
    assert h["horizon"]["gpu_share"][name] < h["trace_period"]["gpu_share"][name]
    s = cost_series(flat, 100)
    np.testing.assert_allclose(s.requests, PUBLISHED.requests_per_month)


# ------------------------------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"storage_usd_per_gb_month": -0.01}, "storage_usd_per_gb_month >= 0"),
        ({"archive_retrieval_usd_per_gb": -1.0}, "archive_retrieval_usd_per_gb >= 0"),
        ({"archive_retrieval_usd_per_request": -1.0}, "archive_retrieval_usd_per_request >= 0"),
        ({"trace_months": 0}, "trace_months >= 1"),
        ({"trace_months": 2.5}, "whole number of months"),
        ({"decode_trigger_rate": 1.5}, "decode_trigger_rate <= 1"),
        ({"views_per_image_per_year": 0.0}, "views_per_image_per_year > 0"),
        ({"read_decay_exponent": 0.0}, "read_decay_exponent > 0"),
        ({"read_decay_scale_days": -7.0}, "read_decay_scale_days > 0"),
        ({"price_decline_from_year": float("inf")}, "finite number for price_decline_from_year"),
        ({"working_set_cagr": -1.0}, "working_set_cagr > -1"),
        ({"working_set_cagr": -0.5}, "working_set_cagr reachable by growing the bytes per image"),
        ({"working_set_cagr_until_year": 2020.0}, "working_set_cagr_until_year after the trace end"),
        ({"gpu_utilization": 0.0}, "gpu_utilization > 0"),
        ({"gpu_price_decline_per_year": 1.0}, "gpu_price_decline_per_year < 1"),
        ({"image_bytes": 0}, "image_bytes > 0"),
        ({"latent_bytes": float("nan")}, "finite number for latent_bytes"),
        ({"new_images_per_month_at_trace_end": 1e9}, "below images_at_trace_end"),
        ({"gpus": ()}, "non-empty tuple of Gpu"),
        ({"gpus": (Gpu("a", 1, 1), Gpu("a", 2, 2))}, "distinct GPU names"),
    ],
)
def test_bad_inputs_raise(changes: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PUBLISHED.replace(**changes)


def test_bad_gpu_months_and_settings_raise() -> None:
    with pytest.raises(ValueError, match="usd_per_hour >= 0"):
        Gpu("x", -1.0, 30.0)
    with pytest.raises(ValueError, match="decode_ms > 0"):
        Gpu("x", 1.0, 0.0)
    for months in (0, -3, 1.5):
        with pytest.raises(ValueError, match="months to be a whole number >= 1"):
            cost_series(PUBLISHED, months)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_setting("storage")
    with pytest.raises(ValueError, match="CostInputs field"):
        parse_setting("nope=1")
    assert parse_setting("working_set_cagr=none") == ("working_set_cagr", None)
    assert parse_setting("views_per_image_per_year=None") == ("views_per_image_per_year", None)
    with pytest.raises(ValueError, match="only views_per_image_per_year, working_set_cagr take 'none'"):
        parse_setting("decode_trigger_rate=none")
    with pytest.raises(ValueError, match="NAME:USD_PER_HOUR:DECODE_MS"):
        parse_gpu("H100:2")
    assert parse_gpu("RTX 4090:0.34:67") == Gpu("RTX 4090", 0.34, 67.0)
    with pytest.raises(ValueError, match="one of the GPU names"):
        PUBLISHED.gpu("TPU")


# ------------------------------------------------------------------------------------------ measured inputs
def test_from_measurements_with_a_real_store_and_simulation(tmp_path: Path, taef2_latents: np.ndarray,
                                                            sample_images_256: dict[str, np.ndarray]) -> None:
    from latentzarr.sim import Workload, simulate
    from latentzarr.store import LatentStore
    from latentzarr.traces import synth_trace

    pngs = []
    for img in sample_images_256.values():
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG", optimize=True)
        pngs.append(len(buf.getvalue()))
    store = LatentStore.create(tmp_path / "s.zarr", shard_images=4)
    ids = [f"p{i}" for i in range(len(taef2_latents))]
    store.put(ids, taef2_latents.astype(np.float16), model="taef2", source_bytes=pngs)
    info = store.info()

    workload = Workload.from_trace(synth_trace(20_000, seed=3))
    doc = simulate(workload, fractions=[0.01], configs=["image-only", "adaptive"])
    rate = decode_rate_from_sim(doc, "adaptive", 0.01)
    adaptive = next(r for r in doc["results"] if r["config"] == "adaptive")
    assert rate == pytest.approx(adaptive["latent_hit_ratio"] + adaptive["miss_ratio"])

    x = CostInputs.from_measurements(store_info=info, sim_doc=doc, sim_cache_fraction=0.01,
                                     gpu_decode_ms={"RTX 5090": 80.0})
    assert x.latent_bytes == pytest.approx(info["stored_bytes"] / len(ids))
    assert x.image_bytes == pytest.approx(sum(pngs) / len(pngs))
    assert x.decode_trigger_rate == pytest.approx(rate)
    assert x.gpu("RTX 5090").decode_ms == 80.0 and x.gpu("H100") == PUBLISHED.gpu("H100")
    assert x.storage_usd_per_gb_month == PUBLISHED.storage_usd_per_gb_month
    with pytest.raises(ValueError, match="exactly one 'adaptive' result"):
        decode_rate_from_sim(doc, "adaptive", 0.05)
    with pytest.raises(ValueError, match="GPU names"):
        CostInputs.from_measurements(gpu_decode_ms={"TPU": 1.0})


# ------------------------------------------------------------------------------------------ workflow and CLI
def test_workflow_writes_json_and_png(tmp_path: Path) -> None:
    out, png = tmp_path / "cost.json", tmp_path / "plots" / "cumulative.png"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "workflows" / "cost_model.py"), "--json", str(out), "--plot", str(png),
         "--decode-trigger-rate", "0.25", "--latent-bytes", "500000"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    rows = {r["figure"]: r for r in doc["published"]["paper_comparison"]}
    assert {k: r["paper"] for k, r in rows.items()} == {k: v[0] for k, v in PAPER_RESULTS.items()}
    # the printed table has the paper's figure and ours side by side, as in the JSON
    for key in ("trace/RTX 5090", "2050/ImgStore", "2050 optimistic/RTX 5090"):
        m = re.search(rf"^{re.escape(key)}\s+([\d.]+)\s+([\d.]+)\s+([+-][\d.]+)%\s+(yes|NO)$", proc.stdout, re.M)
        assert m is not None, proc.stdout
        assert float(m.group(1)) == rows[key]["paper"]
        assert float(m.group(2)) == pytest.approx(rows[key]["ours"], rel=0.01)
        assert (m.group(4) == "yes") == rows[key]["within_10pct"]
    assert doc["measured"]["inputs"]["decode_trigger_rate"] == 0.25
    assert doc["measured"]["inputs"]["latent_bytes"] == 500000
    assert doc["published"]["headline"]["horizon"]["months"] == months_until(PUBLISHED, 2050)
    for p in (png, png.with_name("cumulative_measured.png")):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(p) as im:
            assert im.size[0] > 600
    bad = subprocess.run([sys.executable, str(ROOT / "workflows" / "cost_model.py"), "--set",
                          "storage_usd_per_gb_month=-1"], capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2 and "storage_usd_per_gb_month >= 0" in bad.stderr


def test_cli_cost(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["cost", "--help"])
    assert res.exit_code == 0 and "--horizon-year" in res.output
    res = runner.invoke(cli, ["--help"])
    assert " cost " in res.output
    out = tmp_path / "c.json"
    res = runner.invoke(cli, ["cost", "--json", str(out), "--set", "storage_usd_per_gb_month=0.01",
                              "--gpu", "A:1.0:40", "--gpu", "B:0.2:80", "--horizon-year", "2040"])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["published"]["inputs"]["storage_usd_per_gb_month"] == 0.01
    assert [g["name"] for g in doc["published"]["inputs"]["gpus"]] == ["A", "B"]
    assert "Latent-first (B)" in res.output and "to 2040" in res.output
    # the paper's GPUs are gone: their figures have no value of ours, the GPU-free ones still do
    rows = {r["figure"]: r for r in doc["published"]["paper_comparison"]}
    assert rows["trace/RTX 5090"]["ours"] is None and rows["trace/RTX 5090"]["within_10pct"] is None
    assert rows["2050/ImgStore"]["ours"] is not None
    assert re.search(r"^trace/RTX 5090\s+0.4\s+n/a", res.output, re.M)
    res = runner.invoke(cli, ["cost", "--set", "decode_trigger_rate=2"])
    assert res.exit_code == 1 and "decode_trigger_rate <= 1" in res.output
    res = runner.invoke(cli, ["cost"])
    assert res.exit_code == 0
    assert re.search(r"^2050/ImgStore\s+164\s+\d+\s+[+-][\d.]+%\s+(yes|NO)$", res.output, re.M)
