"""``latentzarr ingest-images`` says what it changed and skipped, fails when nothing could be ingested, pads on
request, enters subfolders on request, and moves its progress bar per image."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentzarr.store import LatentStore


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "latentzarr", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=600)


def _save(path: Path, shape: tuple[int, ...], alpha: int | None = None) -> None:
    px = np.random.default_rng(len(str(path))).integers(0, 255, shape, dtype=np.uint8)
    if alpha is not None:
        px[..., 3] = alpha
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(px, "RGBA" if shape[-1] == 4 else "RGB").save(path)


def test_only_broken_files_exit_1_with_reasons_and_create_no_store(tmp_path: Path, models_dir: Path) -> None:
    src = tmp_path / "broken"
    src.mkdir()
    (src / "x.png").write_bytes(b"not a png")
    (src / "y.jpg").write_bytes(b"")
    _save(src / "tiny.png", (4, 4, 3))
    store = tmp_path / "s.zarr"
    proc = run("ingest-images", str(src), str(store))
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == (
        f"Error: Expected at least one image to ingest. Got none: skipped 3 files (2 unreadable, 1 too small); "
        f"{store} was not changed.")
    assert "skipped 'tiny': " in proc.stderr and "pass --pad" in proc.stderr
    assert not store.exists()


def test_changes_are_counted_pad_and_recursive(tmp_path: Path, models_dir: Path) -> None:
    src = tmp_path / "imgs"
    _save(src / "odd.png", (70, 90, 3))              # cropped to 64x88 (or padded to 72x96)
    _save(src / "see-through.png", (64, 64, 4), 128)  # flattened on white
    _save(src / "opaque.png", (64, 64, 4), 255)       # alpha, but nothing to flatten
    _save(src / "sub" / "deep.png", (64, 64, 3))
    store = tmp_path / "s.zarr"
    proc = run("ingest-images", str(src), str(store), "--no-digest", "--batch-size", "8")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"ingested 3 images into {store} (3 in total)",
        "changed: 1 had transparent pixels flattened on white; 1 centre-cropped to a multiple of 8 "
        "(--pad pads instead)",
        "not entered 1 subfolder (sub); --recursive ingests their images too",
    ]
    for n in (1, 2):  # the bar moved per image, although all three were one batch (one put)
        assert f"| {n}/3 [" in proc.stderr
    assert LatentStore.open(store).record("odd")["shape"] == (32, 8, 11)

    padded = tmp_path / "p.zarr"
    proc = run("ingest-images", str(src), str(padded), "--no-digest", "--pad", "--recursive")
    assert proc.returncode == 0, proc.stderr
    assert "changed: 1 had transparent pixels flattened on white; 1 padded to a multiple of 8" in proc.stdout
    assert "not entered" not in proc.stdout
    st = LatentStore.open(padded)
    assert sorted(st.ids()) == ["odd", "opaque", "see-through", "sub/deep"]
    assert st.record("odd")["shape"] == (32, 9, 12)


def test_help_says_what_is_changed() -> None:
    from click.testing import CliRunner

    from latentzarr.cli import cli

    text = " ".join(CliRunner().invoke(cli, ["ingest-images", "--help"]).output.split())
    assert "composited on white" in text and "centre-cropped" in text and "--pad" in text
    assert "--recursive" in text


def test_library_report_lists_changes(tmp_path: Path, models_dir: Path) -> None:
    import latentzarr as lz

    _save(tmp_path / "i" / "a.png", (70, 90, 3))
    store = lz.LatentStore.create(tmp_path / "s.zarr")
    report = lz.ingest_images(store, tmp_path / "i", lz.load_model("taef2"), digest=False)
    assert report.ids == ["a"] and report.cropped == {"a": "90x70 -> 88x64"} and report.failed == {}


@pytest.mark.parametrize(("shape", "hint"), [((64, 64), "grayscale"), ((64, 64, 4), "RGBA"),
                                             ((64, 64, 1), "one channel")])
def test_ingest_arrays_names_the_shape_given(shape, hint, tmp_path: Path, models_dir: Path) -> None:
    import latentzarr as lz

    store = lz.LatentStore.create(tmp_path / "s.zarr")
    with pytest.raises(lz.InvalidImageError, match=rf"Got uint8 of shape \({shape[0]}, {shape[1]}.*'g'.*{hint}"):
        lz.ingest_arrays(store, {"g": np.zeros(shape, np.uint8)}, lz.load_model("taef2"))
    assert len(store) == 0


def test_encode_names_the_shape_given(models_dir: Path) -> None:
    import latentzarr as lz

    with pytest.raises(ValueError, match=r"Got shape \(2, 64, 64\) instead \(grayscale"):
        lz.load_model("taef2").encode(np.zeros((2, 64, 64), np.uint8))
