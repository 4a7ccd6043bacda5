"""``latentzarr serve STORE``: the HTTP preview endpoint and gallery over a local or remote Dask cluster."""

from __future__ import annotations

import click

from latentzarr.cli._common import one_line_errors


@click.command("serve")
@click.argument("store")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="TCP port (0: any free port; the URL is printed).")
@click.option("--address", "--scheduler", "address", default=None,
              help="Dask scheduler address (tcp://host:8786); default: start a local cluster.")
@click.option("--workers", "n_workers", type=click.IntRange(1, 256), default=None,
              help="Workers of the local cluster (default: one per GPU, else 2).")
@click.option("--threads", "threads_per_worker", type=click.IntRange(1, 256), default=2, show_default=True,
              help="Threads per local worker.")
@click.option("--cache-mib", type=click.IntRange(1, 2**20), default=256, show_default=True,
              help="Cache budget per worker (MiB, both tiers).")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              default="warning", show_default=True)
@one_line_errors
def serve(store: str, host: str, port: int, address: str | None, n_workers: int | None, threads_per_worker: int,
          cache_mib: int, log_level: str) -> None:
    """Serve STORE's pictures over HTTP (GET /v1/images/{id}) with a gallery page at /, until Ctrl-C."""
    from latentzarr.http.server import serve as run

    try:
        run(store, host=host, port=port, address=address, n_workers=n_workers,
            threads_per_worker=threads_per_worker, cache_bytes=cache_mib * 2**20, echo=click.echo,
            log_level=log_level)
    except (OSError, RuntimeError) as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from exc
