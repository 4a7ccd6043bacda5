"""Request limits of the preview endpoint, as one pure ASGI middleware: URL length, body size, per-client rate, token.

Checks, in this order, each answered with the app's JSON error shape ``{"error", "detail", ...}`` and counted in
``latentzarr_http_rejected_total{reason}``:

1. ``414 uri_too_long``: path plus query longer than ``max_url`` bytes (as sent, percent-encoded).
2. ``413 payload_too_large``: a body longer than ``max_body`` bytes. The API is GET-only, so a body is never
   needed: a ``Content-Length`` over the limit is refused before anything is read; a chunked body is read until
   it passes the limit. The response closes the connection (``Connection: close``).
3. ``429 rate_limited`` with ``Retry-After`` (whole seconds): the client's token bucket is empty. One bucket per
   client address (IPv6 clients per ``/64``, the block one host usually holds), refilled at ``rate`` requests/s
   up to ``burst``. ``/healthz`` and ``/metrics`` are exempt by default (probes and scrapes must not be refused,
   nor use up a user's budget), but only for requests that pass the token check: without the right token every
   request is rate limited, so guessing tokens is throttled on every path.
4. ``401 unauthorized`` with ``WWW-Authenticate: Bearer``: a token is configured and the request is not for a
   public path (see :mod:`latentzarr.http.auth`) and lacks ``Authorization: Bearer <token>``.

The client address is the ASGI ``client`` of the connection. Behind a reverse proxy that is the proxy, unless the
server rewrites it from ``X-Forwarded-For``: uvicorn does for proxies listed in ``--forwarded-allow-ips``
(``FORWARDED_ALLOW_IPS``, default ``127.0.0.1``). At most ``max_clients`` buckets are kept (least recently used
dropped first: a dropped client starts again with a full bucket).
"""

from __future__ import annotations

import ipaddress
import json
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from latentzarr.http.auth import BearerAuth

__all__ = ["DEFAULT_BURST", "DEFAULT_MAX_BODY", "DEFAULT_MAX_URL", "DEFAULT_RATE", "RATE_EXEMPT",
           "LimitsMiddleware", "RateLimiter", "client_key", "size_limit"]

DEFAULT_RATE = 100.0
"""Requests per second per client (sustained)."""
DEFAULT_BURST = 200
"""Requests a client may make at once (a gallery page is 26: the page, 2 assets, the listing, 24 thumbnails)."""
DEFAULT_MAX_BODY = 64 * 1024
"""Largest request body (bytes)."""
DEFAULT_MAX_URL = 8 * 1024
"""Longest path plus query string (bytes); the longest valid image URL is about 800."""
RATE_EXEMPT = ("/healthz", "/metrics")
"""Paths not rate limited by default (for requests that pass the token check)."""
MAX_CLIENTS = 100_000
"""Most client buckets kept (about 150 bytes each)."""


