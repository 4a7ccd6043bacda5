"""The preview endpoint: a Starlette ASGI app holding one asynchronous Dask client and a read-only store.

Routes (see :func:`latentzarr.http.openapi.openapi_document` for the full contract):

==============================  ===========================================================================
``GET /``                       the gallery page (plain HTML/CSS/JS under ``/static``)
``GET /v1/images``              paged listing (``offset``, ``limit``)
``GET /v1/images/{id}``         one picture: ``format`` png/webp/jpeg/avif/auto, ``w``, ``h``, ``fit``,
                                ``gravity``, ``dpr``, ``q``, ``preset`` (or ``size`` 16..4096, longest side,
                                and ``quality``); weak ``ETag``, ``Last-Modified``, ``Cache-Control``; ``304``
                                on ``If-None-Match`` / ``If-Modified-Since``; ``HEAD`` too
``GET /{sig}/{opts}/plain/{id}``  the same picture through an imgproxy-style URL (:mod:`latentzarr.http.imgproxy`),
                                ``@png|webp|jpg|avif`` after the id; signed when signing keys are set
``GET /v1/images/{id}/latent``  the stored latent as ``.npy`` (bfloat16 widened to float32, losslessly)
``GET /v1/images/{id}/meta``    metadata: model, latent shape/dtype, precision, digests, stored bytes
``GET /healthz``                liveness of the cluster and the store
``GET /metrics``                Prometheus text format
``GET /openapi.json``           the OpenAPI document
==============================  ===========================================================================

Image, latent and meta responses carry ``X-Latentzarr-Precision: <mode>`` (``lossless`` unless the latent was
stored in a lossy precision mode, see :mod:`latentzarr.precision`).

Request limits (:mod:`latentzarr.http.limits`, on by default): path + query length (414), body size (413), a
per-client token bucket (429 with ``Retry-After``; ``/healthz`` and ``/metrics`` exempt). An optional bearer token
(:mod:`latentzarr.http.auth`, off by default) guards every route but ``/healthz``, ``/openapi.json`` and the
gallery page and its assets (401 with ``WWW-Authenticate: Bearer``); the page asks for the token and sends it
as a header.

Errors are JSON ``{"error", "detail", ...}``, never a stack trace: unknown id 404; bad parameter 422 naming it
(``"parameter"``); a missing or wrong URL signature, or a rendition other than a preset on a presets-only
server, 403 naming it; cluster or store unavailable 503 with ``Retry-After``; refused by a limit 401/413/414/429.

Caching behind a CDN: image ETags are **weak** (``W/"<latent digest>.<rendition>"``): a decode is bit-exact only
for one decoder setup, and the workers batch decodes by load, so two decodes of one URL may differ by a level in a
few pixels. ``Last-Modified`` is the id's ingest time. No response says ``immutable``: the lifecycle policy may move
an id to a lossy precision mode, which changes its latent and its pictures (and their ETags). A ``format=auto``
response says ``Vary: Accept``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from latentzarr.errors import (
    CorruptDataError,
    InvalidIdError,
    InvalidRenditionError,
    LatentZarrError,
    UnknownIdError,
    UnsupportedFormatError,
)
from latentzarr.http.auth import BearerAuth, validate_token
from latentzarr.http.imgproxy import Signer, parse_imgproxy_path
from latentzarr.http.limits import (
    DEFAULT_BURST,
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_URL,
    DEFAULT_RATE,
    RATE_EXEMPT,
    LimitsMiddleware,
    RateLimiter,
    size_limit,
)
from latentzarr.http.metrics import CONTENT_TYPE, ROUTE_KEY, HttpMetrics, MetricsMiddleware
from latentzarr.http.openapi import openapi_document
from latentzarr.http.params import (
    IMAGES_PREFIX,
    NATIVE_NAMES,
    ParameterError,
    etag_matches,
    image_etag,
    parse_id_path,
    parse_options,
    parse_page,
    resolve_rendition,
)
from latentzarr.http.presets import check_presets, load_presets

__all__ = ["AppConfig", "create_app"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
GALLERY_HEADERS = {
    "Cache-Control": "no-cache",
    # the page runs only its own script and shows only same-origin and blob: pictures (the token lives in it)
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'; form-action 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
IMAGE_CACHE_CONTROL = "public, max-age=86400"
"""Pictures are equivalent for a day; not ``immutable``: a lifecycle move to a lossy precision changes them."""
RETRY_AFTER_S = 5
READ_TIMEOUT_S = 120.0
"""Longest wait (s) for one cluster read before answering 503."""
REFRESH_S = 5.0
"""Seconds between background refreshes of the store's id index."""
MISS_REFRESH_S = 0.5
"""At most one on-demand index refresh per this many seconds, for ids not (yet) known to the app."""
PRECISION_HEADER = "X-Latentzarr-Precision"
"""Response header of image, latent and meta responses: the stored latent's precision mode (``lossless``, ``q8``...),
so a reader of a lossy latent always learns it."""
MEMO_ENTRIES = 1_000_000
"""Most ids whose digest / stored size the app remembers (about 200 bytes each); the memo restarts when full."""


