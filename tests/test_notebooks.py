"""Execute every notebook in ``notebooks/`` top to bottom (nbclient, the ``python3`` kernel) and check key outputs.

Each notebook writes its data under ``$LATENTZARR_NOTEBOOK_DIR``, set here to the test's ``tmp_path``, so the test
can also open what the notebook wrote and check the printed figures against it.
"""

from __future__ import annotations

import ast
import base64
import io
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT_S = 300

pytestmark = pytest.mark.slow


def run_notebook(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[nbformat.NotebookNode, float]:
    """Execute ``notebooks/<name>`` in a fresh kernel; return the executed notebook and its wall time (s)."""
    monkeypatch.setenv("LATENTZARR_NOTEBOOK_DIR", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name} is committed with outputs"
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    seconds = time.perf_counter() - t0
    print(f"{name}: executed in {seconds:.1f} s")
    assert_clean(nb)
    return nb, seconds


def assert_clean(nb: nbformat.NotebookNode) -> None:
    """No error outputs; the kernel is this interpreter's environment (the venv), not some other Python."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"{out.get('ename')}: {out.get('evalue')}"
    prefix = re.search(r"^kernel python: (.+)$", text_of(nb), re.M)
    assert prefix is not None, "the setup cell did not print the kernel's sys.prefix"
    assert Path(prefix.group(1).strip()).resolve() == Path(sys.prefix).resolve()


def text_of(nb: nbformat.NotebookNode, *, stream: str = "stdout") -> str:
    """All ``stream`` output (and text/plain results for stdout) of the notebook, in order."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream" and out["name"] == stream:
                parts.append(out["text"])
            elif stream == "stdout" and "data" in out and "text/plain" in out["data"]:
                parts.append(out["data"]["text/plain"] + "\n")
    return "".join(parts)


def pngs_of(nb: nbformat.NotebookNode) -> list[np.ndarray]:
    """Every image/png output, decoded to an array."""
    from PIL import Image

    images = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" in data:
                with Image.open(io.BytesIO(base64.b64decode(data["image/png"]))) as im:
                    images.append(np.asarray(im.convert("RGB")))
    return images


def pngs_of_cell(nb: nbformat.NotebookNode, marker: str) -> list[np.ndarray]:
    """The image/png outputs of the one code cell whose source contains ``marker``."""
    cells = [c for c in nb.cells if c.cell_type == "code" and marker in c.source]
    assert len(cells) == 1, f"{len(cells)} cells contain {marker!r}"
    return pngs_of(nbformat.v4.new_notebook(cells=cells))


def assert_picture(px: np.ndarray, *, min_side: int = 100) -> None:
    """A real picture: not tiny, not blank, many distinct colours."""
    assert min(px.shape[:2]) >= min_side, px.shape
    assert px.std() > 20, "the picture is (almost) a single colour"
    colours = np.unique(px.reshape(-1, 3), axis=0)
    assert len(colours) > 500, f"only {len(colours)} distinct colours"


def workdir(tmp_path: Path, prefix: str) -> Path:
    (path,) = tmp_path.glob(f"{prefix}-*")
    return path


def test_quickstart(models_dir, tmp_path, monkeypatch):
    from latentzarr import LatentStore

    nb, _ = run_notebook("01_quickstart.ipynb", tmp_path, monkeypatch)
    text = text_of(nb)
    store = LatentStore.open(workdir(tmp_path, "01_quickstart") / "photos.zarr")
    assert len(store) == 8
    info = store.info()

    m = re.search(r"data reduction vs optimised PNG: (-?[\d.]+)% \(([\d,]+) bytes per latent vs ([\d,]+) bytes", text)
    assert m is not None, "storage report line missing"
    assert float(m.group(1)) == pytest.approx(100 * info["data_reduction"], abs=0.05)
    assert int(m.group(2).replace(",", "")) == round(info["bytes_per_image"])
    assert 0 < info["data_reduction"] < 1  # taef2 float16 latents of real photos are smaller than their PNGs
    assert "taef2-32x16x16-float16" in text  # the format_info table lists the array

    # the decoded pictures resemble the photos (taef2 at 128 px: well above noise)
    psnr = float(re.search(r"PSNR mean ([\d.]+) dB over 8 pictures", text).group(1))
    assert psnr > 18

    # the decoded pictures, shown by ds.latent.show(4): a 2 x 2 grid of photos
    (grid,) = pngs_of_cell(nb, "ds.latent.show(4)")
    assert_picture(grid, min_side=250)
    (inputs,) = pngs_of_cell(nb, "ImageGrid(np.stack(list(images.values()))")
    assert_picture(inputs)
    (channels,) = pngs_of_cell(nb, "latent channels 0-7")
    assert channels.shape[1] > 4 * channels.shape[0] and channels.std() > 20  # a row of 8 colour maps


def test_training_set(models_dir, tmp_path, monkeypatch):
    import zarr

    nb, _ = run_notebook("02_training_set.ipynb", tmp_path, monkeypatch)
    text = text_of(nb)

    m = re.search(r"selected (\d+) of (\d+):", text)
    assert m is not None and (int(m.group(1)), int(m.group(2))) == (14, 16)

    group = zarr.open_group(workdir(tmp_path, "02_training_set") / "train.zarr", mode="r")
    ((_name, arr),) = group.arrays()
    assert arr.shape == (14, 64, 64, 3) and arr.dtype == np.uint8
    ids = list(arr.attrs["image_id"])
    assert len(ids) == 14 and not any(i.startswith("colorwheel") for i in ids)
    assert_picture(arr[0], min_side=64)
    (grid,) = pngs_of_cell(nb, "ImageGrid(arr[:8]")
    assert_picture(grid)
    assert "second call: 0 images decoded, 4 of 4 chunks already done" in text

    # the progress bars ran (text bars on stderr without ipywidgets, widgets with it)
    stderr = text_of(nb, stream="stderr")
    widgets = sum("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                  for c in nb.cells for o in c.get("outputs", []))
    assert widgets or re.search(r"batch-decode: 100%.*14/14", stderr), stderr[-2000:]

    orders = []
    for epoch in (0, 1):
        m = re.search(rf"^epoch {epoch}: batches (\[.*\]) torch\.float32$", text, re.M)
        assert m is not None, text
        shapes = ast.literal_eval(m.group(1))
        assert sorted(shapes) == [(2, 3, 64, 64), (4, 3, 64, 64), (4, 3, 64, 64), (4, 3, 64, 64)]
        m = re.search(rf"^epoch {epoch}: 14 images, each id once: True, mean loss [\d.]+, first ids (\[.*\])$",
                      text, re.M)
        assert m is not None, text
        orders.append(ast.literal_eval(m.group(1)))
    assert orders[0] != orders[1]  # set_epoch reshuffles


def test_workload_and_cache(tmp_path, monkeypatch):
    nb, _ = run_notebook("03_workload_and_cache.ipynb", tmp_path, monkeypatch)
    text = text_of(nb)

    m = re.search(r"top 1% of objects: share of views\s+39\.0%\s+([\d.]+)%", text)
    assert m is not None and 20 < float(m.group(1)) < 60  # a Zipf-like trace, near the published 39%
    assert re.search(r"200000 requests, \d+ objects, 1065 days", text)
    for config in ("image-only", "latent-only", "adaptive", "best-static", "s3fifo-image"):
        assert len(re.findall(rf"^\s*0\.\d+\s+{config}\s+[\d.]+", text, re.M)) == 3, config
    assert len(re.findall(r"^cache [\d.]+%: adaptive [+-][\d.]+% lower latency", text, re.M)) == 3

    finals = [float(a) for a in re.findall(r"^start alpha 0\.\d: final ([\d.]+)", text, re.M)]
    assert len(finals) == 3 and all(0 <= a <= 1 for a in finals)
    assert max(finals) - min(finals) < 0.5  # from 0.1, 0.5 and 0.9 the tuner heads for one region

    pictures = pngs_of(nb)
    assert len(pictures) == 7  # four analysis plots, latency vs size, alpha (simulator), alpha (by hand)
    for px in pictures:
        assert px.shape[0] > 200 and px.std() > 5


def test_cost_model(models_dir, tmp_path, monkeypatch):
    from latentzarr import LatentStore
    from latentzarr.cost import PAPER_FIGURES, PUBLISHED, paper_comparison

    nb, _ = run_notebook("04_cost_model.ipynb", tmp_path, monkeypatch)
    text = text_of(nb)

    assert "inputs by origin: {'paper': " in text
    assert "decode_trigger_rate" in text and "storage_usd_per_gb_month" in text

    # ours vs the paper: the summary, the side-by-side table, then the cost tables
    n_ok = sum(r["within_10pct"] for r in paper_comparison())
    assert f"{n_ok} of {len(PAPER_FIGURES)} published figures reproduce within 10%" in text
    assert re.search(r"^2050/ImgStore\s+164\s+\d+\s+[+-][\d.]+%\s+(yes|NO)$", text, re.M)
    for title in ("Published inputs: cumulative cost", "Published inputs, optimistic prices: cumulative cost",
                  "Measured figures given here: cumulative cost"):
        assert title in text
    for scenario in ("ImgStore ", "ImgStore+archive", "Latent-first (H100)", "Latent-first (RTX 5090)"):
        assert len(re.findall(rf"^{re.escape(scenario)}\s+[\d,]+\s+[\d.]+\s+-?[\d.]+%", text, re.M)) >= 3, scenario

    # the measured variant uses the store the notebook built
    info = LatentStore.open(workdir(tmp_path, "04_cost_model") / "photos.zarr").info()
    m = re.search(r"latent bytes [\d,]+ \(published\) -> ([\d,]+) \(measured\)", text)
    assert m is not None
    assert int(m.group(1).replace(",", "")) == round(PUBLISHED.image_bytes * (1 - info["data_reduction"]))

    pictures = pngs_of(nb)
    assert len(pictures) == 2
    for px in pictures:
        assert px.shape[0] > 300 and px.std() > 5


def test_precision_tiers(models_dir, tmp_path, monkeypatch):
    from latentzarr import LatentStore
    from latentzarr.lifecycle import read_journal

    nb, _ = run_notebook("05_precision_tiers.ipynb", tmp_path, monkeypatch)
    text = text_of(nb)
    work = workdir(tmp_path, "05_precision_tiers")
    store = LatentStore.open(work / "photos.zarr")
    assert len(store) == 8

    m = re.search(r"^lossless: ([\d,]+) bytes per image, ([\d,]+) bytes stored for 8 images$", text, re.M)
    assert m is not None, text
    lossless_bytes = int(m.group(2).replace(",", ""))

    # the fidelity table (a DataFrame): the lossy latent modes beat WebP and JPEG at their matched bytes
    def row(method: str, setting: str) -> tuple[float, float]:
        found = re.search(rf"^\d+\s+{method}\s+{re.escape(setting)}\s+([\d.]+)\s+[\d.]+\s+([\d.]+|inf)\s", text, re.M)
        assert found is not None, f"no {method} {setting} row in the fidelity table"
        return float(found.group(1)), float(found.group(2))

    assert row("latent", "lossless")[1] == float("inf")
    for mode in ("q8", "wstep:0.08"):
        nbytes, db = row("latent", mode)
        assert nbytes < lossless_bytes / 8 and db > 40, (mode, nbytes, db)
        for codec in ("webp", "jpeg"):
            assert row(codec, f"@{mode}")[1] < db, (codec, mode)
    (rd_plot,) = pngs_of_cell(nb, "plot_rate_distortion(result")
    assert rd_plot.shape[0] > 300 and rd_plot.std() > 5

    # lifecycle: the 4 ids read 40 days ago are rewritten at wstep:0.08 (they pass the 45 dB check), the others stay
    candidates = ast.literal_eval(re.search(r"^candidates: (\[.*\])$", text, re.M).group(1))
    assert len(candidates) == 4
    assert text.count("stored bytes unchanged by the dry run: True") == 2  # lifecycle and vacuum dry runs
    assert re.search(r"dry run, mode wstep:0\.08: 4 checked, 0 would stay lossless; \d+ bytes now -> \d+ after", text)
    journal = read_journal(work / "lifecycle.jsonl")
    assert sorted(i for i, e in journal.items() if e["status"] == "rewritten") == sorted(candidates)
    m = re.search(r"^demoted id '([\w-]+)': precision (\S+), lossy True$", text, re.M)
    assert m is not None and m.group(1) in candidates and m.group(2) == "wstep:0.08"
    record = store.record(m.group(1))
    assert record["precision"] == "wstep:0.08" and record["lossy"]
    for image_id in set(store.ids()) - set(candidates):
        assert store.record(image_id)["precision"] == "lossless"
    assert "lossy images: 4 of 8" in text

    # the side-by-side picture: its PSNR is the one the lifecycle check measured for that id (same stored values)
    m = re.search(r"^astronaut: wstep:0\.08 PSNR ([\d.]+) dB vs the lossless decode", text, re.M)
    assert m is not None and "astronaut" in candidates
    assert float(m.group(1)) == pytest.approx(journal["astronaut"]["psnr"], abs=0.05)
    (pair,) = pngs_of_cell(nb, "ImageGrid(np.stack([exact, lossy, difference])")
    assert pair.shape[1] > 2.5 * pair.shape[0]
    assert_picture(pair[:, : pair.shape[1] // 3], min_side=200)

    # space: the lifecycle leaves the old rows (bigger), the vacuum reclaims them (smaller than lossless only)
    m = re.search(r"^stored bytes: lossless ([\d,]+) \| after lifecycle ([\d,]+) \| after vacuum ([\d,]+) ", text, re.M)
    assert m is not None, text
    before, lifecycle, vacuumed = (int(g.replace(",", "")) for g in m.groups())
    assert before == lossless_bytes
    assert vacuumed < before < lifecycle
    assert store.info()["stored_bytes"] == vacuumed
    (bars,) = pngs_of_cell(nb, "Figure(figsize")
    assert bars.shape[0] > 200 and bars.std() > 5
    assert "verify: 8 checked, 8 ok, 0 mismatched, 0 unreadable" in text
    checked = store.verify()
    assert checked["ok"] == 8 and not checked["mismatched"] and not checked["unreadable"]
    assert len(pngs_of(nb)) == 3