def size_limit(name: str, value: int | None) -> int | None:
    """``value`` when it is a usable size limit (an int >= 0 bytes, or None for none), else ValueError."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"Expected {name} >= 0 bytes, or None for no limit. Got {value!r} instead.")
    return value


def client_key(host: str | None) -> str:
    """The rate limit key of a client address: the address itself, or its ``/64`` network for IPv6."""
    if not host:
        return "unknown"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:  # a unix socket path or a name
        return host
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class RateLimiter:
    """One token bucket per key: ``rate`` tokens/s refill up to ``burst``; a request takes one token.

    Not thread-safe: used from the server's event loop only.

    Parameters
    ----------
    rate
        Refill rate (requests per second), > 0.
    burst
        Bucket size (requests), >= 1: how many requests a fresh client may make at once.
    max_clients
        Most buckets kept; the least recently used one is dropped beyond it.
    clock
        Monotonic time in seconds.
    """

    def __init__(self, rate: float, burst: int, *, max_clients: int = MAX_CLIENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
            raise ValueError(f"Expected a rate limit > 0 requests/s. Got {rate!r} instead; use None for no limit.")
        if not (isinstance(burst, int) and burst >= 1):
            raise ValueError(f"Expected a burst of at least 1 request. Got {burst!r} instead.")
        self.rate = float(rate)
        self.burst = burst
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, time of last update); LRU order

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, key: str) -> float:
        """Take a token for ``key``: 0.0 when there was one, else the seconds until there will be (none taken)."""
        now = self.clock()
        entry = self._buckets.pop(key, None)  # re-inserted below: dict order is least recently used first
        tokens = self.burst if entry is None else min(self.burst, entry[0] + (now - entry[1]) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_clients:
            del self._buckets[next(iter(self._buckets))]
        return wait


def _reject(status: int, error: str, detail: str, headers: dict[str, str] | None = None,
            **extra: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"error": error, "detail": detail, **extra}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    return status, raw, body


class LimitsMiddleware:
    """Pure ASGI middleware enforcing the limits above (each ``None`` turns its check off).

    Parameters
    ----------
    app
        The wrapped ASGI app.
    limiter
        The per-client token buckets (:class:`RateLimiter`); None: no rate limit.
    max_body
        Largest request body (bytes); None: unlimited.
    max_url
        Longest path plus ``?`` and query string (bytes); None: unlimited.
    auth
        A :class:`~latentzarr.http.auth.BearerAuth`, or None for no token.
    rate_exempt
        Paths not rate limited (when the request passes the token check).
    on_reject
        Called with the reason (one of :data:`latentzarr.http.metrics.REJECT_REASONS`) of each rejected request
        (the metrics counter).
    """

    def __init__(self, app: Callable, *, limiter: RateLimiter | None = None,
                 max_body: int | None = DEFAULT_MAX_BODY, max_url: int | None = DEFAULT_MAX_URL,
                 auth: BearerAuth | None = None, rate_exempt: Iterable[str] = RATE_EXEMPT,
                 on_reject: Callable[[str], None] | None = None) -> None:
        self.app = app
        self.limiter = limiter
        self.max_body = size_limit("max_body", max_body)
        self.max_url = size_limit("max_url", max_url)
        self.auth = auth
        self.rate_exempt = frozenset(rate_exempt)
        self.on_reject = on_reject

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rejection, receive = await self._check(scope, receive)
        if rejection is None:
            await self.app(scope, receive, send)
            return
        status, headers, body = rejection
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _check(self, scope: dict, receive: Callable) -> tuple[Any, Callable]:
        """(None, receive) to go on, else (the rejection, receive); ``receive`` replays a body read here."""
        if self.max_url is not None:
            raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
            query = scope.get("query_string") or b""
            length = len(raw_path) + (len(query) + 1 if query else 0)
            if length > self.max_url:
                return self._rejected("url_too_long", _reject(
                    414, "uri_too_long", f"Expected a path and query of at most {self.max_url} bytes. Got "
                    f"{length} bytes instead; ask for fewer or shorter parameters.", limit=self.max_url)), receive
        if self.max_body is not None:
            too_large, receive = await self._body_too_large(scope, receive)
            if too_large:
                return self._rejected("body_too_large", _reject(
                    413, "payload_too_large", f"Expected a request body of at most {self.max_body} bytes (the "
                    "API is GET-only and reads none). Got more instead.", headers={"Connection": "close"},
                    limit=self.max_body)), receive
        path = scope.get("path", "")
        verdict = True if self.auth is None or self.auth.is_public(path) else self.auth.check(scope["headers"])
        if self.limiter is not None and not (verdict and path in self.rate_exempt):
            client = scope.get("client")
            wait = self.limiter.acquire(client_key(client[0] if client else None))
            if wait > 0:
                retry = max(1, math.ceil(wait))
                return self._rejected("rate_limited", _reject(
                    429, "rate_limited", f"Expected at most {self.limiter.rate:g} requests/s (bursts of "
                    f"{self.limiter.burst}) from one client. Got more instead; retry after {retry} s.",
                    headers={"Retry-After": str(retry)}, retry_after=retry)), receive
        if not verdict:
            invalid = verdict is False
            detail = ("Expected the endpoint's bearer token. Got a wrong one instead." if invalid else
                      "Expected an 'Authorization: Bearer <token>' header. Got none instead; this endpoint "
                      "needs a token.")
            return self._rejected("unauthorized", _reject(
                401, "unauthorized", detail, headers={"WWW-Authenticate": BearerAuth.challenge(invalid)})), receive
        return None, receive

    def _rejected(self, reason: str, rejection: tuple) -> tuple:
        if self.on_reject is not None:
            self.on_reject(reason)
        return rejection

    async def _body_too_large(self, scope: dict, receive: Callable) -> tuple[bool, Callable]:
        """(whether the body is over ``max_body``, the receive to go on with): judged by ``Content-Length``
        without reading, else by reading a chunked body (replayed to the app when it is within the limit)."""
        length: bytes | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        if length is not None:
            try:
                return int(length) > self.max_body, receive
            except ValueError:  # servers refuse these before the app; refuse it here too
                return True, receive
        if not chunked:
            return False, receive
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                return False, _replay(chunks, message, receive)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_body:
                return True, receive
        return False, _replay(chunks, None, receive)


def _replay(chunks: list[bytes], last: dict | None, receive: Callable) -> Callable:
    """A ``receive`` that first gives the body read so far (then ``last``, if any), then the server's."""
    pending: list[dict] = [{"type": "http.request", "body": b"".join(chunks), "more_body": last is not None}]
    if last is not None:
        pending.append(last)

    async def replay() -> dict:
        return pending.pop(0) if pending else await receive()

    return replay