class AppConfig:
    """Settings of :func:`create_app` (cluster, store, refresh interval, limits), kept on ``app.state.config``.

    Request limits (see :mod:`latentzarr.http.limits`; ``None`` turns one off): ``rate_limit`` requests/s per
    client with bursts of ``burst`` requests, ``rate_exempt`` paths not rate limited, ``max_body`` and
    ``max_url`` bytes. ``token``: the bearer token every non-public route requires (None: no token; see
    :func:`latentzarr.http.auth.load_token`); it is never shown by ``repr``.

    Renditions: ``signing_keys`` / ``signing_salts`` (hex, paired by position; the first pair signs, all verify)
    turn on imgproxy URL signatures (:class:`~latentzarr.http.imgproxy.Signer`); ``presets`` is a presets file
    path or a mapping name -> options (:mod:`latentzarr.http.presets`); ``presets_only`` refuses every other
    rendition (403).
    """

    def __init__(self, store_url: str, *, address: str | None = None, n_workers: int | None = None,
                 threads_per_worker: int = 2, cache_bytes: int | None = None, storage_options: dict | None = None,
                 refresh_s: float = REFRESH_S, read_timeout_s: float = READ_TIMEOUT_S,
                 cluster_options: dict[str, Any] | None = None, rate_limit: float | None = DEFAULT_RATE,
                 burst: int = DEFAULT_BURST, max_body: int | None = DEFAULT_MAX_BODY,
                 max_url: int | None = DEFAULT_MAX_URL, rate_exempt: tuple[str, ...] = RATE_EXEMPT,
                 token: str | None = None, signing_keys: Sequence[str] = (), signing_salts: Sequence[str] = (),
                 presets: str | Path | Mapping[str, Any] | None = None, presets_only: bool = False) -> None:
        self.store_url = str(store_url)
        self.address = address
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self.cache_bytes = cache_bytes
        self.storage_options = dict(storage_options or {})
        self.refresh_s = float(refresh_s)
        self.read_timeout_s = float(read_timeout_s)
        self.cluster_options = dict(cluster_options or {})
        self.rate_limit = rate_limit
        self.burst = burst
        if rate_limit is not None:
            RateLimiter(rate_limit, burst)  # refuses a bad rate or burst now rather than at the first request
        self.max_body = size_limit("max_body", max_body)
        self.max_url = size_limit("max_url", max_url)
        self.rate_exempt = tuple(rate_exempt)
        self.token = validate_token(token) if token is not None else None
        self.signer = Signer(signing_keys, signing_salts) if (signing_keys or signing_salts) else None
        if presets is None:
            self.presets: dict[str, dict[str, Any]] = {}
        elif isinstance(presets, Mapping):
            self.presets = check_presets(presets)
        else:
            self.presets = load_presets(presets)
        if presets_only and not self.presets:
            raise ValueError("Expected presets (a presets file) with presets_only. Got none: nothing could be served.")
        self.presets_only = bool(presets_only)

    def __repr__(self) -> str:
        return (f"AppConfig({self.store_url!r}, address={self.address!r}, rate_limit={self.rate_limit!r}, "
                f"burst={self.burst!r}, max_body={self.max_body!r}, max_url={self.max_url!r}, "
                f"token={'<set>' if self.token is not None else None}, signer={self.signer!r}, "
                f"presets={sorted(self.presets)!r}, presets_only={self.presets_only!r})")

    def limits_middleware(self, on_reject: Callable[[str], None] | None = None) -> Middleware:
        """The :class:`~latentzarr.http.limits.LimitsMiddleware` of these settings (validates them)."""
        auth = BearerAuth(self.token) if self.token is not None else None
        limiter = RateLimiter(self.rate_limit, self.burst) if self.rate_limit is not None else None
        return Middleware(LimitsMiddleware, limiter=limiter, max_body=self.max_body, max_url=self.max_url,
                          auth=auth, rate_exempt=self.rate_exempt, on_reject=on_reject)


