"""``latentzarr serve STORE``: the HTTP preview endpoint and gallery over a local or remote Dask cluster."""

from __future__ import annotations

import click

from latentzarr.cli._common import one_line_errors, open_store
from latentzarr.http.auth import TOKEN_ENV
from latentzarr.http.limits import DEFAULT_BURST, DEFAULT_MAX_BODY, DEFAULT_MAX_URL, DEFAULT_RATE


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
@click.option("--rate-limit", type=click.FloatRange(0, min_open=False), default=DEFAULT_RATE, show_default=True,
              metavar="R", help="Requests per second per client address (token bucket; 0: no limit). "
              "/healthz and /metrics are exempt.")
@click.option("--burst", type=click.IntRange(1), default=DEFAULT_BURST, show_default=True, metavar="N",
              help="Requests a client may make at once before --rate-limit applies.")
@click.option("--max-body", type=click.IntRange(0), default=DEFAULT_MAX_BODY, show_default=True, metavar="BYTES",
              help="Largest request body (the API is GET-only); larger: 413.")
@click.option("--max-url", type=click.IntRange(0), default=DEFAULT_MAX_URL, show_default=True, metavar="BYTES",
              help="Longest path plus query string; longer: 414.")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help=f"File holding a bearer token that every route but /healthz, /openapi.json and the gallery page "
              f"requires (default: ${TOKEN_ENV} if set, else no token). Never pass a token itself as an argument.")
@click.option("--signing-key", "signing_keys", multiple=True, metavar="HEX",
              help="imgproxy URL signing key, hex (repeatable; paired with --signing-salt by order: the first pair "
              "signs, every pair verifies). Unsigned imgproxy-style URLs then get 403.")
@click.option("--signing-salt", "signing_salts", multiple=True, metavar="HEX",
              help="imgproxy URL signing salt, hex (repeatable, one per --signing-key).")
@click.option("--presets", "presets", type=click.Path(exists=True, dir_okay=False), default=None, metavar="FILE",
              help="Named renditions, JSON or TOML (.toml): name -> options (w, h, fit, gravity, dpr, q, format); "
              "used as preset=NAME or pr:NAME.")
@click.option("--presets-only", is_flag=True, default=False,
              help="Serve presets only: any other rendition option gets 403 (arbitrary renditions make the "
              "workers decode and cache without end).")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              default="warning", show_default=True)
@one_line_errors
def serve(store: str, host: str, port: int, address: str | None, n_workers: int | None, threads_per_worker: int,
          cache_mib: int, rate_limit: float, burst: int, max_body: int, max_url: int, token_file: str | None,
          signing_keys: tuple[str, ...], signing_salts: tuple[str, ...], presets: str | None, presets_only: bool,
          log_level: str) -> None:
    """Serve STORE's pictures over HTTP (GET /v1/images/{id}) with a gallery page at /, until Ctrl-C."""
    from latentzarr.http.auth import load_token
    from latentzarr.http.server import serve as run

    token = load_token(token_file)
    if presets_only and presets is None:
        raise click.UsageError("Expected --presets FILE with --presets-only. Got no presets file.")
    from latentzarr.http.imgproxy import Signer
    from latentzarr.http.presets import load_presets

    try:
        if signing_keys or signing_salts:
            Signer(signing_keys, signing_salts)  # refuse bad keys before starting a cluster
        loaded = load_presets(presets) if presets is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    open_store(store)  # a missing or invalid store is a one-line error here, not a failed server startup
    try:
        run(store, host=host, port=port, address=address, n_workers=n_workers,
            threads_per_worker=threads_per_worker, cache_bytes=cache_mib * 2**20, echo=click.echo,
            log_level=log_level, rate_limit=rate_limit or None, burst=burst, max_body=max_body, max_url=max_url,
            token=token, signing_keys=signing_keys, signing_salts=signing_salts, presets=loaded,
            presets_only=presets_only)
    except (OSError, RuntimeError) as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from exc
