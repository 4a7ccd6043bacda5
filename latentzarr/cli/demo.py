"""``latentzarr demo``: the main job on embedded defaults."""

from __future__ import annotations

from pathlib import Path

import click

from latentzarr.cli._common import one_line_errors


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("latentzarr-demo"),
              show_default=True, help="Folder for the store, the source photos and the decoded pictures.")
@click.option("--size", type=click.IntRange(64, 2048), default=512, show_default=True, help="Picture side (px).")
@click.option("--images", type=click.IntRange(1, 8), default=8, show_default=True, help="How many sample photos.")
@click.option("--dtype", type=click.Choice(["float16", "bfloat16", "float32"]), default="float16", show_default=True)
@click.option("--no-serve", is_flag=True, help="Exit after the report instead of serving the store over HTTP.")
@one_line_errors
def demo(out: Path, size: int, images: int, dtype: str, no_serve: bool) -> None:
    """Build a latent store from sample photos, report the storage saved, decode and verify every picture."""
    from latentzarr.demo import run_demo

    if size % 8:
        raise click.BadParameter(f"Expected a multiple of 8. Got {size} instead.", param_hint="--size")
    run_demo(out, size=size, images=images, dtype=dtype, echo=click.echo)
    if not no_serve:
        click.echo("(HTTP preview serving is not part of this version yet; the store is ready at "
                   f"{out / 'store.zarr'})")