def _problem(status: int, error: str, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    return JSONResponse({"error": error, "detail": detail, **extra}, status_code=status, headers=headers)


def _unavailable(detail: str) -> Response:
    return _problem(503, "unavailable", detail, headers={"Retry-After": str(RETRY_AFTER_S)})


class _Service:
    """Per-app state: the LatentClient, the store, in-flight reads, ETag and stored-size caches."""

    def __init__(self, config: AppConfig, metrics: HttpMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.lc: Any = None
        self.store: Any = None
        self.inflight: dict[tuple[str, str], asyncio.Task] = {}
        self.digests: dict[str, str] = {}  # id -> latent sha256 (dropped when new commits arrive: see refresh)
        self.precisions: dict[str, str] = {}  # id -> precision mode name, memoised with the digest
        self.created: dict[str, dt.datetime | None] = {}  # id -> ingest time, memoised with the digest
        self.stored_sizes: dict[str, int] = {}
        self._last_miss_refresh = -np.inf
        self._refresh_lock = asyncio.Lock()
        self._ids: list[str] = []
        self.store_error: str | None = None

    # ------------------------------------------------------------------------------------ store side
    async def refresh(self) -> None:
        async with self._refresh_lock:
            try:
                seen = self.store.version
                await asyncio.to_thread(self.store.refresh)
                if self.store.version != seen:
                    # new commits: ids are immutable, but the lifecycle policy may have moved some to a lossy
                    # array, so what was memoised about an id (digest, precision, stored size) is dropped
                    self.digests.clear()
                    self.precisions.clear()
                    self.created.clear()
                    self.stored_sizes.clear()
                if len(self.store) != len(self._ids):
                    self._ids = self.store.ids()
                self.store_error = None
            except Exception as exc:
                self.store_error = f"{type(exc).__name__}: {exc}"
                raise

    def ids(self) -> list[str]:
        if len(self._ids) != len(self.store):
            self._ids = self.store.ids()
        return self._ids

    async def digest(self, image_id: str) -> str:
        """The latent digest of ``image_id``; raises UnknownIdError after at most one (throttled) refresh."""
        sha = self.digests.get(image_id)
        if sha is not None:
            return sha
        if image_id not in self.store and time.monotonic() - self._last_miss_refresh > MISS_REFRESH_S:
            self._last_miss_refresh = time.monotonic()
            await self.refresh()
        if image_id not in self.store:
            raise UnknownIdError(image_id)
        rec = self.store.record(image_id)
        sha = rec.get("latent_sha256") or ""
        if len(self.digests) >= MEMO_ENTRIES:
            self.digests.clear()
            self.precisions.clear()
            self.created.clear()
        self.precisions[image_id] = str(rec.get("precision", "lossless"))
        self.created[image_id] = _utc(rec.get("created"))
        self.digests[image_id] = sha
        return sha

    def precision(self, image_id: str) -> str:
        """The precision mode of ``image_id``'s stored latent (call after :meth:`digest`), e.g. ``"q8"``."""
        mode = self.precisions.get(image_id)
        if mode is None:
            mode = self.precisions[image_id] = str(self.store.record(image_id).get("precision", "lossless"))
        return mode

    def last_modified(self, image_id: str) -> dt.datetime | None:
        """The ingest time of ``image_id`` (UTC, whole seconds; call after :meth:`digest`), or None if unknown."""
        if image_id not in self.created:
            self.created[image_id] = _utc(self.store.record(image_id).get("created"))
        return self.created[image_id]

    def record_json(self, image_id: str) -> dict[str, Any]:
        rec = self.store.record(image_id)
        created = rec.get("created")
        return {
            "id": image_id, "model": rec["model"], "shape": list(rec["shape"]), "dtype": rec["dtype"],
            "array": rec["array"], "created": created.isoformat() if created is not None else None,
            "latent_sha256": rec.get("latent_sha256"), "pixel_sha256": rec.get("pixel_sha256"),
            "source_bytes": rec.get("source_bytes"), "precision": rec.get("precision", "lossless"),
            "lossy": bool(rec.get("lossy", False)),
        }

    def stored_bytes(self, image_id: str) -> int:
        """Bytes of ``image_id``'s latent encoded with the store's codec (its chunk, as stored)."""
        if image_id not in self.stored_sizes:
            if len(self.stored_sizes) >= MEMO_ENTRIES:
                self.stored_sizes.clear()
            self.stored_sizes[image_id] = self.store.encoded_size(image_id)
        return self.stored_sizes[image_id]

    # ------------------------------------------------------------------------------------ cluster side
    def require_cluster(self) -> None:
        """Fail fast (ReadFailedError, so 503) while the Dask client is not connected, instead of waiting."""
        status = getattr(self.lc.client, "status", "running")
        if status != "running":
            from latentzarr.cluster import ReadFailedError

            raise ReadFailedError(f"Expected a connected Dask client. Got status {status!r}; retry later.")

    async def read(self, image_id: str, rendition: Any) -> bytes:
        """One cluster read per (id, rendition) at a time; concurrent requests share it."""
        self.require_cluster()
        key = (image_id, rendition.token)
        task = self.inflight.get(key)
        if task is None:
            self.metrics.cluster_reads.labels("image").inc()
            task = asyncio.ensure_future(self.lc.read(image_id, rendition=rendition))
            self.inflight[key] = task
            task.add_done_callback(lambda _t: self.inflight.pop(key, None))
        else:
            self.metrics.coalesced.inc()
        # shield: a client that goes away must not cancel a read other requests are waiting for
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.config.read_timeout_s)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this request was cancelled (client gone, shutdown)
            from latentzarr.cluster import ReadFailedError

            raise ReadFailedError(f"Expected a read of {image_id!r} to finish. Got it cancelled; retry.") from None

    async def read_latent(self, image_id: str) -> np.ndarray:
        self.require_cluster()
        self.metrics.cluster_reads.labels("latent").inc()
        return await asyncio.wait_for(self.lc.read_latent(image_id), self.config.read_timeout_s)


def _utc(created: Any) -> dt.datetime | None:
    if not isinstance(created, dt.datetime):
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    return created.astimezone(dt.UTC).replace(microsecond=0)


def _service(request: Request) -> _Service:
    return request.app.state.service


def _route(request: Request, name: str) -> None:
    request.scope[ROUTE_KEY] = name


# ---------------------------------------------------------------------------------------------- handlers
async def gallery(request: Request) -> Response:
    _route(request, "/")
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=GALLERY_HEADERS)


