"""End-to-end trace replay: latency injection, image store, the five configurations, the CLI."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from latentzarr.errors import UnknownIdError
from latentzarr.replay import (
    CONFIGS,
    OUTCOMES,
    ImageObjectStore,
    LatencyInjector,
    build_replay_store,
    disk_bytes,
    map_window,
    parse_latency,
    replay_trace,
)
from latentzarr.traces import synth_trace


@pytest.fixture(scope="module")
def replay_store(tmp_path_factory, models_dir):
    url, images = build_replay_store(tmp_path_factory.mktemp("replay") / "s.zarr", n_images=16, size=32)
    return url, images


def test_latency_injector_applies_and_counts():
    inj = LatencyInjector("constant", (3.0,))
    calls = []
    read = inj.wrap(lambda x: calls.append(x) or x * 2)
    assert read(4) == 8 and read(5) == 10
    assert calls == [4, 5]
    assert inj.reads == 2 and inj.injected_ms == pytest.approx(6.0)


def test_uniform_draws_in_bounds_and_repeat_with_the_seed():
    a, b = parse_latency("uniform:100:200", seed=7), parse_latency("uniform:100:200", seed=7)
    da, db = [a.draw() for _ in range(200)], [b.draw() for _ in range(200)]
    assert da == db
    assert min(da) >= 100 and max(da) <= 200 and max(da) - min(da) > 50
    again = a.fresh()
    assert [again.draw() for _ in range(3)] == da[:3]
    assert parse_latency("none").draw() == 0.0
    assert parse_latency("lognormal:140:0.3").spec == "lognormal:140:0.3"


@pytest.mark.parametrize("text", ["uniform:200:100", "uniform:100", "constant:-1", "gamma:1:2", "uniform:a:b"])
def test_bad_latency_specs_are_refused(text):
    with pytest.raises(ValueError, match="Expected"):
        parse_latency(text)


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


def test_image_store_holds_one_png_per_id(replay_store):
    from latentzarr.store import LatentStore

    url, images = replay_store
    ids = LatentStore.open(url).ids()
    assert len(ids) == 16 and all(i in images for i in ids)
    pic = Image.open(io.BytesIO(images.get(ids[0])))
    assert pic.format == "PNG" and pic.size == (32, 32)
    with pytest.raises(UnknownIdError):
        images.get("no-such-id")
    assert ImageObjectStore(images.path).nbytes() == images.nbytes() == disk_bytes(images.path)


def test_replay_reports_every_configuration(replay_store):
    url, _ = replay_store
    trace = synth_trace(4000, seed=2)
    n = 240
    res = replay_trace(url, trace, requests=n, rate=None, in_flight=8, latency="constant:2", cache_fraction=0.3,
                       seed=3)
    assert list(res["configs"]) == list(CONFIGS)
    for name, row in res["configs"].items():
        for key in ("mean_ms", "p50_ms", "p95_ms", "p99_ms", "image_hit", "latent_hit", "miss",
                    "persistent_bytes"):
            assert key in row, (name, key)
        assert sum(row[o] for o in OUTCOMES) == row["n"] == n
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        # every store read went through the injector, and each waited its 2 ms
        assert row["injected_reads"] == row["store_reads"] == row["miss"]
        assert row["injected_ms_mean"] == pytest.approx(2.0)
        assert row["p50_ms"] >= 0
        assert len(res["latencies_ms"][name]) == n
    c = res["configs"]
    assert c["decode-all"]["image_hit"] == c["decode-all"]["latent_hit"] == 0
    assert c["decode-all"]["decodes"] == c["decode-all"]["miss"] > 0
    assert c["imgstore"]["decodes"] == 0 and c["imgstore"]["image_hit"] > 0
    assert c["imgstore"]["decode_ms_mean"] == 0 < c["decode-all"]["decode_ms_mean"]
    assert c["image-only"]["latent_hit"] == 0 and c["image-only"]["image_hit"] > 0
    assert c["latent-only"]["image_hit"] == 0 and c["latent-only"]["latent_hit"] > 0
    assert c["latent-only"]["decodes"] == c["latent-only"]["miss"] + c["latent-only"]["latent_hit"]
    assert c["imgstore"]["persistent_bytes"] > c["adaptive"]["persistent_bytes"] == disk_bytes(url)
    assert len({row["cache_bytes"] for name, row in c.items() if name != "decode-all"}) == 1
    assert res["bar"]["checked"] and isinstance(res["bar"]["met"], bool)
    json.dumps(res)  # JSON-ready


def test_injected_latency_shows_in_read_latency(replay_store):
    url, _ = replay_store
    trace = synth_trace(2000, seed=4)
    res = replay_trace(url, trace, configs=["imgstore"], requests=30, rate=None, in_flight=1,
                       latency="constant:40", cache_fraction=0.01)
    row = res["configs"]["imgstore"]
    assert row["miss"] > 0 and row["injected_reads"] == row["miss"]
    misses = sorted(res["latencies_ms"]["imgstore"])[-row["miss"]:]
    assert min(misses) >= 40  # a miss waits at least the injected latency


def test_cli_replay_writes_json_and_plot(replay_store, tmp_path):
    from click.testing import CliRunner

    from latentzarr.cli import cli

    url, _ = replay_store
    out, plot = tmp_path / "r.json", tmp_path / "cdf.png"
    result = CliRunner().invoke(cli, ["replay", url, "synthetic:3000", "--json", str(out), "--requests", "120",
                                      "--latency", "constant:1", "--rate", "2000", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert set(data["configs"]) == set(CONFIGS)
    for row in data["configs"].values():
        assert {"mean_ms", "p50_ms", "p95_ms", "p99_ms", "persistent_bytes"} <= set(row)
    assert Image.open(plot).format == "PNG"
    assert "adaptive" in result.output


def test_cli_replay_refuses_a_missing_trace(replay_store, tmp_path):
    from click.testing import CliRunner

    from latentzarr.cli import cli

    url, _ = replay_store
    result = CliRunner().invoke(cli, ["replay", url, str(tmp_path / "nope.csv"), "--json", str(tmp_path / "o.json")])
    assert result.exit_code != 0 and "Expected a trace file" in result.output


def test_cli_replay_reads_a_trace_file_and_a_subset_of_configs(replay_store, tmp_path):
    from click.testing import CliRunner

    from latentzarr.cli import cli
    from latentzarr.traces import write_trace

    url, _ = replay_store
    path = write_trace(synth_trace(2000, seed=5), tmp_path / "t.parquet")
    out = tmp_path / "r.json"
    result = CliRunner().invoke(cli, ["replay", url, str(path), "--json", str(out), "--requests", "60",
                                      "--configs", "imgstore,adaptive", "--latency", "none", "--speedup", "1e9"])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert list(data["configs"]) == ["imgstore", "adaptive"]
    assert data["window"]["requests"] == 60 and data["window"]["speedup"] == 1e9
    assert all(row["injected_ms_mean"] == 0 for row in data["configs"].values())


def test_warmup_fills_the_caches_before_the_measured_window(replay_store):
    """With a cache that holds everything, a warmed window fetches exactly the ids the warm-up did not read."""
    from latentzarr.store import LatentStore

    url, _ = replay_store
    trace = synth_trace(4000, seed=6)
    n, warm = 80, 200
    ids = LatentStore.open(url).ids()
    mapped, _ = map_window(trace, ids, start=len(trace) - n - warm, requests=n + warm)  # warm-up and window
    unseen = set(mapped[warm:]) - set(mapped[:warm])
    alone, _ = map_window(trace, ids, start=len(trace) - n, requests=n)  # the window mapped on its own
    kw = {"configs": ["imgstore", "latent-only"], "requests": n, "rate": None, "in_flight": 1, "latency": "none",
          "cache_fraction": 50.0}
    warmed = replay_trace(url, trace, warmup=warm, **kw)
    cold = replay_trace(url, trace, warmup=0, **kw)
    assert warmed["window"]["warmup"] == warm and cold["window"]["warmup"] == 0
    for config in ("imgstore", "latent-only"):
        assert warmed["configs"][config]["store_reads"] == len(unseen)
        assert cold["configs"][config]["store_reads"] == len(set(alone))  # every distinct id once
    with pytest.raises(ValueError, match="warmup >= 0"):
        replay_trace(url, trace, warmup=-1, **kw)
