"""The HTTP preview endpoint: an ASGI (Starlette) app over one asynchronous Dask client, and its gallery page."""

from __future__ import annotations

from latentzarr.http.app import AppConfig, create_app
from latentzarr.http.server import serve

__all__ = ["AppConfig", "create_app", "serve"]
