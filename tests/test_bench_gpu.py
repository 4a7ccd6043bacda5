"""``latentzarr bench gpu`` on CPU: each step at a tiny size, the JSON it writes, failure isolation, no-GPU exit.

No timing is asserted; the structure of the report and the consistency of its figures are.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from latentzarr.bench import gpu as bg
from latentzarr.cli import cli

TINY_VAE = dict(bg.VAE16_CONFIG, block_out_channels=[8, 8, 16, 16], layers_per_block=1, norm_num_groups=4,
                sample_size=64)
"""The 16-channel AutoencoderKL architecture, shrunk (8x downscale kept): plumbing only."""


def test_run_steps_isolates_failures_and_records_them():
    lines: list[str] = []

    def boom():
        raise ZeroDivisionError("division by zero in step two")

    def skip():
        raise bg.StepSkipped("does not apply here")

    out = bg.run_steps([("one", lambda: {"x": 1}), ("two", boom), ("three", skip), ("four", lambda: 4)],
                       progress=lines.append)
    assert list(out) == ["one", "two", "three", "four"]
    assert out["one"]["status"] == "ok" and out["one"]["result"] == {"x": 1}
    assert out["two"]["status"] == "error"
    assert out["two"]["error"] == "ZeroDivisionError: division by zero in step two"
    assert "boom" in out["two"]["traceback"]
    assert out["three"] == {"status": "skipped", "reason": "does not apply here", "seconds": out["three"]["seconds"]}
    assert out["four"]["result"] == 4  # ran after the failure
    assert all(r["seconds"] >= 0 for r in out.values())
    assert len(lines) == 8 and lines[0] == "[1/4] one ..." and lines[3].startswith("[2/4] two: error in ")


def test_decode_step_cases_on_cpu():
    res = bg.step_decode("cpu", model="vae16", sizes=(64, 32), batches=(1, 2), modes=("fp32", "bf16", "cuda_graph"),
                         runs=3, vae_config=TINY_VAE)
    assert res["weights"].startswith("random") and res["model"] == "vae16" and res["device"] == "cpu"
    cases = res["cases"]
    assert len(cases) == 2 * 2 * 3
    assert [(c["size"], c["batch"]) for c in cases[:3]] == [(64, 1)] * 3  # biggest size, batch 1 first
    for c in cases:
        if c["mode"] == "cuda_graph":
            assert c["status"] == "skipped" and "CUDA" in c["reason"]
            continue
        assert c["status"] == "ok", c
        assert c["n"] == 3 and 0 < c["min_ms"] <= c["p50_ms"] <= c["p99_ms"]
        assert c["images_per_s"] == pytest.approx(c["batch"] * 1000 / c["p50_ms"])
        assert c["dtype"] == {"fp32": "float32", "bf16": "bfloat16"}[c["mode"]]
        assert c["weights_bytes"] == (2 if c["mode"] == "bf16" else 4) * sum(
            p.numel() for p in bg.build_vae16(config=TINY_VAE).vae.decoder.parameters())
        assert "decoder_memory_bytes" not in c  # a CUDA figure
    for size in ("64", "32"):
        b1 = [c for c in cases if c["size"] == int(size) and c["batch"] == 1 and c["status"] == "ok"]
        assert res["best"][size]["p50_ms"] == min(c["p50_ms"] for c in b1)
        assert res["images_per_s"][size]["images_per_s"] == max(
            c["images_per_s"] for c in cases if c["size"] == int(size) and c["status"] == "ok")


def test_decode_step_records_errors_and_deadline(monkeypatch):
    def broken(device, dtype):
        if dtype == "bfloat16":
            raise RuntimeError("no bf16 kernels")
        return bg.build_vae16(device, dtype, config=TINY_VAE)

    monkeypatch.setattr(bg, "_loader", lambda model, cfg: broken)
    res = bg.step_decode("cpu", model="vae16", sizes=(32,), batches=(1,), modes=("bf16", "fp32"), runs=2)
    by_mode = {c["mode"]: c for c in res["cases"]}
    assert by_mode["bf16"] == {"size": 32, "batch": 1, "mode": "bf16", "status": "error",
                               "error": "RuntimeError: no bf16 kernels"}
    assert by_mode["fp32"]["status"] == "ok"  # the next case still ran
    late = bg.step_decode("cpu", model="vae16", sizes=(32,), batches=(1,), modes=("fp32",), runs=2, deadline=0.0)
    assert late["cases"] == [{"size": 32, "batch": 1, "mode": "fp32", "status": "skipped",
                              "reason": "time budget spent"}]
    assert late["best"] == {}
    with pytest.raises(ValueError, match="decode modes"):
        bg.step_decode("cpu", modes=("fp8",))


@pytest.mark.slow  # inductor compiles C++: about 2 min on the shared 2-core machine
def test_compiled_decode_on_cpu_equals_eager_closely(taef2_latents_64):
    from latentzarr.models import load_model, psnr

    eager = load_model("taef2", device="cpu")
    model = load_model("taef2", device="cpu").compile()
    assert model.fingerprint() == {**eager.fingerprint(), "compiled": "default"}
    assert psnr(model.decode(taef2_latents_64[:1]), eager.decode(taef2_latents_64[:1])) > 45


def test_bitexact_step_on_cpu(models_dir):
    res = bg.step_bitexact("cpu", size=32, batch=3)
    assert res["dtype"] == "float32" and res["batch"] == 3
    assert res["twice"] == {"psnr_db": None, "identical": True, "exact_share": 1.0, "max_abs_diff": 0,
                            "within_1_share": 1.0}
    b = res["batch1_vs_batch"]
    assert 0.99 <= b["exact_share"] <= 1 and b["within_1_share"] == 1.0
    assert res["cpu_vs_device"]["status"] == "skipped"
    a = np.zeros((4, 4, 3), np.uint8)
    c = a.copy()
    c[0, 0, 0] = 3
    cmp = bg._compare(a, c)
    assert cmp["exact_share"] == pytest.approx(47 / 48) and cmp["max_abs_diff"] == 3 and not cmp["identical"]
    assert cmp["psnr_db"] == pytest.approx(10 * np.log10(255**2 / (9 / 48)))


def test_batch_zarr_cluster_and_cudf_steps_on_cpu(models_dir, tmp_path):
    batch = bg.step_batch_zarr("cpu", work_dir=tmp_path, size=32, n_images=8, batch_size=4)
    assert batch["images"] == 8 and batch["batch_images_per_s"] > 0
    assert batch["ratio_to_ceiling"] == pytest.approx(batch["batch_images_per_s"]
                                                      / batch["decode_ceiling_images_per_s"])
    cluster = bg.step_cluster("cpu", work_dir=tmp_path, size=32, n_images=8, reads=16, in_flight=4)
    assert cluster["cluster_class"] == "LocalCluster" and cluster["workers"] == 2 and not cluster["gpu"]
    assert cluster["cluster_fallback"] is None  # gpu=False on CPU: nothing fell back
    assert cluster["image_hit"]["cluster"]["n"] == 16
    assert cluster["latent_hit"]["n"] == 8 and cluster["latent_hit"]["decodes"] == 8  # every read decoded
    load = cluster["under_load"]
    assert load["n"] == 16 and load["reads_sent"] == 16 + 4 and 1 <= load["decodes"] <= 20
    assert load["decodes_per_s"] == pytest.approx(load["reads_per_s"] * load["decodes"] / 20)
    trace = bg.step_cudf("cpu", work_dir=tmp_path, n_requests=5000, backends=("pandas", "pandas", "cudf"))
    runs = trace["backends"]
    assert runs["pandas"]["status"] == "ok" and runs["pandas"]["seconds"] > 0
    assert runs["cudf"]["status"] == "error" and "Expected cudf and a CUDA GPU" in runs["cudf"]["error"]
    assert bg._close({"a": [1.0, 2.0], "b": "x"}, {"a": [1.0, 2.0 + 1e-12], "b": "x"}) == []
    assert bg._close({"a": [1.0, 2.0]}, {"a": [1.0, 2.1]}) == [".a[1]"]


def test_bench_gpu_on_cpu_writes_every_step(tmp_path, monkeypatch, models_dir):
    def fail(device, **kwargs):
        raise OSError("the cluster cannot start here")

    monkeypatch.setattr(bg, "step_cluster", fail)
    doc = bg.bench_gpu(device="cpu", sizes=(32,), batches=(1,), runs=2, models=("vae16",), modes=("fp32",),
                       steps=("facts", "decode", "cluster"), vae_config=TINY_VAE, work_dir=tmp_path)
    assert doc["status"] == "partial" and doc["device"] == "cpu"
    steps = doc["steps"]
    assert list(steps) == ["facts", "decode:vae16", "cluster"]
    assert steps["facts"]["result"]["device"] == "cpu" and steps["facts"]["result"]["machine"]["cpus"] >= 1
    assert steps["decode:vae16"]["status"] == "ok"
    assert steps["cluster"]["status"] == "error"
    assert steps["cluster"]["error"] == "OSError: the cluster cannot start here"
    assert doc["bar"]["vae16_1024_b1"] is None and doc["bar"]["met"] is None  # no 1024 case measured
    bg.write_json(doc, tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_text())["steps"]["cluster"]["status"] == "error"
    with pytest.raises(ValueError, match="steps among"):
        bg.bench_gpu(device="cpu", steps=("warp",))


def test_cli_without_a_gpu_stops_at_once_and_says_so(tmp_path):
    out = tmp_path / "gpu.json"
    result = CliRunner().invoke(cli, ["bench", "gpu", "--json", str(out)])
    assert result.exit_code == 3, result.output
    assert "No GPU:" in result.output and "nothing was measured" in result.output
    doc = json.loads(out.read_text())
    assert doc["status"] == "no_gpu" and "steps" not in doc and "bar" not in doc  # no figures at all


def test_cli_cpu_smoke_run_and_bad_options(tmp_path, models_dir):
    out = tmp_path / "cpu.json"
    result = CliRunner().invoke(cli, ["bench", "gpu", "--json", str(out), "--device", "cpu", "--sizes", "32",
                                      "--batches", "1", "--runs", "2", "--models", "taef2", "--modes", "fp32",
                                      "--steps", "facts,decode"])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["status"] == "ok" and doc["steps"]["decode:taef2"]["result"]["best"]["32"]["mode"] == "fp32"
    assert "decode:taef2" in result.output and "status ok" in result.output
    bad = CliRunner().invoke(cli, ["bench", "gpu", "--json", str(out), "--modes", "fp8"])
    assert bad.exit_code != 0 and "Expected modes among" in bad.output
    bad = CliRunner().invoke(cli, ["bench", "gpu", "--json", str(out), "--sizes", "0,64"])
    assert bad.exit_code != 0 and "comma-separated positive integers" in bad.output


def test_compile_step_structure_with_a_stand_in_compiler(monkeypatch, models_dir):
    """The real inductor compile is covered by the slow test above; here torch.compile is stood in for."""
    from latentzarr.models.autoencoder import LatentAutoencoder

    def fake_compile(self, mode=None):
        self._decode_fn = self._decode_latents
        self.compiled = "stand-in"
        return self

    monkeypatch.setattr(LatentAutoencoder, "compile", fake_compile)
    res = bg.step_compile("cpu", sizes=(16, 32), runs=3, deadline=None)
    assert res["model"] == "taef2" and res["dtype"] == "float32" and res["runs"] == 3
    for size in ("16", "32"):
        s = res["sizes"][size]
        assert s["status"] == "ok" and s["compile_s"] > 0 and s["max_abs_diff"] == 0 and s["psnr_db"] is None
        assert s["speedup"] > 0 and min(s["eager"]["p50_ms"], s["compiled"]["p50_ms"]) > 0
        assert s["break_even_decodes"] is None or s["break_even_decodes"] >= 1
    late = bg.step_compile("cpu", sizes=(16,), runs=1, deadline=0.0)
    assert late["sizes"]["16"] == {"status": "skipped", "reason": "time budget spent"}
