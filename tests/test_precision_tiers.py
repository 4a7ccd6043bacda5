"""Precision tiers over time (latentzarr.sim.tiers), the cost model's tiered scenario, and the workflow."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentzarr.cost import PUBLISHED, cost_series, latent_name, tier_name
from latentzarr.cost.model import GB
from latentzarr.sim.tiers import (
    DAY_S,
    MEASURED_512PX,
    MONTH_S,
    TierPolicy,
    assign_samples,
    fidelity_table,
    pass_rate_from_fidelity,
    tier_series,
    tier_series_from_last_access,
)
from latentzarr.traces import synth_trace

ROOT = Path(__file__).parents[1]
LOSSLESS, LOSSY = 200_000.0, 80_000.0


@pytest.fixture(scope="module")
def trace():
    return synth_trace(20_000, seed=3)


@pytest.fixture(scope="module")
def psnr(trace) -> np.ndarray:
    """Per-object PSNRs, about half of them under 50 dB."""
    return np.random.default_rng(1).uniform(45.0, 56.0, size=trace.n_objects)


def policy(days: float, *, pass_rate: float | None = None, repromote: bool = False, threshold: float = 50.0,
           mode: str = "wstep:0.08") -> TierPolicy:
    return TierPolicy(days, mode, threshold, LOSSLESS, LOSSY, pass_rate=pass_rate, repromote=repromote)


def test_never_demoting_changes_nothing(trace, psnr) -> None:
    s = tier_series(trace, policy(math.inf), psnr_db=psnr)
    np.testing.assert_array_equal(s.policy_bytes, s.lossless_bytes)
    assert s.ratio == 1.0 and s.reduction == 0.0
    assert not s.demoted.any() and s.demoted_psnr_min is None
    assert s.lossless_bytes[-1] == trace.n_objects * LOSSLESS


def test_zero_days_demotes_every_passing_object_and_only_those(trace, psnr) -> None:
    s = tier_series(trace, policy(0.0), psnr_db=psnr)
    passing = int((psnr >= 50.0).sum())
    assert 0 < passing < trace.n_objects
    assert s.demoted[-1] == passing
    assert s.policy_bytes[-1] == pytest.approx(trace.n_objects * LOSSLESS - passing * (LOSSLESS - LOSSY))
    assert s.demoted_psnr_min == pytest.approx(psnr[psnr >= 50.0].min())
    assert s.demoted_psnr_min >= 50.0


def test_no_demoted_object_is_under_the_threshold(trace, psnr) -> None:
    for days in (0.0, 7.0, 30.0, 365.0):
        s = tier_series(trace, policy(days), psnr_db=psnr)
        assert s.demoted_psnr_min is None or s.demoted_psnr_min >= 50.0
        assert s.demoted[-1] <= s.n_eligible == (psnr >= 50.0).sum()


def test_zero_pass_rate_or_all_failing_changes_nothing(trace) -> None:
    s = tier_series(trace, policy(0.0, pass_rate=0.0))
    np.testing.assert_array_equal(s.policy_bytes, s.lossless_bytes)
    low = np.full(trace.n_objects, 49.9)
    s = tier_series(trace, policy(0.0), psnr_db=low)
    np.testing.assert_array_equal(s.policy_bytes, s.lossless_bytes)


def test_pass_rate_scales_the_saving(trace) -> None:
    full = tier_series(trace, policy(30.0, pass_rate=1.0))
    half = tier_series(trace, policy(30.0, pass_rate=0.5))
    saved_full = full.lossless_bytes - full.policy_bytes
    np.testing.assert_allclose(half.lossless_bytes - half.policy_bytes, 0.5 * saved_full)
    np.testing.assert_allclose(half.demoted_by_age, 0.5 * full.demoted_by_age)
    assert saved_full[-1] > 0


@pytest.mark.parametrize("repromote", [False, True])
def test_more_idle_days_never_store_fewer_bytes(trace, psnr, repromote: bool) -> None:
    previous = None
    for days in (0.0, 1.0, 7.0, 30.0, 90.0, 365.0, math.inf):
        s = tier_series(trace, policy(days, repromote=repromote), psnr_db=psnr)
        if previous is not None:
            assert np.all(s.policy_bytes >= previous - 1e-6)
        previous = s.policy_bytes
    np.testing.assert_array_equal(previous, s.lossless_bytes)


def test_bytes_stay_between_the_floor_and_lossless(trace) -> None:
    sizes = np.random.default_rng(2).uniform(50_000, 250_000, size=trace.n_objects)  # some smaller than the mode
    for days in (0.0, 30.0):
        s = tier_series(trace, policy(days, pass_rate=1.0), mode_bytes=np.full(trace.n_objects, 120_000.0),
                        lossless_bytes=sizes)
        assert np.all(s.policy_bytes >= s.floor_bytes - 1e-6)
        assert np.all(s.policy_bytes <= s.lossless_bytes + 1e-6)
    assert s.floor_bytes[-1] == pytest.approx(np.minimum(sizes, 120_000.0).sum())
    at_zero = tier_series(trace, policy(0.0, pass_rate=1.0), mode_bytes=np.full(trace.n_objects, 120_000.0),
                          lossless_bytes=sizes)
    assert at_zero.policy_bytes[-1] == pytest.approx(at_zero.floor_bytes[-1])


def test_a_read_after_demotion_does_not_repromote_unless_asked() -> None:
    # One object read on days 0, 10 and 50; 30 idle days. Idle from day 10 to 50: demoted on day 40.
    ids = np.zeros(3, dtype=np.int64)
    ts = np.array([0.0, 10.0, 50.0]) * DAY_S
    end = 100 * DAY_S  # month ends on days 30.4, 60.9, 91.3 and 100
    final = tier_series((ids, ts), policy(30.0, pass_rate=1.0), end_s=end)
    assert final.months == 4
    np.testing.assert_allclose(final.month_end_s, [MONTH_S, 2 * MONTH_S, 3 * MONTH_S, end])
    np.testing.assert_array_equal(final.policy_bytes, [LOSSLESS, LOSSY, LOSSY, LOSSY])
    again = tier_series((ids, ts), policy(30.0, pass_rate=1.0, repromote=True), end_s=end)
    # read again on day 50 -> lossless until day 80, then demoted again
    np.testing.assert_array_equal(again.policy_bytes, [LOSSLESS, LOSSLESS, LOSSY, LOSSY])
    # a read exactly 30 days after the previous one keeps the object lossless
    edge = tier_series((np.zeros(2, dtype=np.int64), np.array([0.0, 30.0]) * DAY_S), policy(30.0, pass_rate=1.0),
                       end_s=40 * DAY_S)
    np.testing.assert_array_equal(edge.policy_bytes, [LOSSLESS, LOSSLESS])


def test_last_access_times_give_the_final_bytes_with_repromotion(trace, psnr) -> None:
    n = trace.n_objects
    birth = np.full(n, np.inf)
    np.minimum.at(birth, trace.object_ids, trace.timestamps)
    last = np.full(n, -np.inf)
    np.maximum.at(last, trace.object_ids, trace.timestamps)
    p = policy(30.0, repromote=True)
    full = tier_series(trace, p, psnr_db=psnr)
    short = tier_series_from_last_access(birth, last, p, psnr_db=psnr)
    assert short.policy_bytes[-1] == pytest.approx(full.policy_bytes[-1])
    np.testing.assert_array_equal(short.lossless_bytes, full.lossless_bytes)
    # without re-promotion the idle gaps in between are invisible: never more demotion than the full replay
    short, full = (tier_series_from_last_access(birth, last, policy(30.0), psnr_db=psnr),
                   tier_series(trace, policy(30.0), psnr_db=psnr))
    assert np.all(short.policy_bytes >= full.policy_bytes - 1e-6)
    assert short.policy_bytes[-1] > full.policy_bytes[-1]  # some objects had an idle month before their last read


def test_demoted_share_grows_with_age(trace) -> None:
    s = tier_series(trace, policy(30.0, pass_rate=1.0))
    by_age = s.demoted_by_age
    assert by_age[0] < 0.1 < by_age[3] and np.nanmax(by_age) <= 1.0
    assert by_age[-1] > 0.9


def test_measured_policy_and_fidelity_tables() -> None:
    p = TierPolicy.from_measured(30, "wstep:0.08", 52.0)
    psnr = np.asarray(MEASURED_512PX["wstep:0.08"]["psnr_db"])
    assert p.pass_rate == pytest.approx(np.mean(psnr >= 52.0)) and 0 < p.pass_rate < 1
    doc = {"per_image": [
        {"method": "latent", "setting": "lossless", "image": "a", "bytes": 100, "psnr": None},
        {"method": "latent", "setting": "lossless", "image": "b", "bytes": 120, "psnr": None},
        {"method": "latent", "setting": "q8", "image": "a", "bytes": 50, "psnr": 51.0},
        {"method": "latent", "setting": "q8", "image": "b", "bytes": 70, "psnr": 49.0},
        {"method": "webp", "setting": "q80", "image": "a", "bytes": 10, "psnr": 30.0},
    ]}
    table = fidelity_table({"sizes": {"256": {"result": doc}}}, "q8")
    assert list(table["names"]) == ["a", "b"]
    np.testing.assert_array_equal(table["mode_bytes"], [50, 70])
    assert pass_rate_from_fidelity(doc, "q8", 50.0) == 0.5
    objs = assign_samples(1000, table, seed=0)
    assert set(np.unique(objs["sample"])) == {0, 1}
    np.testing.assert_array_equal(objs["psnr_db"], table["psnr_db"][objs["sample"]])
    with pytest.raises(ValueError, match="lossless"):
        fidelity_table(doc, "wstep:0.08")
    with pytest.raises(ValueError, match="per_image"):
        fidelity_table({"summary": []}, "q8")


@pytest.mark.parametrize("kwargs", [
    {"days": -1.0}, {"days": float("nan")}, {"mode": "lossless"}, {"mode": "zstd"}, {"threshold_db": float("nan")},
    {"lossless_bytes": 0.0}, {"mode_bytes": -5.0}, {"pass_rate": 1.5}, {"pass_rate": -0.1}, {"repromote": "yes"},
])
def test_bad_policies_raise(kwargs: dict) -> None:
    base = {"days": 30.0, "mode": "q8", "threshold_db": 50.0, "lossless_bytes": LOSSLESS, "mode_bytes": LOSSY,
            "pass_rate": 1.0}
    with pytest.raises(ValueError, match="Expected"):
        TierPolicy(**{**base, **kwargs})


def test_bad_replays_raise(trace) -> None:
    ok = policy(30.0, pass_rate=1.0)
    with pytest.raises(ValueError, match=r"psnr_db table or a TierPolicy\.pass_rate"):
        tier_series(trace, policy(30.0))
    with pytest.raises(ValueError, match="one value per object"):
        tier_series(trace, policy(30.0), psnr_db=np.ones(3))
    with pytest.raises(ValueError, match="empty"):
        tier_series((np.zeros(0, dtype=np.int64), np.zeros(0)), ok)
    with pytest.raises(ValueError, match=">= 0"):
        tier_series((np.array([-1, 0]), np.array([0.0, 1.0])), ok)
    with pytest.raises(ValueError, match="integer object ids"):
        tier_series((np.array([0.5]), np.array([0.0])), ok)
    with pytest.raises(ValueError, match="end_s"):
        tier_series(trace, ok, end_s=0.0)
    with pytest.raises(ValueError, match="bytes > 0"):
        tier_series(trace, ok, mode_bytes=np.zeros(trace.n_objects))
    with pytest.raises(ValueError, match="TierPolicy"):
        tier_series(trace, {"days": 30})
    with pytest.raises(ValueError, match="at or after"):
        tier_series_from_last_access([5.0], [1.0], ok)
    with pytest.raises(ValueError, match="birth_s finite and at or before"):
        tier_series(trace, ok, birth_s=np.full(trace.n_objects, 1e12))


def test_cost_model_tiers_scenario() -> None:
    months = 60
    plain = cost_series(PUBLISHED, months)
    assert not any("tiers" in n for n in plain.scenarios)
    none = cost_series(PUBLISHED.with_tiers(0.4, [0.0]), months)
    every = cost_series(PUBLISHED.with_tiers(0.4, [1.0]), months)
    aged = cost_series(PUBLISHED.with_tiers(0.4, [0.0, float("nan"), 0.5, 0.9]), months)
    for g in PUBLISHED.gpus:
        base = plain.monthly[latent_name(g)]
        np.testing.assert_allclose(none.monthly[tier_name(g)], base)
        gpu = plain.parts[latent_name(g)]["gpu"]
        latents = plain.image_store_bytes / PUBLISHED.image_bytes * PUBLISHED.latent_bytes  # bytes grow after the trace
        expected = latents * 0.4 / GB * PUBLISHED.storage_usd_per_gb_month
        np.testing.assert_allclose(every.parts[tier_name(g)]["storage"], expected)
        np.testing.assert_allclose(every.parts[tier_name(g)]["gpu"], gpu)
        assert np.all(every.monthly[tier_name(g)] <= aged.monthly[tier_name(g)] + 1e-9)
        assert np.all(aged.monthly[tier_name(g)] <= base + 1e-9)
        assert aged.total(tier_name(g)) < plain.total(latent_name(g))
    # one month: only the images born that month exist, at age 0 (share 0 here)
    one = cost_series(PUBLISHED.with_tiers(0.4, [0.0, 1.0]), 1)
    np.testing.assert_allclose(one.monthly[tier_name("H100")], one.monthly[latent_name("H100")])


@pytest.mark.parametrize("changes, match", [
    ({"tier_bytes": 1.0}, "tier_demoted_by_age"),
    ({"tier_demoted_by_age": (0.5,)}, "tier_bytes"),
    ({"tier_bytes": 1e9, "tier_demoted_by_age": (0.5,)}, "tier_bytes <="),
    ({"tier_bytes": 1e4, "tier_demoted_by_age": (1.5,)}, "tier_demoted_by_age"),
])
def test_bad_cost_tiers_raise(changes: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PUBLISHED.replace(**changes)
    with pytest.raises(ValueError, match="mode_bytes_ratio"):
        PUBLISHED.with_tiers(1.2, [0.5])


def test_cost_model_reproduces_the_trace_ratio() -> None:
    # the cost model's tiered storage at the trace end, fed with the demoted share by age, matches the replay
    long = synth_trace(200_000, seed=5)
    s = tier_series(long, policy(30.0, pass_rate=0.7), end_s=long.meta["params"]["days"] * DAY_S)
    c = cost_series(PUBLISHED.with_tiers(s.mode_bytes_ratio, s.demoted_by_age))
    modelled = c.parts[tier_name("H100")]["storage"][-1] / c.parts[latent_name("H100")]["storage"][-1]
    assert s.months == PUBLISHED.trace_months
    assert modelled == pytest.approx(s.ratio, abs=0.03)


def _real_fidelity_doc(model, latents: np.ndarray, mode: str) -> dict:
    """Per-image bytes and PSNR of ``mode`` vs lossless, measured with the real decoder (no PNG/SSIM, for speed)."""
    from latentzarr.precision import decode_latents, encode_latents
    from latentzarr.precision.fidelity import psnr

    rows = []
    reference = None
    for setting in ("lossless", mode):
        enc = encode_latents(latents, setting)
        pictures = model.decode(decode_latents(enc), batch_size=1)
        reference = pictures if reference is None else reference
        for i in range(len(latents)):
            value = psnr(reference[i], pictures[i]) if setting != "lossless" else None
            rows.append({"method": "latent", "setting": setting, "image": f"photo{i}", "bytes": int(enc.nbytes[i]),
                         "psnr": value})
    return {"info": {}, "per_image": rows}


def test_workflow_runs_small(tmp_path: Path, capsys, taef2, taef2_latents: np.ndarray) -> None:
    doc = _real_fidelity_doc(taef2, taef2_latents[:4].astype(np.float16), "q7")
    (tmp_path / "fid.json").write_text(json.dumps(doc))
    psnrs = np.array([r["psnr"] for r in doc["per_image"] if r["setting"] == "q7"])
    threshold = float(np.median(psnrs))  # about half of the photos fail the check
    spec = importlib.util.spec_from_file_location("tiers_wf", ROOT / "workflows" / "precision_tiers.py")
    wf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wf)
    out, png = tmp_path / "tiers.json", tmp_path / "tiers.png"
    rc = wf.main(["--fidelity", str(tmp_path / "fid.json"), "--mode", "q7", "--requests", "20000",
                  "--threshold", str(threshold), "--json", str(out), "--plot", str(png)])
    text = capsys.readouterr().out
    assert rc == 0, text
    result = json.loads(out.read_text())
    assert result["pass_rate"] == np.mean(psnrs >= threshold) and 0 < result["pass_rate"] < 1
    bars = result["bars"]
    assert bars["demoted_psnr_min"] is not None and bars["demoted_psnr_min"] >= threshold
    assert bars["bar2_met"] and "bar 1 (" in text and "bar 2 (met)" in text
    series = result["series"]
    assert series["months"] == 35 and 0 < bars["ratio"] < 1
    assert series["floor_bytes"][-1] < series["policy_bytes"][-1] < series["lossless_bytes"][-1]
    ratios = [r["ratio"] for r in result["sweep"]]
    assert ratios == sorted(ratios) and result["sweep"][-1]["days"] is None and ratios[-1] == 1.0
    for p in (png, tmp_path / "tiers_cost.png"):
        with Image.open(p) as im:
            assert im.size[0] > 300
    assert wf.main(["--fidelity", str(tmp_path / "missing.json")]) == 2
    assert wf.main(["--fidelity", str(tmp_path / "fid.json"), "--mode", "q8"]) == 2  # mode not in the document
