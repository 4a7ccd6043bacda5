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
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to serve the gallery on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to serve the gallery on (0: any free port).")
@one_line_errors
def demo(out: Path, size: int, images: int, dtype: str, no_serve: bool, host: str, port: int) -> None:
    """Build a latent store from sample photos, report the storage saved, decode and verify every picture,
    then serve the store's gallery over HTTP until Ctrl-C (skip with --no-serve)."""
    from latentzarr.demo import run_demo

    if size % 8:
        raise click.BadParameter(f"Expected a multiple of 8. Got {size} instead.", param_hint="--size")
    run_demo(out, size=size, images=images, dtype=dtype, echo=click.echo)
    if not no_serve:
        from latentzarr.http.server import serve

        try:
            serve(str(out / "store.zarr"), host=host, port=port, echo=click.echo)
        except (OSError, RuntimeError) as exc:
            raise click.ClickException(str(exc).splitlines()[0]) from exc
