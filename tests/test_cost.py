"""Tests of the long-term cost model (latentzarr.cost), its workflow and the ``latentzarr cost`` command."""

from __future__ import annotations

import io
import json
import math
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
    PUBLISHED,
    PUBLISHED_SOURCES,
    CostInputs,
    Gpu,
    cost_series,
    decode_rate_from_sim,
    headline_ratios,
    implied_decode_trigger_rate,
    latent_name,
    months_until,
)
from latentzarr.cost.report import parse_gpu, parse_setting

ROOT = Path(__file__).resolve().parents[1]

# The paper's figures (LatentBox, arXiv 2605.19385), written here by hand, not produced by our code.
# Trace period: "about 60% cumulative saving over the trace period on a consumer-class GPU price" as issue 6
# summarises the paper's cost section (that section itself could not be read when this was written).
PAPER_SAVING_TRACE_PERIOD_CONSUMER = 0.60
# Workload facts stated by the paper (design.md, "Workload facts from the paper").
PAPER_TRACE_MONTHS = 35
PAPER_REQUESTS = 2.07e9
PAPER_IMAGES = 92.3e6
PAPER_NEW_IMAGES_PER_MONTH_AT_END = 3.76e6
PAPER_STORAGE_REDUCTION = 0.787


# ------------------------------------------------------------------------------------------ published reproduction
def test_published_workload_matches_the_paper() -> None:
    s = cost_series(PUBLISHED)
    assert s.months == PAPER_TRACE_MONTHS
    assert s.catalogue[-1] == pytest.approx(PAPER_IMAGES, rel=1e-6)
    assert s.catalogue[-1] - s.catalogue[-2] == pytest.approx(PAPER_NEW_IMAGES_PER_MONTH_AT_END, rel=1e-6)
    assert s.requests.sum() == pytest.approx(PAPER_REQUESTS, rel=1e-9)
    assert np.all(np.diff(s.catalogue) > 0)
    # latent-first storage alone (no decodes) is the paper's 78.7% below the image store
    zero = cost_series(PUBLISHED.replace(decode_trigger_rate=0.0))
    for g in PUBLISHED.gpus:
        assert 1 - zero.total(latent_name(g)) / zero.total(IMGSTORE) == pytest.approx(PAPER_STORAGE_REDUCTION)


@pytest.mark.xfail(
    strict=True,
    reason="Bar not met: the paper's price and decode-rate inputs were not available, and the documented defaults "
    "(S3 $0.023/GB-month, RTX 4090 $0.34/h, 41.5% of reads decode) give a 67.5% saving, +12.5% off the paper's "
    "'about 60%'. Remove this mark once PUBLISHED holds the paper's own inputs and the test passes.",
)
def test_published_trace_period_saving_within_10pct_of_paper() -> None:
    h = headline_ratios(PUBLISHED)
    ours = h["trace_period"]["saving_vs_imgstore"][latent_name(PUBLISHED.gpus[-1])]
    assert abs(ours - PAPER_SAVING_TRACE_PERIOD_CONSUMER) <= 0.10 * PAPER_SAVING_TRACE_PERIOD_CONSUMER


def test_implied_decode_rate_reproduces_the_paper_saving() -> None:
    gpu = PUBLISHED.gpus[-1].name
    rate = implied_decode_trigger_rate(PUBLISHED, gpu, PAPER_SAVING_TRACE_PERIOD_CONSUMER)
    assert 0.0 < rate < 1.0
    h = headline_ratios(PUBLISHED.replace(decode_trigger_rate=rate))
    assert h["trace_period"]["saving_vs_imgstore"][latent_name(gpu)] == pytest.approx(
        PAPER_SAVING_TRACE_PERIOD_CONSUMER
    )


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
    # two months; month 1 births b1, month 2 births b2 with b2 = 2 * b1 (geometric growth: q = 2), b1 + b2 = 3e6
    x = CostInputs(
        trace_months=2, images_at_trace_end=3e6, new_images_per_month_at_trace_end=2e6, requests_per_month=1e6,
        image_bytes=1e9, latent_bytes=1e8, storage_usd_per_gb_month=0.02, archive_usd_per_gb_month=0.005,
        archive_retrieval_usd_per_gb=0.01, archive_transition_usd_per_1000=0.05, archive_after_months=1,
        archived_request_fraction=0.1, decode_trigger_rate=0.0,
    )
    s = cost_series(x)
    assert s.catalogue == pytest.approx([1e6, 3e6])
    month1 = 1e6 * 0.02
    # month 2: 2e6 GB standard, 1e6 GB archive, 1e6 transitions, 1e5 retrievals of 1 GB
    month2 = 2e6 * 0.02 + 1e6 * 0.005 + 1e6 / 1000 * 0.05 + 1e5 * 0.01
    assert s.monthly[ARCHIVE] == pytest.approx([month1, month2])
    assert s.monthly[IMGSTORE] == pytest.approx([1e6 * 0.02, 3e6 * 0.02])