async def list_images(request: Request) -> Response:
    _route(request, "/v1/images")
    svc = _service(request)
    offset, limit = parse_page(request.query_params)
    ids = svc.ids()
    page = ids[offset:offset + limit]
    items = [{**svc.record_json(i), "href": f"{IMAGES_PREFIX}{_quote(i)}"} for i in page]
    nxt = offset + limit if offset + limit < len(ids) else None
    return JSONResponse({"total": len(ids), "offset": offset, "limit": limit, "next_offset": nxt, "items": items},
                        headers={"Cache-Control": "no-cache"})


def _quote(image_id: str) -> str:
    from urllib.parse import quote

    return quote(image_id, safe="")


async def image_routes(request: Request) -> Response:
    raw = request.scope.get("raw_path") or request.scope["path"].encode()
    parsed = parse_id_path(raw.split(b"?", 1)[0])
    if parsed is None:
        _route(request, "other")
        return _problem(404, "not_found", "Expected /v1/images/{id}, /v1/images/{id}/latent or "
                        "/v1/images/{id}/meta (an id holding '/' is sent as %2F). Got another path instead.")
    image_id, action = parsed
    if action == "latent":
        return await _latent(request, image_id)
    if action == "meta":
        return await _meta(request, image_id)
    return await _image(request, image_id)


