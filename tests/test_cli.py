"""The ``latentzarr`` command: demo, ingest-images, ls, info, verify, export, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentzarr.store import LatentStore


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "latentzarr", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=600)


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory, models_dir) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("demo") / "out"
    return out, run("demo", "--out", str(out), "--no-serve", "--size", "128", "--images", "3")


def test_demo_builds_store_reports_and_verifies(demo_out):
    out, proc = demo_out
    assert proc.returncode == 0, proc.stderr
    assert "PNG bytes" in proc.stdout and "TOTAL" in proc.stdout
    assert "3/3 decodes are bit-identical" in proc.stdout
    decoded = sorted(out.glob("decoded/*.png"))
    assert len(decoded) == 3
    store = LatentStore.open(out / "store.zarr")
    assert len(store) == 3
    for path in decoded:  # real pictures, close to the photo they came from
        name = path.stem.split("-", 1)[1]
        got = np.asarray(Image.open(path), dtype=np.float64)
        src = np.asarray(Image.open(out / "source" / f"{name}.png"), dtype=np.float64)
        psnr = 10 * np.log10(255**2 / np.mean((got - src) ** 2))
        assert got.shape == (128, 128, 3) and psnr > 22, (name, psnr)


def test_demo_rerun_replaces_only_its_own_folder(tmp_path, models_dir):
    out = tmp_path / "d"
    for images in (2, 1):
        proc = run("demo", "--out", str(out), "--no-serve", "--size", "64", "--images", str(images))
        assert proc.returncode == 0, proc.stderr
        assert "x larger than the raw float16 latents: at this size" in proc.stdout  # never "0.98x smaller"
    assert len(LatentStore.open(out / "store.zarr")) == 1
    assert len(list(out.glob("decoded/*.png"))) == 1
    other = tmp_path / "mine"
    (other / "source").mkdir(parents=True)
    (other / "source" / "keep.txt").write_text("user data")
    proc = run("demo", "--out", str(other), "--no-serve", "--size", "64", "--images", "1")
    assert proc.returncode != 0 and "choose another --out folder" in proc.stderr
    assert (other / "source" / "keep.txt").read_text() == "user data"


def test_info_ls_export(demo_out, tmp_path):
    out, _ = demo_out
    store = str(out / "store.zarr")
    info = json.loads(run("info", store, "--json").stdout)
    assert info["images"] == 3 and info["stored_bytes"] > 0 and 0 < info["data_reduction"] < 1
    table = run("info", store).stdout
    assert "taef2-32x16x16-float16" in table and "total" in table
    assert " of PNG" in table and "vs PNG" not in table and "stored bytes as a share of the optimised PNGs" in table
    assert f"the latents take {abs(info['data_reduction']):.1%} " in table  # the fraction, said in words
    ids = run("ls", store).stdout.split()
    assert ids == LatentStore.open(store).ids()
    long = run("ls", store, "-l", "--limit", "1").stdout.strip().split("\t")
    assert long[0] == ids[0] and long[3] == "32x16x16"
    proc = run("export", store, str(tmp_path / "x"), ids[0], "--format", "webp", "--size", "64")
    assert proc.returncode == 0, proc.stderr
    assert "'match': 1" in proc.stdout and f"wrote 1 file to {tmp_path / 'x'}" in proc.stdout
    files = list((tmp_path / "x").glob("*.webp"))
    assert len(files) == 1 and Image.open(files[0]).size == (64, 64)


def test_ingest_images_folder(tmp_path, models_dir):
    src = tmp_path / "imgs"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(src / "a.png")
    Image.fromarray(rng.integers(0, 255, (64, 64, 4), dtype=np.uint8), "RGBA").save(src / "b.png")
    (src / "broken.png").write_bytes(b"not a png")
    store = tmp_path / "s.zarr"
    proc = run("ingest-images", str(src), str(store), "--dtype", "bfloat16", "--no-digest")
    assert proc.returncode == 0, proc.stderr
    assert "skipped 'broken'" in proc.stderr and "ingested 2 images" in proc.stdout
    st = LatentStore.open(store)
    assert sorted(st.ids()) == ["a", "b"]
    assert st.record("a")["shape"] == (32, 8, 11) and st.record("a")["dtype"] == "bfloat16"
    again = run("ingest-images", str(src), str(store), "--no-digest")
    assert "already in the store" in again.stderr and len(LatentStore.open(store)) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["info", "{tmp}/nowhere"], "Expected a latentzarr store"),
        (["ls", "{tmp}"], "Expected a latentzarr store"),
        (["export", "{store}", "{tmp}/o"], "Expected ids"),
        (["export", "{store}", "{tmp}/o", "no-such-id"], "no-such-id"),
        (["demo", "--size", "100"], "multiple of 8"),
        (["ingest-images", "{tmp}/missing", "{tmp}/s.zarr"], "does not exist"),
        (["export", "{store}", "{tmp}/o", "--all", "--format", "gif"], "gif"),
    ],
)
def test_bad_arguments_exit_nonzero_with_one_line_reason(args, message, demo_out, tmp_path):
    out, _ = demo_out
    args = [a.format(tmp=tmp_path, store=out / "store.zarr") for a in args]
    proc = run(*args)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_every_subcommand_has_help():
    from click.testing import CliRunner

    from latentzarr.cli import COMMANDS, cli

    runner = CliRunner()
    for name in COMMANDS:
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, name


def test_verify_reports_damage_and_exits_1(tmp_path, taef2_latents_64):
    path = tmp_path / "s.zarr"
    LatentStore.create(path, shard_images=4).put(["a", "b", "c"], taef2_latents_64[:3], model="taef2")
    proc = run("verify", str(path))
    assert proc.returncode == 0 and "checked 3, ok 3, damaged 0" in proc.stdout, proc.stderr
    shard = next((path / "arrays").rglob("c/0/0/0/0"))
    data = bytearray(shard.read_bytes())
    data[40] ^= 0xFF  # inside the first chunk ("a"): its CRC-32 no longer matches
    shard.write_bytes(bytes(data))
    proc = run("verify", str(path), "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert (report["ok"], list(report["unreadable"]), report["mismatched"]) == (2, ["a"], [])
    proc = run("verify", str(path))
    assert proc.returncode == 1 and "unreadable  a:" in proc.stdout and "Traceback" not in proc.stderr