def test_months_until_end_of_2050() -> None:
    assert months_until(PUBLISHED.replace(trace_end_year=2026.0), 2050) == 35 + 25 * 12
    assert months_until(PUBLISHED.replace(trace_end_year=2026.0), 2025) == 35


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
                              archive_transition_usd_per_1000=0.0, catalogue_growth_per_year=0.3)
        s = cost_series(x, 200)
        assert np.all(s.monthly[ARCHIVE] <= s.monthly[IMGSTORE] * (1 + 1e-12))
    # archiving everything at the standard price costs exactly the same
    same = cost_series(PUBLISHED.replace(archive_usd_per_gb_month=PUBLISHED.storage_usd_per_gb_month,
                                         archive_retrieval_usd_per_gb=0.0, archive_transition_usd_per_1000=0.0))
    np.testing.assert_allclose(same.monthly[ARCHIVE], same.monthly[IMGSTORE])


def test_price_declines_lower_costs_and_cumulative_is_monotone() -> None:
    base = cost_series(PUBLISHED, 300)
    cheaper = cost_series(PUBLISHED.replace(storage_price_decline_per_year=0.1, gpu_price_decline_per_year=0.1), 300)
    for name in base.scenarios:
        assert np.all(np.diff(base.cumulative[name]) >= 0)
        assert cheaper.total(name) < base.total(name)
        assert cheaper.monthly[name][0] == pytest.approx(base.monthly[name][0])  # declines start after month 1


def test_storage_dominates_in_the_long_run() -> None:
    # the catalogue keeps growing while reads stay flat: latent-first's saving grows toward the storage reduction
    h = headline_ratios(PUBLISHED, horizon_year=2050)
    name = latent_name(PUBLISHED.gpus[-1])
    assert h["trace_period"]["saving_vs_imgstore"][name] < h["horizon"]["saving_vs_imgstore"][name] < 0.787
    assert h["horizon"]["gpu_share"][name] < h["trace_period"]["gpu_share"][name]


# ------------------------------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"storage_usd_per_gb_month": -0.01}, "storage_usd_per_gb_month >= 0"),
        ({"archive_retrieval_usd_per_gb": -1.0}, "archive_retrieval_usd_per_gb >= 0"),
        ({"trace_months": 0}, "trace_months >= 1"),
        ({"trace_months": 2.5}, "whole number of months"),
        ({"decode_trigger_rate": 1.5}, "decode_trigger_rate <= 1"),
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
                                     gpu_decode_ms={"RTX 4090": 80.0})
    assert x.latent_bytes == pytest.approx(info["stored_bytes"] / len(ids))
    assert x.image_bytes == pytest.approx(sum(pngs) / len(pngs))
    assert x.decode_trigger_rate == pytest.approx(rate)
    assert x.gpu("RTX 4090").decode_ms == 80.0 and x.gpu("H100") == PUBLISHED.gpu("H100")
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
    assert "saving_trace_period_consumer_gpu" in proc.stdout and "within 10%" in proc.stdout
    doc = json.loads(out.read_text())
    row = doc["published"]["paper_comparison"][0]
    assert row["paper"] == PAPER_SAVING_TRACE_PERIOD_CONSUMER
    assert row["relative_error"] == pytest.approx((row["ours"] - row["paper"]) / row["paper"])
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
    res = runner.invoke(cli, ["cost", "--set", "decode_trigger_rate=2"])
    assert res.exit_code == 1 and "decode_trigger_rate <= 1" in res.output
    assert math.isfinite(doc["published"]["implied_decode_trigger_rate"]["rate"])


def test_every_input_says_where_it_comes_from() -> None:
    """A new CostInputs field needs its source in PUBLISHED_SOURCES (the cost notebook tabulates them)."""
    assert set(PUBLISHED.to_dict()) == set(PUBLISHED_SOURCES)
    assert all(isinstance(text, str) and text for text in PUBLISHED_SOURCES.values())