def _native_options(request: Request) -> dict[str, Any]:
    """The options dict of a native image request: its ``preset`` (if any) under its explicit options."""
    config: AppConfig = request.app.state.config
    query = request.query_params
    preset = query.get("preset")
    if config.presets_only:
        if preset is None:
            raise ParameterError("preset", "Expected preset=NAME: this server serves presets only "
                                 f"({', '.join(sorted(config.presets))}). Got no preset instead.", status=403)
        extra = [name for name in NATIVE_NAMES if name in query and name != "format"]
        if extra:
            raise ParameterError(extra[0], f"Expected only preset (and format) on this presets-only server. Got "
                                           f"{extra[0]}={query[extra[0]]!r} instead.", status=403)
    options: dict[str, Any] = {}
    if preset is not None:
        if preset not in config.presets:
            known = ", ".join(sorted(config.presets)) or "none configured"
            raise ParameterError("preset", f"Expected a preset among: {known}. Got {preset!r} instead.")
        options.update(config.presets[preset])
    options.update(parse_options(query))
    return options


async def _image(request: Request, image_id: str) -> Response:
    _route(request, "/v1/images/{id}")
    query = request.query_params
    names = {key: name for name, key in NATIVE_NAMES.items() if name in query}
    rendition, negotiated = resolve_rendition(_native_options(request), request.headers.get("accept"), names,
                                              strict_quality="quality" in names)
    return await _picture(request, image_id, rendition, negotiated)


async def imgproxy_image(request: Request) -> Response:
    """``GET /{signature}/{options}/plain/{id}@{extension}`` (see :mod:`latentzarr.http.imgproxy`)."""
    config: AppConfig = request.app.state.config
    raw = (request.scope.get("raw_path") or request.scope["path"].encode()).split(b"?", 1)[0]
    signature, _, signed_path = raw[1:].partition(b"/")
    if b"/plain/" not in b"/" + signed_path:
        _route(request, "other")
        return _problem(404, "not_found", "Expected /v1/images/... or an imgproxy-style "
                        "/{signature}/{options}/plain/{id}@{extension}. Got another path instead.")
    _route(request, "/{signature}/{options}/plain/{id}")
    if config.signer is not None and not config.signer.verify(signature.decode("latin-1"), b"/" + signed_path):
        raise ParameterError("signature", "Expected a URL signed with one of this server's key/salt pairs "
                             "(imgproxy's scheme). Got a signature that does not match.", status=403)
    parsed = parse_imgproxy_path(raw, config.presets, presets_only=config.presets_only)
    assert parsed is not None  # it has /plain/
    rendition, negotiated = resolve_rendition(parsed.options, request.headers.get("accept"), parsed.names,
                                              strict_quality=False)
    return await _picture(request, parsed.image_id, rendition, negotiated)


