"""Run the preview endpoint under uvicorn until interrupted (used by ``latentzarr serve`` and the demo)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

__all__ = ["bind_socket", "serve"]


def bind_socket(host: str = "127.0.0.1", port: int = 0, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: a free port) for ``uvicorn.Server.run(sockets=[...])``.

    Created with ``proto=IPPROTO_TCP`` on purpose: asyncio sets ``TCP_NODELAY`` only on sockets whose protocol
    says TCP, and ``uvicorn.Config.bind_socket`` leaves it 0. Without ``TCP_NODELAY`` every response that
    uvicorn writes in two parts (headers, body) waits for the client's delayed ACK: about 40 ms on Linux.
    """
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def serve(store_url: str, *, host: str = "127.0.0.1", port: int = 8000, address: str | None = None,
          n_workers: int | None = None, threads_per_worker: int = 2, cache_bytes: int | None = None,
          echo: Callable[[str], None] = print, log_level: str = "warning", **options: Any) -> None:
    """Serve ``store_url`` at ``http://host:port/`` until Ctrl-C (SIGINT) or SIGTERM; then close the cluster.

    ``port=0`` takes a free port. The URL is echoed once the cluster and the store are up. Raises
    ``RuntimeError`` when the server could not start (port taken, cluster unreachable, not a store).
    """
    import uvicorn

    from latentzarr.http.app import create_app

    bound: list[str] = []

    guarded = "; bearer token required" if options.get("token") is not None else ""

    def ready() -> None:
        echo(f"serving {store_url} at {bound[0]} (gallery at /, API under /v1/images{guarded}; Ctrl-C to stop)")

    app = create_app(store_url, address=address, n_workers=n_workers, threads_per_worker=threads_per_worker,
                     cache_bytes=cache_bytes, on_ready=ready, **options)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on", access_log=False)
    sock = bind_socket(host, port)
    shown = f"[{host}]" if ":" in host else host
    bound.append(f"http://{shown}:{sock.getsockname()[1]}/")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the captured Ctrl-C after its graceful shutdown
        pass
    finally:
        sock.close()
    if server.started:
        echo("stopped")
    if not server.started:
        raise RuntimeError(f"Expected the endpoint to start. Got a failed startup instead (see the log above); "
                           f"check that {store_url} is a latent store and the cluster address is reachable.")
