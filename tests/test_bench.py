"""Serving and spillover benchmarks on tiny settings: real store, real LocalCluster, real taef2 decodes.

Only the shape and the consistency of the reports are checked (no timing assertions).
"""

from __future__ import annotations

import json
import math
import traceback

import pytest
from click.testing import CliRunner

from latentzarr.bench import build_sample_store, summarize
from latentzarr.cli import cli

TIMING_KEYS = {"n", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms", "reads_per_s"}


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory, models_dir):
    return build_sample_store(tmp_path_factory.mktemp("bench") / "tiny.zarr", n_images=12, size=32)


def _failure(result) -> str:
    if result.exc_info is None:
        return result.output
    return result.output + "".join(traceback.format_exception(*result.exc_info))


def check_timings(m: dict, n: int) -> None:
    assert set(m) >= TIMING_KEYS
    assert m["n"] == n
    assert 0 < m["p50_ms"] <= m["p95_ms"] <= m["p99_ms"] <= m["max_ms"]
    assert m["reads_per_s"] > 0 and math.isfinite(m["reads_per_s"])


def test_sample_store_holds_distinct_real_pictures(tiny_store):
    from latentzarr.store import LatentStore

    store = LatentStore.open(tiny_store)
    ids = store.ids()
    assert len(ids) == 12 and len(set(ids)) == 12
    latents = store.get(ids)
    assert latents.shape == (12, 32, 4, 4)
    assert len({latents[i].tobytes() for i in range(12)}) == 12  # distinct crops, not copies


def test_summarize_percentiles_and_rate():
    s = summarize(list(range(1, 101)), wall_s=2.0)
    assert s["n"] == 100 and s["p50_ms"] == pytest.approx(50.5) and s["max_ms"] == 100
    assert s["reads_per_s"] == 50
    with pytest.raises(ValueError, match="at least one"):
        summarize([])


def test_bench_serving_cli_json(tiny_store, tmp_path):
    out = tmp_path / "serving.json"
    result = CliRunner().invoke(cli, ["bench", "serving", tiny_store, "--json", str(out), "--ids", "4",
                                      "--reads", "30", "--in-flight", "4", "--repeats", "1"])
    assert result.exit_code == 0, _failure(result)
    doc = json.loads(out.read_text())
    for name in ("direct", "cluster", "rpc_floor", "cluster_async_1", "cluster_async"):
        check_timings(doc[name], 30)
    assert doc["cluster_async"]["in_flight"] == 4
    assert doc["ids"] == 4 and doc["payload_bytes_mean"] > 0 and doc["warm_rounds"] >= 1
    checked = doc["image_hits_checked"]
    assert checked["all_hits"] and checked["image_hits"] == checked["reads_checked"] == 4 * 30 + 1 + 4
    assert checked["decodes"] == 0
    assert doc["bar"]["met"] == (doc["cluster"]["p50_ms"] < doc["bar"]["p50_target_ms"])
    assert doc["ratio"]["p50_cluster_over_direct"] == pytest.approx(
        doc["cluster"]["p50_ms"] / doc["direct"]["p50_ms"])
    assert doc["machine"]["cpus"] >= 1 and len(doc["runs"]["cluster"]) == 1
    assert "image-hit p50" in result.output


def test_bench_spillover_cli_json(tiny_store, tmp_path):
    """The spillover bench is the replay, twice per repeat (spill on, pinned to owners), on one cluster."""
    out = tmp_path / "spill.json"
    result = CliRunner().invoke(cli, ["bench", "spillover", tiny_store, "synthetic:600", "--json", str(out),
                                      "--requests", "40", "--warmup", "200", "--rate", "200", "--repeats", "1",
                                      "--workers", "2", "--cache-fraction", "0.1", "--latency", "constant:2@100"])
    assert result.exit_code == 0, _failure(result)
    doc = json.loads(out.read_text())
    assert doc["requests"] == 40 and doc["replays"][0]["through_cluster"] is True
    for mode in ("spill", "owner_only"):
        m = doc[mode]
        # every read asked its owner's image tier once (or that lookup timed out on a loaded machine)
        assert m["requests_counted"] <= 40 <= m["requests_counted"] + m["fast_path_fallbacks"]
        assert m["p50_ms"] <= m["p95_ms"] <= m["p99_ms"]
        assert m["cache_served_fraction"] == pytest.approx(m["image_hit"] + m["latent_hit"])
        assert len(doc["runs"][mode]) == 1
    assert doc["owner_only"]["spilled"] == 0  # pinned reads never run elsewhere
    assert doc["spill"]["writebacks"] == doc["spill"]["spilled"]  # a spilled read writes back to its owner
    assert doc["p99_reduction"] == pytest.approx(1 - doc["spill"]["p99_ms"] / doc["owner_only"]["p99_ms"])
    assert set(doc["bar"]) == {"p99_reduction_target", "served_fraction_tolerance", "p99_met_every_repeat",
                               "served_fraction_met_every_repeat"}
    assert "lower with spillover" in result.output
