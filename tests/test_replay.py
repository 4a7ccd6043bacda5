"""End-to-end trace replay through a real LocalCluster: GET latency model, image store, the five configurations
as plugin modes on the same workers, warm-up, the CLI (local folders and the moto S3 stand-in)."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from PIL import Image

from latentzarr.errors import UnknownIdError
from latentzarr.replay import (
    CONFIGS,
    NO_SPILL,
    GetLatencyModel,
    ImageObjectStore,
    build_image_store,
    build_replay_store,
    disk_bytes,
    image_store_path,
    map_window,
    parse_get_latency,
    plugin_settings,
    replay_trace,
)
from latentzarr.traces import synth_trace

FIELDS = ("mean_ms", "p50_ms", "p95_ms", "p99_ms", "image_hit", "latent_hit", "miss", "decode_share",
          "decode_queue_ms", "persistent_bytes")


@pytest.fixture(scope="module")
def replay_store(tmp_path_factory, models_dir):
    """16 pictures of two sizes (32 and 40 px): two arrays in one store."""
    return build_replay_store(tmp_path_factory.mktemp("replay") / "s.zarr", n_images=16, size=(32, 40),
                              dtype="bfloat16")


def test_get_latency_is_first_byte_plus_transfer_and_seeded_per_stream():
    m = GetLatencyModel("constant", (50.0,), throughput_mb_s=10.0)
    assert m.draw(1_000_000) == pytest.approx(150.0)  # 50 ms + 1 MB / 10 MB/s
    assert m.gets == 1 and m.waited_ms == pytest.approx(150.0)
    a, b = parse_get_latency("lognormal:90:0.25@90", seed=7), parse_get_latency("lognormal:90:0.25@90", seed=7)
    wa, wb = a.with_stream("0"), b.with_stream("0")
    da = [wa.draw(0) for _ in range(300)]
    assert da == [wb.draw(0) for _ in range(300)]  # same seed, same stream: same draws
    assert [a.with_stream("1").draw(0) for _ in range(3)] != da[:3]  # another worker: another stream
    assert 60 < np.median(da) < 120 and min(da) > 0
    assert a.spec == "lognormal:90:0.25@90" and parse_get_latency(a.spec).describe()["throughput_mb_s"] == 90
    assert parse_get_latency("none").draw(10**6) == 0.0
    t0 = time.perf_counter()
    assert GetLatencyModel("constant", (30.0,), 0.0).wait(0) == 30.0
    assert time.perf_counter() - t0 >= 0.029


@pytest.mark.parametrize("text", ["uniform:200:100", "uniform:100", "constant:-1", "gamma:1:2", "uniform:a:b",
                                  "constant:5@x", "constant:5@-1"])
def test_bad_get_latency_specs_are_refused(text):
    with pytest.raises(ValueError, match="Expected"):
        parse_get_latency(text)


def test_map_window_gives_popular_objects_distinct_ids():
    trace = synth_trace(3000, seed=1)
    ids = [f"id-{k}" for k in range(10)]
    mapped, times = map_window(trace, ids, start=1000, requests=500)
    assert len(mapped) == len(times) == 500
    assert set(mapped) <= set(ids)
    window = trace.object_ids[1000:1500]
    top = np.bincount(window).argmax()
    assert {m for m, o in zip(mapped, window, strict=True) if o == top} == {"id-0"}
    assert times[0] == 0 and np.all(np.diff(times) >= 0)
    with pytest.raises(ValueError, match="Expected 0 <= start"):
        map_window(trace, ids, start=len(trace), requests=5)


def test_configurations_are_plugin_settings():
    assert plugin_settings("decode-all", 1000)["cache_bytes"] == 0
    assert plugin_settings("imgstore", 1000) == {"mode": "imgstore", "cache_bytes": 1000, "cache_options": {}}
    assert plugin_settings("image-only", 1000, {"window": 5})["cache_options"] == {"window": 5, "alpha": 1.0,
                                                                                   "adaptive": False}
    assert plugin_settings("latent-only", 1000)["cache_options"]["alpha"] == 0.0
    assert plugin_settings("adaptive", 1000, {"step": 0.1})["cache_options"] == {"step": 0.1}
    with pytest.raises(ValueError, match="Expected a configuration"):
        plugin_settings("gpu-magic", 1)


def test_image_store_holds_one_png_per_id_of_every_size(replay_store):
    from latentzarr.store import LatentStore

    url, images = replay_store
    store = LatentStore.open(url)
    ids = store.ids()
    assert len(ids) == 16 and all(i in images for i in ids)
    assert len(store.arrays()) == 2  # two picture sizes
    sizes = {Image.open(io.BytesIO(images.get(i))).size for i in ids}
    assert sizes == {(32, 32), (40, 40)}
    with pytest.raises(UnknownIdError):
        images.get("no-such-id")
    assert ImageObjectStore(images.path).nbytes() == images.nbytes() == disk_bytes(images.path)


def test_a_failed_image_store_build_leaves_no_folder(replay_store, tmp_path):
    url, _ = replay_store
    target = tmp_path / "broken.png"
    with pytest.raises(Exception, match=r"no-such-model"):
        build_image_store(url, target, model="no-such-model")
    assert not target.exists()


def test_replay_runs_every_configuration_through_the_workers(replay_store):
    """The worker plugin's counters account for every replayed read: replay and workers share one code path."""
    url, _ = replay_store
    trace = synth_trace(3000, seed=2)
    n = 80
    res = replay_trace(url, trace, requests=n, warmup=400, rate=200.0, latency="constant:2@100",
                       cache_fraction=0.1, seed=3, workers=2, threads_per_worker=2, spill="both")
    assert list(res["results"]) == [*CONFIGS, NO_SPILL]
    assert res["through_cluster"] is True and res["workers"] == 2
    assert res["budget_of"] == "total" and res["cache_fraction"] == 0.1
    assert res["latency_model"]["spec"] == "constant:2@100" and res["decode_over_get"] > 0
    for name, row in res["results"].items():
        assert set(FIELDS) <= set(row), name
        # every read reached a worker plugin: counted by its owner's image-tier lookup, or (that lookup timed out
        # on a loaded machine) by the plugin's task path
        assert row["requests_counted"] <= n <= row["requests_counted"] + row["fast_path_fallbacks"], name
        assert row["warmup_requests"] == 400, name
        assert sum(row[k] for k in ("image_hit", "latent_hit", "miss", "coalesced")) == pytest.approx(1.0)
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        assert len(res["latencies_ms"][name]) == n
        assert row["store_gets"] == 0 or row["get_latency_ms_mean"] >= 2.0  # every GET got the model's wait
    r = res["results"]
    assert r["decode-all"]["image_hit"] == r["decode-all"]["latent_hit"] == 0
    assert r["decode-all"]["miss"] > 0
    assert r["decode-all"]["decode_share"] == pytest.approx(r["decode-all"]["miss"])
    assert r["imgstore"]["decode_share"] == 0 and r["imgstore"]["image_hit"] > 0
    assert r["image-only"]["latent_hit"] == 0 and r["latent-only"]["image_hit"] == 0
    assert r["latent-only"]["latent_hit"] > 0
    assert r["imgstore"]["persistent_bytes"] > r["adaptive"]["persistent_bytes"] == disk_bytes(url)
    assert not r[NO_SPILL]["spill"] and r[NO_SPILL]["spilled"] == 0 and r["adaptive"]["spill"]
    assert res["bar"]["checked"] and "spill" in res["bar"]
    json.dumps(res)


