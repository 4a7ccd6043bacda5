"""The OpenAPI 3.0 document of the preview endpoint (hand-written: it is the contract the tests check)."""

from __future__ import annotations

import functools
from typing import Any

from latentzarr.http.params import MAX_PAGE, MAX_SIZE, MIN_SIZE
from latentzarr.ids import MAX_ID_LENGTH

__all__ = ["openapi_document"]

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}}
LIMIT_CODES = (413, 414, 429)
"""Statuses every operation may answer when request limits are on (see :mod:`latentzarr.http.limits`)."""


def _errors(*codes: int) -> dict[str, Any]:
    texts = {
        401: "Missing or wrong bearer token (`WWW-Authenticate: Bearer`).",
        404: "Unknown image id.",
        413: "Request body too large (the API reads none).",
        414: "Path and query too long.",
        422: "Invalid parameter; `parameter` names it.",
        429: "Too many requests from this client; retry after `Retry-After` seconds.",
        500: "The stored data of this id is damaged (`error`: `corrupt`); retrying cannot help.",
        503: "Cluster or store unavailable; retry after `Retry-After` seconds.",
    }
    out = {}
    for code in codes:
        resp = _json(_ERROR, texts[code])
        if code in (429, 503):
            resp["headers"] = dict(_RETRY_AFTER)
        if code == 401:
            resp["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        out[str(code)] = resp
    return out


_ID = {"name": "id", "in": "path", "required": True, "description": "Opaque image id (percent-encode '/' as %2F).",
       "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH}}
_INM = {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
        "description": "ETag(s) of a copy the client holds; a match answers 304."}
_CACHING = {"ETag": {"schema": {"type": "string"}}, "Cache-Control": {"schema": {"type": "string"}}}


@functools.cache
def openapi_document(*, bearer: bool = False) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document served at ``/openapi.json``.

    ``bearer=True`` (a token is configured) adds the ``bearerAuth`` security scheme, required by every operation
    but ``health``, and their ``401`` responses. Treat the result as read-only (it is cached).
    """
    record = {
        "type": "object",
        "required": ["id", "model", "shape", "dtype"],
        "properties": {
            "id": {"type": "string"},
            "model": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}, "description": "Latent (C, h, w)."},
            "dtype": {"type": "string"},
            "array": {"type": "string"},
            "created": {"type": "string", "nullable": True},
            "latent_sha256": {"type": "string", "nullable": True},
            "pixel_sha256": {"type": "string", "nullable": True},
            "source_bytes": {"type": "integer", "nullable": True},
            "precision": {"type": "string", "description": "Precision mode of the stored latent: lossless, q8..."},
            "lossy": {"type": "boolean", "description": "True when the stored latent is not bit-exact."},
            "href": {"type": "string"},
        },
    }
    meta = {"allOf": [{"$ref": "#/components/schemas/ImageRecord"}, {
        "type": "object", "required": ["stored_bytes"],
        "properties": {"stored_bytes": {"type": "integer", "description": "Bytes of the encoded latent."}}}]}
    page = {
        "type": "object",
        "required": ["total", "offset", "limit", "items"],
        "properties": {
            "total": {"type": "integer"}, "offset": {"type": "integer"}, "limit": {"type": "integer"},
            "next_offset": {"type": "integer", "nullable": True},
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/ImageRecord"}},
        },
    }
    error = {"type": "object", "required": ["error", "detail"],
             "properties": {"error": {"type": "string"}, "detail": {"type": "string"},
                            "parameter": {"type": "string"}, "id": {"type": "string", "nullable": True}}}
    image_params = [
        _ID,
        {"name": "format", "in": "query", "required": False,
         "schema": {"type": "string", "enum": ["png", "webp", "jpeg", "jpg"], "default": "png"}},
        {"name": "size", "in": "query", "required": False, "description": "Longest side in pixels (never upscaled).",
         "schema": {"type": "integer", "minimum": MIN_SIZE, "maximum": MAX_SIZE}},
        {"name": "quality", "in": "query", "required": False, "description": "1..100, webp and jpeg only.",
         "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
        _INM,
    ]
    binary = {"schema": {"type": "string", "format": "binary"}}
    paths = {
        "/v1/images": {"get": {
            "operationId": "listImages", "summary": "Paged listing of the store's images, in commit order.",
            "parameters": [
                {"name": "offset", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 0, "default": 0}},
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50}},
            ],
            "responses": {"200": _json({"$ref": "#/components/schemas/ImagePage"}, "One page."),
                          **_errors(422, 503)},
        }},
        "/v1/images/{id}": {"get": {
            "operationId": "getImage", "summary": "The picture decoded from the stored latent.",
            "parameters": image_params,
            "responses": {
                "200": {"description": "The encoded picture.", "headers": _CACHING,
                        "content": {"image/png": binary, "image/webp": binary, "image/jpeg": binary}},
                "304": {"description": "Not modified (If-None-Match matched).", "headers": _CACHING},
                **_errors(404, 422, 500, 503),
            },
        }},
        "/v1/images/{id}/latent": {"get": {
            "operationId": "getLatent", "summary": "The stored latent (C, h, w) as a .npy file.",
            "parameters": [_ID, _INM],
            "responses": {
                "200": {"description": ".npy bytes (bfloat16 widened to float32).", "headers": _CACHING,
                        "content": {"application/octet-stream": binary}},
                "304": {"description": "Not modified.", "headers": _CACHING},
                **_errors(404, 422, 500, 503),
            },
        }},
        "/v1/images/{id}/meta": {"get": {
            "operationId": "getImageMeta", "summary": "Metadata of one image (model, latent shape, stored bytes).",
            "parameters": [_ID],
            "responses": {"200": _json({"$ref": "#/components/schemas/ImageMeta"}, "Metadata."),
                          **_errors(404, 422, 503)},
        }},
        "/healthz": {"get": {
            "operationId": "health", "summary": "Cluster and store reachable.",
            "responses": {"200": _json({"type": "object", "required": ["status"],
                                        "properties": {"status": {"type": "string"},
                                                       "workers": {"type": "integer"},
                                                       "images": {"type": "integer"}}}, "Healthy."),
                          **_errors(503)},
        }},
        "/metrics": {"get": {
            "operationId": "metrics", "summary": "Prometheus text exposition.",
            "responses": {"200": {"description": "Metrics.",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}},
        }},
    }
    for path, item in paths.items():
        for op in item.values():
            op["responses"].update(_errors(*LIMIT_CODES))
            if bearer and path != "/healthz":
                op["responses"].update(_errors(401))
    components: dict[str, Any] = {
        "schemas": {"ImageRecord": record, "ImageMeta": meta, "ImagePage": page, "Error": error}}
    security: dict[str, Any] = {}
    if bearer:
        components["securitySchemes"] = {"bearerAuth": {
            "type": "http", "scheme": "bearer",
            "description": "The token given to `latentzarr serve --token-file` (or `LATENTZARR_HTTP_TOKEN`)."}}
        security["security"] = [{"bearerAuth": []}]
        paths["/healthz"]["get"]["security"] = []
    return {
        "openapi": "3.0.3",
        "info": {"title": "latentzarr preview endpoint", "version": "1",
                 "description": "Pictures decoded on demand from compressed diffusion latents in a Zarr store."},
        **security,
        "paths": paths,
        "components": components,
    }