def _not_modified(request: Request, etag: str, last_modified: dt.datetime | None) -> bool:
    """RFC 9110 13.2.2: ``If-None-Match`` decides when present; else ``If-Modified-Since`` (bad dates ignored)."""
    inm = request.headers.get("if-none-match")
    if inm is not None:
        return etag_matches(inm, etag)
    ims = request.headers.get("if-modified-since")
    if ims is None or last_modified is None:
        return False
    try:
        since = parsedate_to_datetime(ims)
    except (TypeError, ValueError, IndexError):
        return False
    if since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    return last_modified <= since


async def _picture(request: Request, image_id: str, rendition: Any, negotiated: bool) -> Response:
    """One rendition of ``image_id`` with its caching headers; 304 when the client's copy is current."""
    svc = _service(request)
    etag = image_etag(await svc.digest(image_id), rendition.token)
    headers = {"ETag": etag, "Cache-Control": IMAGE_CACHE_CONTROL,
               "Vary": "Accept, Accept-Encoding" if negotiated else "Accept-Encoding",
               PRECISION_HEADER: svc.precision(image_id)}
    last_modified = svc.last_modified(image_id)
    if last_modified is not None:
        headers["Last-Modified"] = format_datetime(last_modified, usegmt=True)
    if _not_modified(request, etag, last_modified):
        svc.metrics.not_modified.inc()
        return Response(status_code=304, headers=headers)
    data = await svc.read(image_id, rendition)
    return Response(data, media_type=rendition.media_type, headers=headers)


async def _latent(request: Request, image_id: str) -> Response:
    _route(request, "/v1/images/{id}/latent")
    svc = _service(request)
    sha = await svc.digest(image_id)
    etag = f'"{sha[:40]}.npy"'
    headers = {"ETag": etag, "Cache-Control": IMAGE_CACHE_CONTROL,
               "Content-Disposition": f"attachment; filename=\"latent-{sha[:12]}.npy\"",
               PRECISION_HEADER: svc.precision(image_id)}
    if etag_matches(request.headers.get("if-none-match"), etag):
        svc.metrics.not_modified.inc()
        return Response(status_code=304, headers=headers)
    latent = await svc.read_latent(image_id)
    headers["X-Latent-Dtype"] = str(latent.dtype)
    if latent.dtype.name == "bfloat16":  # .npy readers without ml_dtypes cannot load bfloat16; widening is exact
        latent = latent.astype(np.float32)
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(latent), allow_pickle=False)
    return Response(buf.getvalue(), media_type="application/octet-stream", headers=headers)


async def _meta(request: Request, image_id: str) -> Response:
    _route(request, "/v1/images/{id}/meta")
    svc = _service(request)
    await svc.digest(image_id)
    body = svc.record_json(image_id)
    body["stored_bytes"] = await asyncio.to_thread(svc.stored_bytes, image_id)
    body["href"] = f"{IMAGES_PREFIX}{_quote(image_id)}"
    return JSONResponse(body, headers={"Cache-Control": "no-cache", PRECISION_HEADER: body["precision"]})


async def healthz(request: Request) -> Response:
    _route(request, "/healthz")
    svc = _service(request)
    try:
        svc.require_cluster()
        info = await asyncio.wait_for(svc.lc.client.scheduler.identity(), 5.0)
    except Exception as exc:
        svc.metrics.unavailable.labels("cluster").inc()
        return _unavailable(f"Expected a reachable Dask scheduler. Got {type(exc).__name__} instead.")
    if svc.store_error:
        svc.metrics.unavailable.labels("store").inc()
        return _unavailable(f"Expected a readable store. Got {svc.store_error} at the last refresh.")
    workers = len(info.get("workers", {}))
    if not workers:
        return _unavailable("Expected at least one Dask worker. Got none.")
    return JSONResponse({"status": "ok", "workers": workers, "images": len(svc.store)},
                        headers={"Cache-Control": "no-cache"})