def test_warm_up_leaves_the_state_of_the_reads_it_stands_for(replay_store):
    """With a cache that holds everything, the window GETs exactly the ids the warm-up did not read."""
    from latentzarr.store import LatentStore

    url, _ = replay_store
    trace = synth_trace(3000, seed=6)
    n, warm = 60, 300
    mapped, _ = map_window(trace, LatentStore.open(url).ids(), start=len(trace) - n - warm, requests=n + warm)
    unseen = set(mapped[warm:]) - set(mapped[:warm])
    res = replay_trace(url, trace, configs=["imgstore", "latent-only"], requests=n, warmup=warm, rate=None,
                       in_flight=1, latency="none", cache_fraction=50.0, workers=1, threads_per_worker=1)
    for config in ("imgstore", "latent-only"):
        assert res["results"][config]["store_gets"] == len(unseen), config
    assert res["results"]["latent-only"]["latent_hit"] == pytest.approx(1 - len(unseen) / n)
    with pytest.raises(ValueError, match="warmup >= 0"):
        replay_trace(url, trace, warmup=-1, requests=n)


def test_cli_replay_builds_a_store_in_the_s3_stand_in(tmp_path, models_dir):
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    from click.testing import CliRunner

    from latentzarr.cli import cli
    from latentzarr.traces import write_trace

    store = tmp_path / "built.zarr"
    path = write_trace(synth_trace(1500, seed=5), tmp_path / "t.parquet")
    out, plot = tmp_path / "r.json", tmp_path / "cdf.png"
    result = CliRunner().invoke(cli, [
        "replay", str(store), str(path), "--format", "parquet", "--json", str(out), "--objects", "12",
        "--size", "32,40", "--requests", "40", "--warmup", "200", "--rate", "100", "--configs", "imgstore,adaptive",
        "--cache-fraction", "0.1", "--workers", "2", "--threads-per-worker", "2", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["object_store"] == "moto" and data["image_store"].startswith("s3://")
    assert list(data["results"]) == ["imgstore", "adaptive"] and data["through_cluster"] is True
    for key in ("workers", "cache_fraction", "budget_of", "latency_model", "decode_over_get"):
        assert key in data
    assert Image.open(plot).format == "PNG"
    assert "paper" in result.output and "decode / GET" in result.output
    assert store.is_dir() and len(ImageObjectStore(image_store_path(store)).keys()) == 12


def test_cli_replay_refuses_bad_input(replay_store, tmp_path):
    from click.testing import CliRunner

    from latentzarr.cli import cli

    url, _ = replay_store
    runner = CliRunner()
    result = runner.invoke(cli, ["replay", url, str(tmp_path / "nope.csv"), "--json", str(tmp_path / "o.json")])
    assert result.exit_code != 0 and "Expected a trace file" in result.output
    result = runner.invoke(cli, ["replay", str(tmp_path / "none.zarr"), "synthetic:100", "--json",
                                 str(tmp_path / "o.json"), "--object-store", "local"])
    assert result.exit_code != 0 and "--objects" in result.output
    result = runner.invoke(cli, ["replay", url, "synthetic:100", "--json", str(tmp_path / "o.json"),
                                 "--size", "33"])
    assert result.exit_code != 0 and "multiples of 8" in result.output
