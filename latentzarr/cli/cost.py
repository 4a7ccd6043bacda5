"""``latentzarr cost``: the long-term cost model (ImgStore, archive tiering, latent-first at two GPU prices)."""

from __future__ import annotations

import click

from latentzarr.cli._common import one_line_errors

__all__ = ["cost"]


@click.command("cost")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, writable=True), default=None, help="Output JSON.")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Cumulative-cost PNG (a second *_measured.png is written next to it).")
@click.option("--horizon-year", type=float, default=2050, show_default=True, help="Project to the end of this year.")
@click.option("--set", "settings", multiple=True, metavar="FIELD=VALUE",
              help="Change a published input (a CostInputs field), e.g. storage_usd_per_gb_month=0.02.")
@click.option("--gpu", "gpus", multiple=True, metavar="NAME:USD_PER_HOUR:DECODE_MS",
              help="Replace the GPU list (repeat; the last is the consumer GPU of the headline).")
@click.option("--store", default=None, help="Measured: latent and image bytes from this store's info().")
@click.option("--sim-json", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Measured: decode-trigger rate from a `latentzarr simulate` JSON.")
@click.option("--sim-config", default="adaptive", show_default=True, help="Configuration in --sim-json.")
@click.option("--sim-fraction", type=float, default=None, help="Cache fraction in --sim-json.")
@click.option("--latent-bytes", type=float, default=None, help="Measured bytes per stored latent.")
@click.option("--image-bytes", type=float, default=None, help="Measured bytes per stored image (PNG).")
@click.option("--decode-trigger-rate", type=float, default=None, help="Measured fraction of reads that decode.")
@click.option("--gpu-decode-ms", multiple=True, metavar="NAME=MS", help="Measured decode ms of a listed GPU.")
@one_line_errors
def cost(**kwargs: object) -> None:
    """Cumulative cost of ImgStore, ImgStore with archive tiering and latent-first storage over time.

    Prints the paper's published figures beside this model's on the paper's inputs (relative error, within-10%
    check), the cumulative cost tables (constant and falling prices) and the same model fed with figures measured
    in this project. Every input and its source: `python -c "import latentzarr.cost as c;
    print(c.PUBLISHED_SOURCES)"`.
    """
    from latentzarr.cost.report import run

    kwargs["settings"] = list(kwargs["settings"])  # type: ignore[arg-type]
    kwargs["gpus"] = list(kwargs["gpus"])  # type: ignore[arg-type]
    kwargs["gpu_decode_ms"] = list(kwargs["gpu_decode_ms"])  # type: ignore[arg-type]
    _, text = run(**kwargs)  # type: ignore[arg-type]
    click.echo(text)
