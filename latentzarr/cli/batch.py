"""``latentzarr batch-decode``: decode a selection of a store into a training set; prints images/s."""

from __future__ import annotations

from pathlib import Path

import click

from latentzarr.cli._common import one_line_errors


@click.command("batch-decode")
@click.argument("store")
@click.argument("out")
@click.option("--ids", "ids_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="File of image ids, one per line (default: every id in the store).")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=8, show_default=True,
              help="Images per chunk, task and forward pass (a resume must use the same).")
@click.option("--format", "fmt", type=click.Choice(["zarr", "png", "webp", "jpeg"]), default="zarr",
              show_default=True, help="Zarr uint8 arrays, or one tar shard of encoded images per chunk.")
@click.option("--quality", type=click.IntRange(1, 100), help="webp/jpeg quality.")
@click.option("--model", help="Decoder name or weights folder (default: the model recorded in the store).")
@click.option("--scheduler", help="Address of a Dask scheduler to run on (default: decode in this process).")
@click.option("--workers", type=click.IntRange(0), default=0, show_default=True,
              help="Start a local cluster of this many workers (0: decode in this process).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@one_line_errors
def batch_decode_cmd(store: str, out: str, ids_file: Path | None, batch_size: int, fmt: str, quality: int | None,
                     model: str | None, scheduler: str | None, workers: int, no_progress: bool) -> None:
    """Decode the latents of STORE (or those listed in --ids) into OUT; resumable: a re-run skips finished chunks.

    OUT gets one output per source array (model and latent shape): a Zarr uint8 array (N, H, W, 3) with the ids
    in its ``image_id`` attribute, or a folder of tar shards.
    """
    from latentzarr.batch import batch_decode

    ids = None
    if ids_file is not None:
        ids = [line.strip() for line in ids_file.read_text().splitlines() if line.strip()]
    client = None
    if scheduler or workers:
        from latentzarr.cluster import start_cluster

        client = start_cluster(store, address=scheduler, n_workers=workers or None, model=model)
    try:
        report = batch_decode(store, out, ids=ids, client=client, batch_size=batch_size, format=fmt,
                              quality=quality, model=model, progress=not no_progress)
    finally:
        if client is not None:
            client.close()
    click.echo(f"decoded {report.images} images ({report.skipped_chunks} of {report.chunks} chunks already done) "
               f"into {report.out} in {report.seconds:.2f} s: {report.images_per_s:.2f} images/s")