async def metrics_route(request: Request) -> Response:
    _route(request, "/metrics")
    svc = _service(request)

    async def worker_stats() -> Any:
        svc.require_cluster()
        return await asyncio.wait_for(svc.lc.stats(), 5.0)

    return Response(await svc.metrics.render(worker_stats), media_type=CONTENT_TYPE)


async def openapi(request: Request) -> Response:
    _route(request, "/openapi.json")
    config: AppConfig = request.app.state.config
    return JSONResponse(openapi_document(bearer=config.token is not None, presets=tuple(sorted(config.presets)),
                                         presets_only=config.presets_only))


# ---------------------------------------------------------------------------------------------- errors
async def _on_parameter(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ParameterError)
    error = "forbidden" if exc.status == 403 else "invalid_parameter"
    return _problem(exc.status, error, exc.detail, parameter=exc.parameter)


async def _on_http(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no route matched, method not allowed) as JSON problems like every other error."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _problem(404, "not_found", "Expected /v1/images/..., an imgproxy-style "
                        "/{signature}/{options}/plain/{id}@{extension} or another documented route. Got another path "
                        "instead.")
    return _problem(exc.status_code, "http_error", str(exc.detail), headers=exc.headers)


async def _on_invalid(request: Request, exc: Exception) -> Response:
    parameter = "id" if isinstance(exc, InvalidIdError) else "format"
    return _problem(422, "invalid_parameter", str(exc), parameter=parameter)


async def _on_unknown(request: Request, exc: Exception) -> Response:
    image_id = getattr(exc, "image_id", None)
    return _problem(404, "not_found", f"Unknown image id {image_id!r}: it is not in the store.", id=image_id)


async def _on_unavailable(request: Request, exc: Exception) -> Response:
    cause = "timeout" if isinstance(exc, TimeoutError) else "cluster"
    _service(request).metrics.unavailable.labels(cause).inc()
    log.warning("503 for %s: %s: %s", request.url.path, type(exc).__name__, exc)
    return _unavailable("Expected the cluster and the store to answer. Got "
                        f"{type(exc).__name__} instead; retry later.")


async def _on_library(request: Request, exc: Exception) -> Response:
    if isinstance(exc, UnknownIdError):
        return await _on_unknown(request, exc)
    if isinstance(exc, InvalidIdError | InvalidRenditionError):
        return await _on_invalid(request, exc)
    if isinstance(exc, CorruptDataError):  # permanent: retrying cannot help, so no 503 / Retry-After
        log.error("corrupt data serving %s: %s", request.url.path, exc)
        return _problem(500, "corrupt", str(exc))
    if isinstance(exc, UnsupportedFormatError):  # permanent too, but the fix is an upgrade, not a backup
        log.error("unsupported format serving %s: %s", request.url.path, exc)
        return _problem(500, "unsupported_format", str(exc))
    if isinstance(exc, OSError):  # StoreUnavailableError and other storage failures: transient
        return await _on_unavailable(request, exc)
    log.exception("latentzarr error serving %s", request.url.path, exc_info=exc)
    return _problem(500, "internal", f"{type(exc).__name__} while serving this request.")


def _cluster_gone(request: Request) -> bool:
    """Whether this app's Dask client is no longer running (closed, closing, or its connection lost)."""
    service = getattr(request.app.state, "service", None)
    client = getattr(getattr(service, "lc", None), "client", None)
    return client is not None and getattr(client, "status", "running") != "running"


