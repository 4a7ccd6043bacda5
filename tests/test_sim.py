"""The cache simulator: workloads from real traces, the configurations, bars, sensitivity, figures and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from latentzarr.cache import CostModel, DualFormatCache, S3FIFOImageCache
from latentzarr.cli import cli
from latentzarr.sim import (
    CONFIGS,
    DEFAULT_LATENT_RATIO,
    STRESS_KINDS,
    TunerParams,
    Workload,
    auto_window,
    check_bars,
    plot_alpha_trajectory,
    plot_latency_vs_size,
    replay_config,
    sensitivity,
    simulate,
    stress_workload,
)
from latentzarr.traces import DEFAULT_OBJECT_SIZE, synth_trace, write_trace


@pytest.fixture(scope="module")
def trace():
    return synth_trace(60_000, seed=7)


@pytest.fixture(scope="module")
def workload(trace):
    return Workload.from_trace(trace)


@pytest.fixture(scope="module")
def doc(workload):
    return simulate(workload, fractions=(0.01, 0.05), tuner=TunerParams(window=1000), alpha_grid=(0, 0.5, 1))


def test_workload_from_trace(trace, workload):
    assert len(workload) == len(trace)
    assert np.array_equal(workload.ids, trace.object_ids)
    assert np.array_equal(workload.image_sizes, trace.sizes)
    ratio = workload.latent_sizes / workload.image_sizes
    assert np.allclose(ratio, DEFAULT_LATENT_RATIO, rtol=1e-3)
    # working set: every distinct object once, as an image
    first = {}
    for i, s in zip(trace.object_ids.tolist(), trace.sizes.tolist(), strict=True):
        first[i] = s
    assert workload.working_set_bytes == sum(first.values())
    assert workload.n_objects == len(first)


def test_trace_without_sizes_gets_the_default_object_size(tmp_path):
    # a CSV trace without a size column: every object gets the readers' documented default size
    csv = tmp_path / "t.csv"
    csv.write_text("timestamp,object_id\n" + "".join(f"{t},obj{t % 7}\n" for t in range(50)))
    from latentzarr.traces import read_trace

    w = Workload.from_trace(read_trace(csv, "csv"))
    assert set(w.image_sizes.tolist()) == {DEFAULT_OBJECT_SIZE}
    assert w.working_set_bytes == 7 * DEFAULT_OBJECT_SIZE
    assert set(w.latent_sizes.tolist()) == {round(DEFAULT_OBJECT_SIZE * DEFAULT_LATENT_RATIO)}


def test_simulate_reports_every_configuration_at_every_size(doc, workload):
    names = [(r["cache_fraction"], r["config"]) for r in doc["results"]]
    assert names == [(f, c) for f in (0.01, 0.05) for c in CONFIGS]
    cost = CostModel()
    for r in doc["results"]:
        assert r["image_hits"] + r["latent_hits"] + r["misses"] == r["requests"] == len(workload)
        expected = cost.mean_ms(r["image_hits"], r["latent_hits"], r["misses"])
        assert r["mean_latency_ms"] == pytest.approx(expected)
        assert cost.image_hit_ms <= r["mean_latency_ms"] <= cost.miss_ms
        assert r["capacity_bytes"] == int(r["cache_fraction"] * workload.working_set_bytes)
    by = {(r["cache_fraction"], r["config"]): r for r in doc["results"]}
    for f in (0.01, 0.05):
        assert by[(f, "image-only")]["latent_hits"] == 0
        assert by[(f, "latent-only")]["image_hits"] == 0
        assert by[(f, "s3fifo-image")]["latent_hits"] == 0
        # the oracle is the best of the sweep, which includes alpha = 0 and 1
        sweep = [s["mean_latency_ms"] for s in doc["static_sweep"] if s["cache_fraction"] == f]
        assert by[(f, "best-static")]["mean_latency_ms"] == min(sweep)
        assert by[(f, "best-static")]["mean_latency_ms"] <= by[(f, "image-only")]["mean_latency_ms"]
        traj = by[(f, "adaptive")]["alpha_trajectory"]
        assert traj[0] == [0, 0.5] and all(0 <= a <= 1 for _, a in traj)
        assert len(traj) == 1 + (len(workload) - 1) // 1000
    # refinement adds alpha = best +- 0.25 around the grid's best
    assert len({s["alpha"] for s in doc["static_sweep"]}) >= 4
    assert doc["requests_per_second"] > 0 and doc["min_requests_per_second"] > 0
    json.dumps(doc)  # JSON-ready


def test_simulator_uses_the_worker_cache_classes(workload):
    capacity = int(0.02 * workload.working_set_bytes)
    tuner = TunerParams(window=500, promote_after=2)
    got = replay_config(workload, "adaptive", capacity, tuner=tuner)
    cache = DualFormatCache(capacity, window=500, promote_after=2)
    direct = cache.replay(workload.ids, workload.image_sizes, workload.latent_sizes)
    assert (got["image_hits"], got["latent_hits"], got["misses"]) == (
        direct.image_hits,
        direct.latent_hits,
        direct.misses,
    )
    assert got["alpha"] == cache.alpha
    s3 = replay_config(workload, "s3fifo-image", capacity)
    direct = S3FIFOImageCache(capacity).replay(workload.ids, workload.image_sizes, workload.latent_sizes)
    assert s3["image_hits"] == direct.image_hits


def test_cost_model_changes_the_latency_not_the_hits(workload):
    capacity = int(0.01 * workload.working_set_bytes)
    cheap = replay_config(workload, "latent-only", capacity, cost=CostModel(decode_ms=1.0))
    dear = replay_config(workload, "latent-only", capacity, cost=CostModel(decode_ms=100.0))
    assert cheap["latent_hits"] == dear["latent_hits"] > 0
    assert dear["mean_latency_ms"] - cheap["mean_latency_ms"] == pytest.approx(
        99.0 * (dear["latent_hits"] + dear["misses"]) / dear["requests"]
    )


def test_check_bars():
    rows = [
        {"cache_fraction": 0.01, "config": "image-only", "mean_latency_ms": 100.0},
        {"cache_fraction": 0.01, "config": "latent-only", "mean_latency_ms": 90.0},
        {"cache_fraction": 0.01, "config": "adaptive", "mean_latency_ms": 81.0},
        {"cache_fraction": 0.01, "config": "best-static", "mean_latency_ms": 80.0},
        {"cache_fraction": 0.01, "config": "s3fifo-image", "mean_latency_ms": 85.0},
    ]
    bars = check_bars(rows)
    (row,) = bars["per_size"]
    assert row["gain_vs_best_single"] == pytest.approx(0.1)
    assert row["gap_vs_best_static"] == pytest.approx(81 / 80 - 1)
    assert bars["never_worse_than_best_single"] and bars["sizes_at_least_5pct_better"] == 1
    assert bars["within_1pct_of_best_static"] is False


def test_auto_window():
    assert auto_window(10) == 1000
    assert auto_window(10_000_000) == 20_000
    assert auto_window(10**9) == 200_000


def test_sensitivity_varies_one_parameter_at_a_time(workload):
    grid = {"promote_after": [1, 3], "tail": [0.1, 0.3]}
    out = sensitivity(workload, fraction=0.02, tuner=TunerParams(window=1000), grid=grid)
    assert [(r["param"], r["value"]) for r in out["rows"]] == [
        ("promote_after", 1),
        ("promote_after", 3),
        ("tail", 0.1),
        ("tail", 0.3),
    ]
    by = {(r["param"], r["value"]): r for r in out["rows"]}
    assert by[("tail", 0.1)]["relative_to_default"] == 1.0  # the defaults themselves
    assert by[("promote_after", 1)]["mean_latency_ms"] != by[("promote_after", 3)]["mean_latency_ms"]
    with pytest.raises(ValueError, match="Expected parameters"):
        sensitivity(workload, grid={"colour": [1]})


def test_plots_are_png(doc, tmp_path):
    for fn, name in ((plot_latency_vs_size, "lat.png"), (plot_alpha_trajectory, "alpha.png")):
        path = fn(doc, tmp_path / name)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fractions": (0.0,)}, "cache fractions > 0"),
        ({"configs": ("lfu",)}, "configurations"),
        ({"alpha_grid": (1.5,)}, "alpha grid"),
    ],
)
def test_simulate_rejects_nonsense(workload, kwargs, message):
    with pytest.raises(ValueError, match=message):
        simulate(workload.head(100), **kwargs)


def test_cli_simulate_writes_json_and_plots(trace, tmp_path):
    path = write_trace(trace, tmp_path / "trace.parquet")
    out = tmp_path / "out" / "sim.json"
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            str(path),
            "--format",
            "parquet",
            "--sizes",
            "0.01,0.1",
            "--json",
            str(out),
            "--plots",
            str(tmp_path / "plots"),
            "--alpha-grid",
            "0,0.5,1",
            "--limit",
            "20000",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert {r["config"] for r in doc["results"]} == set(CONFIGS)
    assert {r["cache_fraction"] for r in doc["results"]} == {0.01, 0.1}
    assert all(r["requests"] == 20000 for r in doc["results"])
    assert doc["requests_per_second"] > 0
    assert (tmp_path / "plots" / "alpha_trajectory.png").is_file()
    assert "requests/s" in result.output


def test_cli_simulate_bad_sizes(trace, tmp_path):
    path = write_trace(trace, tmp_path / "trace.parquet")
    result = CliRunner().invoke(cli, ["simulate", str(path), "--sizes", "a,b", "--json", str(tmp_path / "x.json")])
    assert result.exit_code != 0
    assert "Expected comma-separated numbers" in result.output


@pytest.mark.parametrize("kind", STRESS_KINDS)
def test_adaptive_never_loses_to_the_better_single_format_on_stress_traces(kind):
    """Low reuse, one-hit wonders, scans: adaptive is at most noise (0.1%) slower than the better single format."""
    workload = stress_workload(kind, 200_000, seed=0)
    for fraction in (0.001, 0.01, 0.05, 0.2):
        capacity = int(fraction * workload.working_set_bytes)
        mean = {c: replay_config(workload, c, capacity)["mean_latency_ms"] for c in ("image-only", "latent-only",
                                                                                    "adaptive")}
        assert mean["adaptive"] <= min(mean["image-only"], mean["latent-only"]) * 1.001, (fraction, mean)


def test_stress_workload_refuses_unknown_kinds():
    with pytest.raises(ValueError, match="Expected a workload kind"):
        stress_workload("zipf", 10)
    assert len(stress_workload("scan", 1000)) == 1000
