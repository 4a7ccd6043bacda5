"""Write the notebooks of this folder from the cell sources below (run: ``python notebooks/_build.py``).

The ``.ipynb`` files are generated, committed without outputs, and executed top to bottom by
``tests/test_notebooks.py``. Edit the cells here, not in Jupyter, so that changes stay reviewable as code.

Every notebook writes its data under a fresh folder made by :func:`tempfile.mkdtemp`, inside
``$LATENTZARR_NOTEBOOK_DIR`` when that is set (the tests set it), else in the system's temporary folder.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(textwrap.dedent(text).strip())


def code(text: str) -> nbformat.NotebookNode:
    return new_code_cell(textwrap.dedent(text).strip())


def setup(name: str) -> nbformat.NotebookNode:
    """The first code cell of every notebook: inline plots, the data folder, and which Python runs the kernel."""
    return code(f"""
        %matplotlib inline
        import os
        import sys
        import tempfile
        import warnings
        from pathlib import Path

        import latentzarr as lz

        # without ipywidgets, tqdm.auto falls back to text progress bars (and says so once): text bars are fine here
        warnings.filterwarnings("ignore", message="IProgress not found")

        # all data goes to a fresh folder (inside $LATENTZARR_NOTEBOOK_DIR when set), never into the repository
        work = Path(tempfile.mkdtemp(prefix="{name}-", dir=os.environ.get("LATENTZARR_NOTEBOOK_DIR") or None))
        print("kernel python:", sys.prefix)
        print("latentzarr", lz.__version__, "| data folder:", work)
    """)


# --------------------------------------------------------------------------------------------------------------
QUICKSTART = [
    md("""
        # Quick start: a store of latents

        latentzarr keeps AI-generated images as their compressed diffusion **latents** in a Zarr v3 store and
        decodes them to pixels on demand. This notebook makes a small store, looks at it through xarray, decodes
        a few pictures, and prints the storage report.

        The decoder is **taef2**, a tiny autoencoder with the latent space of FLUX.2 (32 channels at 1/8 of the
        resolution). Its weights are read from `$LATENTZARR_MODELS/taef2/`.
    """),
    setup("01_quickstart"),
    md("""
        ## Make a store

        `sample_images` gives eight real photos (small here, 128 x 128 px, so that everything runs in seconds on
        a CPU). `ingest_arrays` encodes them with the model, records each picture's optimised-PNG size for the
        storage report and a digest of its decoded pixels, and commits the latents to the store.
    """),
    code("""
        import time

        import numpy as np

        images = lz.sample_images(128)                     # {name: uint8 (128, 128, 3)}
        model = lz.load_model("taef2", device="cpu")
        store = lz.LatentStore.create(work / "photos.zarr")

        t0 = time.perf_counter()
        report = lz.ingest_arrays(store, images, model, dtype="float16")
        print(f"ingested {len(report.ids)} images in {time.perf_counter() - t0:.1f} s: {', '.join(report.ids)}")
    """),
    md("The photos that went in:"),
    code("""
        from latentzarr.xr import ImageGrid

        ImageGrid(np.stack(list(images.values())), list(images), cols=8, size=1.3)
    """),
    md("""
        ## Open it with xarray

        `open_dataset` gives a lazy, dask-backed `Dataset`: one `latent` variable `(image, channel, y, x)` and
        per-image coordinates (`image_id`, `model`, `array`, `created`). Nothing is read until values are needed.
    """),
    code("""
        ds = lz.open_dataset(work / "photos.zarr")
        ds
    """),
    md("""
        ## Look at the latents

        Each picture is a `32 x 16 x 16` float16 grid here: 16 KiB raw against 48 KiB of pixels. Selecting by id
        uses the `image_id` index. Below, the first eight channels of one latent. At this size they look more like
        noise than like the picture: neighbouring values are only weakly related, one reason why lossless coding
        of latents gains little from spatial prediction (see `design.md`).
    """),
    code("""
        import matplotlib.pyplot as plt

        latent = ds["latent"].sel(image_id="astronaut").values.astype(np.float32)
        print("latent of 'astronaut':", latent.shape, ds["latent"].dtype,
              f"values in [{latent.min():.2f}, {latent.max():.2f}], mean {latent.mean():.3f}, std {latent.std():.3f}")

        fig, axes = plt.subplots(1, 8, figsize=(12, 1.9))
        for c, ax in enumerate(axes):
            ax.imshow(latent[c], cmap="RdBu_r")
            ax.set_title(f"channel {c}", fontsize=8)
            ax.axis("off")
        fig.suptitle("astronaut: latent channels 0-7 (16 x 16)")
        plt.show()
    """),
    md("""
        ## Decode and display

        `ds.latent.decode()` returns a lazy `uint8 (image, y, x, rgb)` array (one dask task per block of images);
        `ds.latent.show(n)` decodes the first `n` and lays them out with their ids.
    """),
    code("""
        pixels = ds.latent.decode()        # lazy: nothing decoded yet
        pixels
    """),
    code("""
        ds.latent.show(4)
    """),
    md("""
        How close are the decodes to the photos that went in? taef2 is a *tiny* autoencoder, so encoding a photo
        loses detail (for a generated image the latent *is* the original and its decode is the picture; what is
        stored is kept bit-exactly). Peak signal-to-noise ratio per picture:
    """),
    code("""
        from skimage.metrics import peak_signal_noise_ratio

        decoded = pixels.values
        psnr = {name: peak_signal_noise_ratio(images[name], decoded[i])
                for i, name in enumerate(pixels["image_id"].values)}
        for name, db in psnr.items():
            print(f"PSNR {name:<22} {db:5.1f} dB")
        print(f"PSNR mean {np.mean(list(psnr.values())):.1f} dB over {len(psnr)} pictures")
    """),
    md("""
        ## Storage report

        `store.info()` sums the stored objects. `data_reduction` compares the stored latents with the
        optimised PNGs of the same pictures (recorded at ingest). The figure depends on the picture size and
        content: at 512 x 512 the eight photos give about 42% with float16 latents (see `design.md`), and smooth or
        synthetic pictures can come out *larger* as latents than as PNGs, hence the per-image table.
    """),
    code("""
        from latentzarr.cli.store_cmds import format_info

        info = store.info()
        print(format_info(info))
        png_per_image = info["source_bytes"] / info["source_known"]
        print(f"data reduction vs optimised PNG: {info['data_reduction']:.1%} "
              f"({info['bytes_per_image']:,.0f} bytes per latent vs {png_per_image:,.0f} bytes per PNG)")
    """),
    code("""
        import pandas as pd

        per_image = pd.DataFrame({
            "png_bytes": pd.Series(report.png_bytes),
            "latent_bytes": pd.Series({i: store.encoded_size(i) for i in report.ids}),
        })
        per_image["reduction"] = (1 - per_image["latent_bytes"] / per_image["png_bytes"]).round(3)
        per_image
    """),
]

# --------------------------------------------------------------------------------------------------------------
TRAINING_SET = [
    md("""
        # A training set from a latent store

        A store of latents is a compact archive; training wants pixels. This notebook selects images, decodes them
        in batches to a Zarr training set with a progress bar (resumable: a second call redoes nothing), and
        streams decoded batches straight into a PyTorch `DataLoader` without writing pixels at all.

        Everything runs locally here; pass `client=` (a `distributed.Client`) to either call to decode on a Dask
        cluster's workers instead.
    """),
    setup("02_training_set"),
    md("""
        ## A small source store

        Sixteen pictures at 64 x 64 px: the eight sample photos and their mirror images.
    """),
    code("""
        photos = lz.sample_images(64)
        pictures = {**photos, **{f"{name}-flip": px[:, ::-1].copy() for name, px in photos.items()}}
        model = lz.load_model("taef2", device="cpu")
        store = lz.LatentStore.create(work / "source.zarr")
        # digest=False skips the pixel digest (one decode per image at ingest) to keep this notebook quick
        lz.ingest_arrays(store, pictures, model, digest=False, progress=True)
        print(len(store), "latents in", store.url)
    """),
    md("""
        ## Select

        The xarray view is a convenient place to select: here every picture except the synthetic colour wheel (and
        its mirror image). Any boolean condition on the coordinates (`image_id`, `model`, `created`) works the same.
    """),
    code("""
        ds = lz.open_dataset(store.url)
        keep = ~ds["image_id"].str.startswith("colorwheel")
        selection = [str(i) for i in ds.sel(image=keep.values)["image_id"].values]
        print(f"selected {len(selection)} of {ds.sizes['image']}:", ", ".join(selection))
    """),
    md("""
        ## Batch decode to a Zarr training set

        `batch_decode` decodes `batch_size` images per task and writes one `(batch_size, H, W, 3)` uint8 chunk per
        task, with a tqdm progress bar. The returned `BatchReport` says what was done and how busy the decoder was.
    """),
    code("""
        out = work / "train.zarr"
        decoded = lz.batch_decode(store, str(out), ids=selection, batch_size=4, progress=True)
        print(decoded)
        print(f"{decoded.images} images in {decoded.chunks} chunks, {decoded.seconds:.1f} s, "
              f"decoder busy {decoded.decode_seconds / decoded.seconds:.0%} of the time")
    """),
    md("""
        The output is a plain Zarr v3 group, readable without latentzarr: one uint8 array per source array, its
        ids (in selection order) in the `image_id` attribute.
    """),
    code("""
        import zarr

        from latentzarr.xr import ImageGrid

        group = zarr.open_group(out, mode="r")
        (name, arr), = group.arrays()
        print(f"array {name!r}: {arr.shape} {arr.dtype}, chunks {arr.chunks}")
        ImageGrid(arr[:8], arr.attrs["image_id"][:8], cols=8, size=1.3)
    """),
    md("""
        Run it again (after a crash, say): chunks already written are skipped, so nothing is decoded twice.
    """),
    code("""
        again = lz.batch_decode(store, str(out), ids=selection, batch_size=4, progress=False)
        print(f"second call: {again.images} images decoded, "
              f"{again.skipped_chunks} of {again.chunks} chunks already done")
    """),
    md("""
        ## Feed a PyTorch DataLoader

        `LatentImageDataset` is an iterable dataset of decoded batches (`{"image": (B, 3, H, W), "id": [...]}`),
        decoded ahead of the consumer; use it with `DataLoader(dataset, batch_size=None)`. With `shuffle=True`,
        `set_epoch` gives each epoch its own order, and each id appears once per epoch. A batch holds ids of one
        source array, so 14 ids in batches of 4 give three batches of 4 and one of 2 (pass `drop_last=True` to drop
        it). Below, two epochs of a toy training loop (a single convolution learning the identity).
    """),
    code("""
        import numpy as np
        import torch
        from torch.utils.data import DataLoader
        from tqdm.auto import tqdm

        dataset = lz.LatentImageDataset(store, selection, batch_size=4, shuffle=True, seed=0, dtype="float32")
        loader = DataLoader(dataset, batch_size=None, num_workers=0)

        torch.manual_seed(0)
        net = torch.nn.Conv2d(3, 3, kernel_size=3, padding=1)
        opt = torch.optim.SGD(net.parameters(), lr=0.5)
        for epoch in range(2):
            dataset.set_epoch(epoch)
            seen, shapes, losses = [], [], []
            for batch in tqdm(loader, desc=f"epoch {epoch}", unit="batch"):
                x = batch["image"]
                seen += batch["id"]
                shapes.append(tuple(x.shape))
                loss = torch.nn.functional.mse_loss(net(x), x)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            print(f"epoch {epoch}: batches {shapes} {x.dtype}")
            print(f"epoch {epoch}: {len(seen)} images, each id once: {sorted(seen) == sorted(selection)}, "
                  f"mean loss {np.mean(losses):.4f}, first ids {seen[:4]}")
    """),
]

# --------------------------------------------------------------------------------------------------------------
WORKLOAD = [
    md("""
        # Workload and cache

        No public trace of an AI-image platform exists, so `synth_trace` generates one whose statistics match the
        published workload (35 months, Zipf-like popularity, fast decay after an image's birth, bursts of
        re-access). This notebook analyses such a trace, replays it through the cache configurations in the
        simulator, and follows the adaptive split alpha between the image tier and the latent tier.

        The trace here is small (200,000 requests, about 10,000 images) so that everything takes seconds;
        `latentzarr trace synth` and `latentzarr simulate` run the same code on millions of requests.
    """),
    setup("03_workload_and_cache"),
    md("""
        ## A synthetic trace and its analysis

        `analyze_trace` reads a trace file with dask.dataframe and measures the four workload observations
        (popularity, re-access intervals, decay by age, miss-ratio curves); with `out_dir` it also writes their
        plots. The table compares the trace with the published figures.
    """),
    code("""
        from latentzarr.traces.analysis import format_table

        trace = lz.synth_trace(200_000, seed=0)
        path = lz.write_trace(trace, work / "trace.parquet")
        stats = lz.analyze_trace(path, sample_requests=50_000, out_dir=work / "analysis")
        %matplotlib inline
        # (writing the plots switched matplotlib to its Agg backend; the line above brings inline figures back)
        print(format_table(stats))
    """),
    code("""
        from IPython.display import Image, display

        for name in ("popularity", "reaccess_cdf", "decay", "mrc"):
            display(Image(filename=str(work / "analysis" / f"{name}.png"), width=420))
    """),
    md("""
        ## The cache simulator

        `simulate` replays the trace through every configuration at several cache sizes (fractions of the working
        set): an image-only LRU, a latent-only LRU (every hit costs a decode), the adaptive dual-format cache, the
        best static split (an oracle that needs the whole trace to choose), and an image-only S3-FIFO. Each request
        costs what the cost model says for its outcome (image hit, latent hit: one decode, miss: a store fetch
        plus a decode); the caches are the very classes the Dask workers use.
    """),
    code("""
        import pandas as pd

        from latentzarr.sim import Workload, plot_alpha_trajectory, plot_latency_vs_size, simulate

        workload = Workload.from_trace(trace)
        doc = simulate(workload, fractions=(0.005, 0.02, 0.1))
        columns = ["cache_fraction", "config", "mean_latency_ms", "image_hit_ratio", "latent_hit_ratio",
                   "miss_ratio", "alpha"]
        table = pd.DataFrame(doc["results"])[columns]
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    """),
    code("""
        display(Image(filename=str(plot_latency_vs_size(doc, work / "latency_vs_size.png")), width=560))
        for row in doc["bars"]["per_size"]:
            print(f"cache {row['cache_fraction']:.1%}: adaptive {row['gain_vs_best_single']:+.1%} lower latency "
                  f"than the best single-format cache, {row['gap_vs_best_static']:.2%} above the oracle static split")
    """),
    md("""
        ## The alpha trajectory

        The adaptive cache moves alpha (the image tier's share of the budget) one step per window of requests,
        toward the tier whose tail hits promise the larger saving. The simulator records where it went; the
        dotted lines are the oracle static alphas.
    """),
    code("""
        display(Image(filename=str(plot_alpha_trajectory(doc, work / "alpha.png")), width=560))
    """),
    md("""
        The same, driven by hand: one `DualFormatCache` at 2% of the working set replays the trace from three
        starting splits. Its `alpha_trajectory` property lists `(requests seen, alpha)` after every window: the
        three runs head for the same region, whatever the start.
    """),
    code("""
        import matplotlib.pyplot as plt

        capacity = int(0.02 * workload.working_set_bytes)
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for start in (0.1, 0.5, 0.9):
            cache = lz.DualFormatCache(capacity, alpha=start, window=1000)
            result = cache.replay(*workload.as_lists())
            steps, alphas = zip(*cache.alpha_trajectory, strict=True)
            ax.plot(steps, alphas, label=f"start {start}")
            print(f"start alpha {start}: final {cache.alpha:.2f}, "
                  f"image hits {result.image_hits / result.requests:.1%}, "
                  f"latent hits {result.latent_hits / result.requests:.1%}, mean {result.mean_latency_ms():.1f} ms")
        ax.set(xlabel="requests", ylabel="alpha (image-tier share)", ylim=(0, 1),
               title="DualFormatCache.alpha_trajectory at 2% of the working set")
        ax.legend()
        plt.show()
    """),
]

# --------------------------------------------------------------------------------------------------------------
COST = [
    md("""
        # The cost model

        Over years, what does it cost to keep every image as a PNG (ImgStore), as a PNG with old images moved to
        an archive tier, or as a compressed latent decoded on a GPU when read (latent-first)? `latentzarr.cost`
        computes monthly and cumulative dollars for each scenario from a set of inputs (`CostInputs`), and sets
        its results beside the paper's (LatentBox, 2026).
    """),
    setup("04_cost_model"),
    md("""
        ## The inputs, and where each comes from

        `PUBLISHED` holds the paper's own cost-model inputs (its Table 5: S3 Standard and Glacier Instant
        Retrieval prices, $2.50 per H100-hour and $0.69 per RTX 5090-hour, 40 ms per decode, 63.2% of reads
        decoding, 10.2 views per image per year, 3.76 M new images a month after the trace) and the facts of
        its 35-month trace. One input is not published: the paper's age-decay model of reads, which decides how
        many reads land on archived images. We use the decay law our synthetic traces fit to the published
        re-access facts. `PUBLISHED_SOURCES` says where each input comes from.
    """),
    code("""
        import pandas as pd

        from latentzarr.cost import PUBLISHED, PUBLISHED_SOURCES


        def origin(source):
            if source.startswith("not "):
                return "not in the paper's model"
            if source.startswith("derived"):
                return "derived from the trace facts"
            return "paper" if "paper-figures.md" in source else "trace facts"

        values = PUBLISHED.to_dict()
        sources = pd.DataFrame({
            "value": {k: ", ".join(f"{g['name']} ${g['usd_per_hour']}/h {g['decode_ms']} ms" for g in v)
                      if k == "gpus" else v for k, v in values.items()},
            "source": PUBLISHED_SOURCES,
        })
        sources["from"] = [origin(s) for s in sources["source"]]
        with pd.option_context("display.max_colwidth", 90):
            display(sources)
        print("inputs by origin:", sources["from"].value_counts().to_dict())
    """),
    md("""
        ## Ours vs the paper

        The paper normalises cumulative cost so that ImgStore's cost over the 35-month trace is 1, and reports
        the trace period, the projection to 2050 at constant prices, and an optimistic projection (GPU prices
        falling 20% a year and storage 10% a year from 2026). `paper_comparison` sets each published figure
        beside ours; the report prints the same table, then the cost tables in dollars.
    """),
    code("""
        from latentzarr.cost import paper_comparison
        from latentzarr.cost.report import build_report, format_report

        rows = pd.DataFrame(paper_comparison()).set_index("figure")
        display(rows[["paper", "ours", "relative_error", "within_10pct"]])
        print(f"{int(rows['within_10pct'].sum())} of {len(rows)} published figures reproduce within 10%")
        print()
        print(format_report(build_report(PUBLISHED)))
    """),
    md("""
        Two readings decide most of it. Reads after the trace are 10.2 views per image per year, so they follow
        the image count (a steady 3.76 M new images a month), while the stored bytes (the paper's "cumulative
        working set") grow at its stated 12.7% a year to 2050, so each new image's bytes grow (by about 3.2% a
        year). The figures that do not reproduce within 10% hinge on two things the paper does not publish: its
        age-decay model of reads (which sets Glacier's retrieval fees) and the latent/PNG size ratio behind its
        charts (about 0.207 where its inputs give 0.193). BENCHMARKS.md ("Cost model") shows
        which modelling choice moves which figure. The cumulative curves:
    """),
    code("""
        from IPython.display import Image

        from latentzarr.cost.plot import plot_cumulative
        from latentzarr.cost.report import write_plot

        Image(filename=str(write_plot(PUBLISHED, work / "cost_published.png")), width=900)
    """),
    md("""
        ## The model fed with our own measurements

        Now a small store measured here: the eight sample photos at 128 x 128 px, encoded with taef2 (float16).
        Its data reduction against optimised PNG sets the latent size (applied to the paper's 1.5 MB image size,
        since decode times and prices are for 1024^2 images), and a simulation of a synthetic trace with the
        adaptive cache at 1% of the working set sets the decode-trigger rate. Prices and GPU decode times stay as
        above (no GPU was measured here).
    """),
    code("""
        from latentzarr.sim import Workload, simulate

        model = lz.load_model("taef2", device="cpu")
        store = lz.LatentStore.create(work / "photos.zarr")
        lz.ingest_arrays(store, lz.sample_images(128), model, digest=False)
        info = store.info()
        print(f"measured: {info['images']} images, {info['bytes_per_image']:,.0f} bytes per latent, "
              f"data reduction vs optimised PNG {info['data_reduction']:.1%}")

        sim_doc = simulate(Workload.from_trace(lz.synth_trace(200_000, seed=0)), fractions=(0.01,),
                           configs=("image-only", "adaptive"))
        adaptive = next(r for r in sim_doc["results"] if r["config"] == "adaptive")
        print(f"measured: adaptive cache at 1% of the working set, image hits {adaptive['image_hit_ratio']:.1%} "
              f"-> decode-trigger rate {1 - adaptive['image_hit_ratio']:.3f}")
    """),
    code("""
        from latentzarr.cost import CostInputs

        measured = CostInputs.from_measurements(
            PUBLISHED,
            latent_bytes=PUBLISHED.image_bytes * (1 - info["data_reduction"]),
            sim_doc=sim_doc,
        )
        print(f"latent bytes {PUBLISHED.latent_bytes:,.0f} (published) -> {measured.latent_bytes:,.0f} (measured); "
              f"decode-trigger rate {PUBLISHED.decode_trigger_rate:.3f} -> {measured.decode_trigger_rate:.3f}")
        print(f"data reduction vs PNG: paper 78.7%, measured here {info['data_reduction']:.1%}")
        print()
        print(format_report(build_report(PUBLISHED, measured)))
    """),
    md("""
        Read the measured variant for what it is: taef2's float16 latents of small photos save less storage
        against PNG than the paper's SD3.5 / FLUX latents at 1024^2 (and the bfloat16 store would save more), so
        latent-first pays for more stored bytes; and the decode-trigger rate of a small simulated trace is not
        the paper's either. Every input can be changed in one line (`measured.replace(...)`) to see what moves the
        result. Monthly cost of the measured variant, split into its parts, and the cumulative curves from
        `plot_cumulative`:
    """),
    code("""
        from latentzarr.cost import cost_series

        series = cost_series(measured)
        last = series.months - 1
        for name, parts in series.parts.items():
            print(f"{name:<26} month {series.months}: " +
                  ", ".join(f"{part} ${values[last]:,.0f}" for part, values in parts.items()))
        path = plot_cumulative([("measured inputs, trace period", series)], work / "cost_measured.png",
                               start_year=measured.trace_end_year - measured.trace_months / 12)
        Image(filename=str(path), width=520)
    """),
]

# --------------------------------------------------------------------------------------------------------------
PRECISION = [
    md("""
        # Precision tiers: trade measured fidelity for bytes

        A store keeps latents **lossless** by default: every id decodes to exactly the pixels it was made with.
        Latents nobody reads any more can be kept in a **lossy precision mode** instead (fewer bits per value),
        at a fidelity cost that is *measured*, not assumed. This notebook, on a small real store:

        1. puts latents losslessly and reads the storage report;
        2. measures each precision mode against WebP and JPEG at the same bytes per image (`evaluate_fidelity`);
        3. shows one picture decoded lossless and in a lossy mode, side by side;
        4. runs the lifecycle policy (*ids not read for 30 days are rewritten in mode M if their PSNR stays >= T
           dB*), first as a dry run;
        5. reclaims the old rows on disk with `store.vacuum()` and checks every id.

        Pictures are 256 x 256 px and the decoder runs on the CPU, so every figure here is from eight photos:
        enough to see the trade-off, not a benchmark (`workflows/fidelity.py` and `workflows/reclaim.py` are).
    """),
    setup("05_precision_tiers"),
    md("""
        ## A lossless store

        The eight sample photos at 256 x 256 px, encoded with taef2 to float16 latents `(32, 32, 32)` and put in
        the store lossless (the default precision).
    """),
    code("""
        import numpy as np

        from latentzarr.cli.store_cmds import format_info

        images = lz.sample_images(256)                     # {name: uint8 (256, 256, 3)}
        model = lz.load_model("taef2", device="cpu")
        store = lz.LatentStore.create(work / "photos.zarr")
        # digest=False skips the pixel digest (one decode per image at ingest) to keep this notebook quick
        report = lz.ingest_arrays(store, images, model, digest=False)
        ids = list(report.ids)

        info = store.info()
        print(format_info(info))
        bytes_lossless = info["stored_bytes"]
        print(f"lossless: {info['bytes_per_image']:,.0f} bytes per image, {bytes_lossless:,} bytes stored "
              f"for {info['images']} images")
    """),
    md("""
        ## Fidelity at equal bytes

        `evaluate_fidelity` stores each precision mode, decodes it and compares the pixels with the **lossless
        decode** (PSNR in dB, SSIM); then it encodes the lossless decode with WebP and JPEG, at a few qualities
        and at the quality whose size matches each lossy mode's bytes per image (rows `@<mode>`), so latents and
        image codecs are compared at equal bytes. The modes here:

        - `lossless`: the reference row (PSNR `inf`);
        - `q8`: 8-bit quantisation per channel;
        - `wstep:0.08`: uniform steps per channel, weighted by how much each channel moves the decoded pixels.
          Its steps depend on the decoder, so the mode is *resolved* with the model first (its channel
          sensitivity, measured here on a 16 x 16 latent-pixel crop of two latents).
    """),
    code("""
        from latentzarr.precision import resolve_mode

        latents = store.get(ids)                            # float16 (8, 32, 32, 32), as stored
        wstep = resolve_mode("wstep:0.08", model, latents[:2, :, 8:24, 8:24])
        print(f"{wstep.name}: per-channel steps from {min(wstep.steps):.3f} to {max(wstep.steps):.3f}")

        # batch_size: decodes of 8 latents at a time (every decode of the evaluation uses the same batch size)
        result = lz.evaluate_fidelity(latents, model, ["lossless", "q8", wstep], ["webp", "jpeg"],
                                      qualities=(50, 75, 90, 95), names=ids, batch_size=8)
        columns = ["method", "setting", "bytes_mean", "reduction_vs_png", "psnr_mean", "psnr_min", "ssim_mean"]
        result.summary[columns].round({"bytes_mean": 0, "reduction_vs_png": 3, "psnr_mean": 2, "psnr_min": 2,
                                       "ssim_mean": 4})
    """),
    md("""
        `reduction_vs_png` compares with the optimised PNG of the lossless decode. Rate-distortion plot: mean
        PSNR against bytes per image (log scale); crosses are the byte-matched image-codec points. The latent
        modes sit well above WebP and JPEG at the same bytes: they lose a little precision of the latent, where
        an image codec has to throw away pixel detail.
    """),
    code("""
        from IPython.display import Image

        from latentzarr.precision import plot_rate_distortion

        plot_rate_distortion(result, str(work / "rate_distortion.png"),
                             title="Rate-distortion, 8 photos 256 x 256, taef2 float16 latents")
        Image(filename=str(work / "rate_distortion.png"), width=640)
    """),
    md("""
        ## One picture, lossless and at wstep:0.08

        The lossless decode, the decode of the same latent stored at `wstep:0.08`, and their difference
        (absolute, amplified 50 times) to show where the pixels moved.
    """),
    code("""
        from latentzarr.precision import roundtrip
        from latentzarr.precision.fidelity import psnr
        from latentzarr.xr import ImageGrid

        name = "astronaut"
        one = latents[ids.index(name)][None]
        stored, nbytes = roundtrip(one, wstep, dtype=np.float16)   # float16 values, as the store returns them
        exact, lossy = model.decode(one, batch_size=1)[0], model.decode(stored, batch_size=1)[0]
        db = psnr(exact, lossy)
        print(f"{name}: {wstep.name} PSNR {db:.2f} dB vs the lossless decode, {int(nbytes[0]):,} bytes "
              f"(lossless {store.encoded_size(name):,})")
        difference = np.clip(50 * np.abs(exact.astype(np.int16) - lossy.astype(np.int16)), 0, 255).astype(np.uint8)
        ImageGrid(np.stack([exact, lossy, difference]),
                  ["lossless", f"{wstep.name}: PSNR {db:.1f} dB", "|difference| x 50"], cols=3, size=3.2)
    """),
    md("""
        ## The lifecycle policy

        `plan_lifecycle` picks the ids of a model that are still lossless and were not read for `days` days;
        `apply_lifecycle` decodes each one lossless and in the mode, and rewrites only those whose PSNR is at
        least `min_psnr` dB (the others stay lossless, bit-exact). Last-access times would come from an access
        log or a trace (`read_access_log`, `last_access_from_trace`); here they are made up: the policy's clock
        is 100 days after ingest, half the ids were last read 40 days ago, the other half yesterday.
    """),
    code("""
        from datetime import UTC, datetime, timedelta

        now = datetime.now(UTC) + timedelta(days=100)      # the policy's clock
        old, recent = ids[:4], ids[4:]
        last_access = {**{i: now - timedelta(days=40) for i in old}, **{i: now - timedelta(days=1) for i in recent}}

        plan = lz.plan_lifecycle(store, last_access, days=30, mode=wstep, min_psnr=45.0, model="taef2", now=now)
        print("plan:", plan.describe())
        print("candidates:", [c.id for c in plan.candidates])
    """),
    md("""
        A dry run checks every candidate and says what would be saved, writing nothing:
    """),
    code("""
        dry = lz.apply_lifecycle(store, plan, report_path=None, dry_run=True, decoder=model)
        print(f"stored bytes unchanged by the dry run: {store.info()['stored_bytes'] == bytes_lossless}")
    """),
    md("""
        The real run rewrites the ids that pass and appends every decision to a JSON-lines journal (a re-run
        resumes from it). A demoted id now says which precision it is stored in:
    """),
    code("""
        import pandas as pd

        life = lz.apply_lifecycle(store, plan, report_path=work / "lifecycle.jsonl", decoder=model)
        demoted = old[0]
        record = store.record(demoted)
        print(f"demoted id {demoted!r}: precision {record['precision']}, lossy {record['lossy']}")
        print(f"untouched id {recent[0]!r}: precision {store.record(recent[0])['precision']}")
        pd.Series(life.to_dict(), name="lifecycle report").to_frame()
    """),
    md("""
        ## Reclaim the space: vacuum

        The rewrite wrote the new, smaller chunks but left the old lossless rows where they were (readers of a
        captured view may still use them), so the store is now *bigger* on disk than before. `store.vacuum()`
        reclaims them: a shard no id points into is deleted, and a shard still holding ids but mostly garbage
        is first compacted (its live chunks copied as stored, checked, the ids moved). A shard is only deleted
        once a vacuum has seen it garbage for `grace` seconds (one hour by default); `grace=0` reclaims at once,
        which is safe here since nothing else uses the store.
    """),
    code("""
        bytes_lifecycle = store.info()["stored_bytes"]
        plan_vacuum = store.vacuum(dry_run=True, grace=0)
        print(f"dry run: {plan_vacuum.shards} shards; would compact {plan_vacuum.compacted_shards} "
              f"(moving {plan_vacuum.relocated_ids} ids, {plan_vacuum.relocated_bytes:,} bytes) and delete "
              f"{plan_vacuum.deleted_shards} ({plan_vacuum.reclaimed_bytes:,} bytes)")
        print(f"stored bytes unchanged by the dry run: {store.info()['stored_bytes'] == bytes_lifecycle}")
    """),
    code("""
        vacuumed = store.vacuum(grace=0)
        bytes_vacuum = store.info()["stored_bytes"]
        print(f"vacuum: {vacuumed.compacted_shards} shards compacted, {vacuumed.deleted_shards} deleted, "
              f"{vacuumed.stored_bytes_before:,} -> {vacuumed.stored_bytes_after:,} bytes")
        print(f"stored bytes: lossless {bytes_lossless:,} | after lifecycle {bytes_lifecycle:,} | "
              f"after vacuum {bytes_vacuum:,} ({bytes_vacuum / bytes_lossless:.1%} of lossless)")
    """),
    code("""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.5, 3.2), dpi=100)
        ax = fig.subplots()
        labels = ["lossless", "after lifecycle", "after vacuum"]
        values = [bytes_lossless / 1000, bytes_lifecycle / 1000, bytes_vacuum / 1000]
        bars = ax.bar(labels, values, color=["C0", "C3", "C2"])
        ax.bar_label(bars, fmt="%.0f KB")
        ax.set(ylabel="stored bytes (KB)", title=f"{len(ids)} photos, half demoted to {wstep.name}")
        ax.margins(y=0.15)
        fig
    """),
    md("""
        Finally, every id is read back and checked against the digest of what it stores (for a demoted id, the
        digest of its rounded values: still a bit-exact check):
    """),
    code("""
        checked = store.verify()
        print(f"verify: {checked['checked']} checked, {checked['ok']} ok, {len(checked['mismatched'])} mismatched, "
              f"{len(checked['unreadable'])} unreadable")
        print("lossy images:", store.info()["lossy_images"], "of", len(store))
    """),
    md("""
        The same steps at scale: `latentzarr lifecycle` and `latentzarr vacuum` on the command line (the lifecycle
        can run its checks as Dask tasks with `client=`), and `workflows/reclaim.py` for the bytes on disk of a
        larger store with a synthetic access trace.
    """),
]

NOTEBOOKS = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_training_set.ipynb": TRAINING_SET,
    "03_workload_and_cache.ipynb": WORKLOAD,
    "04_cost_model.ipynb": COST,
    "05_precision_tiers.ipynb": PRECISION,
}


def build(folder: Path = HERE) -> list[Path]:
    """Write every notebook (without outputs) to ``folder``; return the paths written."""
    paths = []
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(cells=cells, metadata={"kernelspec": KERNELSPEC,
                                                 "language_info": {"name": "python"}})
        for i, cell in enumerate(nb.cells):
            cell["id"] = f"{Path(name).stem[:2]}-{i:02d}"  # stable ids: regenerating gives identical files
        nbformat.validate(nb)
        path = folder / name
        nbformat.write(nb, path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in build():
        print("wrote", p)
