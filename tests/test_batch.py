"""Batch decode in this process: Zarr and shard output, bit-exact pixels, resume, bad input, dataset, CLI.

Latents are random (shape plumbing) decoded by the real trained taef2 model; 8x8 latents (64x64 pictures) keep
each decode to a few milliseconds.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import zarr
from PIL import Image

from latentzarr.batch import BatchOutputError, LatentImageDataset, batch_decode
from latentzarr.errors import DuplicateIdError, UnknownIdError

BS = 4
ARRAY = "taef2-32x8x8-float16"
SMALL = "taef2-32x4x4-float16"


@pytest.fixture(scope="module")
def source(tmp_path_factory, models_dir):
    """A store with 14 ids in an 8x8 array and 3 in a 4x4 array; returns (url, latents by id)."""
    from latentzarr.store import LatentStore

    path = tmp_path_factory.mktemp("batch") / "store.zarr"
    store = LatentStore.create(path, shard_images=8)
    rng = np.random.default_rng(3)
    big = rng.normal(0, 1, (14, 32, 8, 8)).astype(np.float16)
    small = rng.normal(0, 1, (3, 32, 4, 4)).astype(np.float16)
    ids = [f"img-{i:02d}" for i in range(14)]
    store.put(ids, big, model="taef2")
    store.put(["s-0", "s-1", "s-2"], small, model="taef2")
    latents = dict(zip(ids, big, strict=True)) | dict(zip(["s-0", "s-1", "s-2"], small, strict=True))
    return str(path), latents


class CountingModel:
    """Wraps a model: counts decode calls and optionally fails after ``fail_after`` calls (an interruption)."""

    def __init__(self, model, fail_after: int | None = None) -> None:
        self.model, self.name, self.fail_after, self.calls = model, model.name, fail_after, 0

    def decode(self, latents, batch_size=None):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("interrupted")
        self.calls += 1
        return self.model.decode(latents, batch_size=batch_size)


def expected(taef2, latents: dict, ids: list[str]) -> np.ndarray:
    return taef2.decode(np.stack([latents[i] for i in ids]), batch_size=BS)


def test_zarr_output_equals_direct_decode(source, taef2, tmp_path):
    url, latents = source
    ids = [f"img-{i:02d}" for i in range(14)]
    report = batch_decode(url, str(tmp_path / "out"), ids=ids, batch_size=BS, progress=False, model=taef2)
    assert (report.images, report.total_images, report.chunks, report.skipped_chunks) == (14, 14, 4, 0)
    arr = zarr.open_array(str(tmp_path / "out"), path=ARRAY, mode="r")
    assert arr.shape == (14, 64, 64, 3) and arr.chunks == (BS, 64, 64, 3) and arr.dtype == np.uint8
    assert arr.attrs["image_id"] == ids
    assert np.array_equal(arr[:], expected(taef2, latents, ids))


def test_selection_spanning_arrays_gives_one_output_per_array(source, taef2, tmp_path):
    url, latents = source
    ids = ["s-2", "img-05", "img-01", "s-0", "img-09"]
    report = batch_decode(url, str(tmp_path / "out"), ids=ids, batch_size=BS, progress=False)  # model by name
    assert report.arrays == {SMALL: 2, ARRAY: 3}
    group = zarr.open_group(str(tmp_path / "out"), mode="r")
    for name, members in ((SMALL, ["s-2", "s-0"]), (ARRAY, ["img-05", "img-01", "img-09"])):
        assert group[name].attrs["image_id"] == members
        assert np.array_equal(group[name][:], expected(taef2, latents, members))


def test_resume_after_interruption_redoes_only_missing_chunks(source, taef2, tmp_path):
    url, latents = source
    ids = [f"img-{i:02d}" for i in range(14)]
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="interrupted"):
        batch_decode(url, str(out), ids=ids, batch_size=BS, progress=False, model=CountingModel(taef2, 2))
    markers = sorted((out / "_done" / ARRAY / "c").iterdir())  # marker array: one chunk object per chunk
    assert [m.name for m in markers] == ["0", "1"]
    stamps = {m.name: m.stat().st_mtime_ns for m in markers}
    counting = CountingModel(taef2)
    report = batch_decode(url, str(out), ids=ids, batch_size=BS, progress=False, model=counting)
    assert counting.calls == 2 and report.skipped_chunks == 2 and report.images == 6
    assert {m.name: m.stat().st_mtime_ns for m in markers} == stamps  # finished chunks not rewritten
    arr = zarr.open_array(str(out), path=ARRAY, mode="r")
    assert np.array_equal(arr[:], expected(taef2, latents, ids))

    # lose one chunk's data and marker: a re-run rewrites exactly that chunk
    arr_w = zarr.open_array(str(out), path=ARRAY, mode="r+")
    arr_w[4:8] = 0
    (out / "_done" / ARRAY / "c" / "1").unlink()
    counting = CountingModel(taef2)
    report = batch_decode(url, str(out), ids=ids, batch_size=BS, progress=False, model=counting)
    assert counting.calls == 1 and report.skipped_chunks == 3 and report.images == 4
    assert np.array_equal(arr[:], expected(taef2, latents, ids))


def test_png_shards(source, taef2, tmp_path):
    url, latents = source
    ids = [f"img-{i:02d}" for i in range(6)]
    batch_decode(url, str(tmp_path / "out"), ids=ids, batch_size=BS, format="png", progress=False)
    shards = sorted((tmp_path / "out" / ARRAY).glob("*.tar"))
    assert [s.name for s in shards] == ["00000000.tar", "00000001.tar"]
    got_ids, pixels = [], []
    for shard in shards:
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                got_ids.append(member.pax_headers["latentzarr.image_id"])
                pixels.append(np.asarray(Image.open(io.BytesIO(tar.extractfile(member).read()))))
    assert got_ids == ids
    assert json.loads((tmp_path / "out" / "latentzarr-batch.json").read_text())["ids"] == {ARRAY: ids}
    assert np.array_equal(np.stack(pixels), expected(taef2, latents, ids))  # PNG is lossless


def test_bad_input(source, tmp_path):
    url, _ = source
    out = tmp_path / "out"
    with pytest.raises(UnknownIdError, match="nope"):
        batch_decode(url, str(out), ids=["img-00", "nope"], progress=False)
    assert not out.exists()  # nothing was started
    with pytest.raises(DuplicateIdError):
        batch_decode(url, str(out), ids=["img-00", "img-00"], progress=False)
    with pytest.raises(ValueError, match="empty selection"):
        batch_decode(url, str(out), ids=[], progress=False)
    with pytest.raises(ValueError, match="format"):
        batch_decode(url, str(out), ids=["img-00"], format="gif", progress=False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="other data"):
        batch_decode(url, str(other), ids=["img-00"], progress=False)
    batch_decode(url, str(out), ids=["img-00", "img-01"], batch_size=2, progress=False)
    with pytest.raises(BatchOutputError, match="batch size 2"):
        batch_decode(url, str(out), ids=["img-00", "img-01"], batch_size=4, progress=False)
    with pytest.raises(BatchOutputError, match="selection"):
        batch_decode(url, str(out), ids=["img-01", "img-00"], batch_size=2, progress=False)
    with pytest.raises(BatchOutputError, match="format"):
        batch_decode(url, str(out), ids=["img-00", "img-01"], batch_size=2, format="png", progress=False)


def test_dataset_with_dataloader(source, taef2):
    from torch.utils.data import DataLoader

    url, latents = source
    ids = [f"img-{i:02d}" for i in range(10)]
    ds = LatentImageDataset(url, ids, batch_size=BS, shuffle=True, seed=5, model=taef2)

    def epoch(dataset, **kw):
        return [(b["id"], b["image"]) for b in DataLoader(dataset, batch_size=None, **kw)]

    first = epoch(ds)
    assert sorted(i for batch, _ in first for i in batch) == ids
    for batch_ids, image in first:
        assert image.shape == (len(batch_ids), 3, 64, 64) and str(image.dtype) == "torch.uint8"
        direct = taef2.decode(np.stack([latents[i] for i in batch_ids]), batch_size=BS)
        assert np.array_equal(image.permute(0, 2, 3, 1).numpy(), direct)
    assert [b for b, _ in epoch(ds)] == [b for b, _ in first]  # same seed and epoch: same order
    ds.set_epoch(1)
    assert [b for b, _ in epoch(ds)] != [b for b, _ in first]

    parallel = LatentImageDataset(url, ids, batch_size=BS, dtype="float32")  # model by name in each worker
    got = epoch(parallel, num_workers=2)
    assert sorted(i for batch, _ in got for i in batch) == ids  # each id once across the workers
    assert all(float(img.min()) >= 0 and float(img.max()) <= 1 for _, img in got)
    with pytest.raises(UnknownIdError):
        LatentImageDataset(url, ["img-00", "missing"])


def test_cli_batch_decode(source, tmp_path):
    url, _ = source
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("img-03\nimg-04\nimg-05\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "latentzarr", "batch-decode", url, str(out), "--ids", str(ids_file),
           "--batch-size", "2", "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert done.returncode == 0, done.stderr
    assert "images/s" in done.stdout and "decoded 3 images" in done.stdout
    arr = zarr.open_array(str(out), path=ARRAY, mode="r")
    assert arr.attrs["image_id"] == ["img-03", "img-04", "img-05"] and arr.shape == (3, 64, 64, 3)
    again = subprocess.run([*cmd[:-3], "--batch-size", "3", "--no-progress"], capture_output=True, text=True,
                           env=os.environ.copy(), timeout=300)
    assert again.returncode == 1 and "Error: Expected batch size 2" in again.stderr


def test_every_id_by_default_into_webp_shards(source, tmp_path):
    url, _ = source
    report = batch_decode(url, str(tmp_path / "out"), batch_size=8, format="webp", quality=90, progress=False)
    assert report.arrays == {ARRAY: 14, SMALL: 3} and report.chunks == 3
    names = []
    for shard in sorted((tmp_path / "out").glob("*/*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                im = Image.open(io.BytesIO(tar.extractfile(member).read()))
                assert im.format == "WEBP"
                names.append(member.pax_headers["latentzarr.image_id"])
    assert sorted(names) == sorted([f"img-{i:02d}" for i in range(14)] + ["s-0", "s-1", "s-2"])