async def _on_other(request: Request, exc: Exception) -> Response:
    """503 for what says the cluster is unavailable, by type (a closed client, a cancelled future, I/O errors),
    or for a ``RuntimeError`` raised while the client is no longer running (Dask raises plain RuntimeErrors from
    closed connection pools and event loops); any other exception is a bug: 500, logged."""
    from distributed.client import ClosedClientError, FutureCancelledError

    if isinstance(exc, OSError | TimeoutError | FutureCancelledError | ClosedClientError | asyncio.CancelledError):
        return await _on_unavailable(request, exc)
    if isinstance(exc, RuntimeError) and _cluster_gone(request):
        return await _on_unavailable(request, exc)
    log.exception("error serving %s", request.url.path, exc_info=exc)
    return _problem(500, "internal", "Unexpected server error; it was logged.")


def _exception_handlers() -> dict[Any, Callable]:
    from latentzarr.cluster import ReadFailedError

    return {
        HTTPException: _on_http,
        ParameterError: _on_parameter,
        ReadFailedError: _on_unavailable,
        LatentZarrError: _on_library,
        OSError: _on_unavailable,
        TimeoutError: _on_unavailable,
        Exception: _on_other,
    }


# ---------------------------------------------------------------------------------------------- app
def create_app(store_url: str | None = None, *, config: AppConfig | None = None, latent_client: Any = None,
               on_ready: Callable[[], None] | None = None, middleware: list[Middleware] | None = None,
               **options: Any) -> Starlette:
    """The endpoint as a Starlette app; the cluster and the store are opened in its lifespan.

    Parameters
    ----------
    store_url
        The latent store (local path or fsspec URL), opened read-only here and by every worker.
    config
        An :class:`AppConfig`; or give its keyword arguments (``address``, ``n_workers``, ``cache_bytes``...)
        as ``options``.
    latent_client
        An already connected *asynchronous* :class:`~latentzarr.cluster.LatentClient` on the serving event loop
        (the app then neither starts nor closes a cluster).
    on_ready
        Called once the cluster and the store are up (e.g. to print the URL).
    middleware
        Extra Starlette middleware, run inside the metrics and the limits middleware.
    """
    if config is None:
        if store_url is None:
            raise ValueError("Expected store_url or config. Got neither.")
        config = AppConfig(store_url, **options)
    metrics = HttpMetrics()
    limits = config.limits_middleware(on_reject=lambda reason: metrics.rejected.labels(reason).inc())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from latentzarr.cluster.aio import close_async, start_cluster_async
        from latentzarr.store import LatentStore

        svc = _Service(config, metrics)
        svc.store = await asyncio.to_thread(LatentStore.open, config.store_url, "r",
                                            storage_options=config.storage_options)
        svc._ids = svc.store.ids()
        own = latent_client is None
        if own:
            cluster_kw: dict[str, Any] = dict(config.cluster_options)
            if config.cache_bytes is not None:
                cluster_kw["cache_bytes"] = config.cache_bytes
            svc.lc = await start_cluster_async(config.store_url, address=config.address, n_workers=config.n_workers,
                                               threads_per_worker=config.threads_per_worker,
                                               storage_options=config.storage_options, **cluster_kw)
        else:
            svc.lc = latent_client
        app.state.service = svc

        async def refresher() -> None:
            while True:
                await asyncio.sleep(config.refresh_s)
                with contextlib.suppress(Exception):
                    await svc.refresh()

        refresh_task = asyncio.ensure_future(refresher())
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            refresh_task.cancel()
            with contextlib.suppress(BaseException):
                await refresh_task
            if own:
                await close_async(svc.lc)

    routes = [
        Route("/", gallery),
        Route("/healthz", healthz),
        Route("/metrics", metrics_route),
        Route("/openapi.json", openapi),
        Route("/v1/images", list_images),
        Route("/v1/images/{rest:path}", image_routes),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        Route("/{signature}/{rest:path}", imgproxy_image),  # last: every other route wins
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=_exception_handlers(),
                    middleware=[Middleware(MetricsMiddleware, metrics=metrics), limits, *(middleware or [])])
    app.state.config = config
    app.state.metrics = metrics
    return app
