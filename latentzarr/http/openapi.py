"""The OpenAPI 3.0 document of the preview endpoint (hand-written: it is the contract the tests check)."""

from __future__ import annotations

import functools
from typing import Any

from latentzarr.http.params import MAX_DPR, MAX_PAGE, MAX_SIZE, MIN_SIZE
from latentzarr.ids import MAX_ID_LENGTH
from latentzarr.models.images import FITS, GRAVITIES

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
        403: "Missing or wrong URL signature, or a rendition other than a preset on a presets-only server; "
             "`parameter` names it.",
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
_IMS = {"name": "If-Modified-Since", "in": "header", "required": False, "schema": {"type": "string"},
        "description": "HTTP date; 304 when the id was ingested no later (ignored when If-None-Match is sent)."}
_CACHING = {"ETag": {"schema": {"type": "string"}}, "Cache-Control": {"schema": {"type": "string"}}}
_IMAGE_HEADERS = {**_CACHING, "Last-Modified": {"schema": {"type": "string"}},
                  "Vary": {"schema": {"type": "string"}, "description": "Says Accept for format=auto."}}
_IMAGE_TYPES = ("image/png", "image/webp", "image/jpeg", "image/avif")


def _int_param(name: str, low: int, high: int, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": "integer", "minimum": low, "maximum": high}}


@functools.cache
def openapi_document(*, bearer: bool = False, presets: tuple[str, ...] = (), presets_only: bool = False,
                     ) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document served at ``/openapi.json``.

    ``bearer=True`` (a token is configured) adds the ``bearerAuth`` security scheme, required by every operation
    but ``health``, and their ``401`` responses. ``presets`` lists the preset names (the ``preset`` parameter's
    values); ``presets_only`` drops the other rendition parameters. Treat the result as read-only (it is cached).
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
    rendition_params = [
        _int_param("size", MIN_SIZE, MAX_SIZE, "Longest side in pixels (never upscaled); not with w/h."),
        _int_param("quality", 1, 100, "1..100, lossy formats only (alias: q)."),
        _int_param("w", 0, MAX_SIZE, "Width in pixels (0: from the aspect ratio)."),
        _int_param("h", 0, MAX_SIZE, "Height in pixels (0: from the aspect ratio)."),
        {"name": "fit", "in": "query", "required": False, "description": "Resizing type (imgproxy's).",
         "schema": {"type": "string", "enum": list(FITS), "default": "fit"}},
        {"name": "gravity", "in": "query", "required": False, "description": "Where a fill crop keeps the picture.",
         "schema": {"type": "string", "enum": list(GRAVITIES), "default": "ce"}},
        {"name": "dpr", "in": "query", "required": False, "description": "Device-pixel ratio: multiplies w, h, size.",
         "schema": {"type": "number", "minimum": 1, "maximum": MAX_DPR, "default": 1}},
        {"name": "enlarge", "in": "query", "required": False, "description": "Allow upscaling.",
         "schema": {"type": "boolean", "default": False}},
    ]
    image_params = [
        _ID,
        {"name": "format", "in": "query", "required": False, "description": "auto: AVIF, WebP or the default, "
         "from Accept (the response then says Vary: Accept).",
         "schema": {"type": "string", "enum": ["png", "webp", "jpeg", "jpg", "avif", "auto"], "default": "png"}},
        {"name": "preset", "in": "query", "required": presets_only, "description": "A named rendition.",
         "schema": {"type": "string", "enum": list(presets)} if presets else {"type": "string"}},
        *([] if presets_only else rendition_params),
        _INM,
        _IMS,
    ]
    picture = {"description": "The encoded picture.", "headers": _IMAGE_HEADERS,
               "content": dict.fromkeys(_IMAGE_TYPES, binary := {"schema": {"type": "string", "format": "binary"}})}
    not_modified = {"description": "Not modified (If-None-Match or If-Modified-Since).", "headers": _IMAGE_HEADERS}
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
            "responses": {"200": picture, "304": not_modified, **_errors(403, 404, 422, 500, 503)},
        }},
        "/{signature}/{options}/plain/{source}": {"get": {
            "operationId": "getImageImgproxy",
            "summary": "The picture through an imgproxy-style URL (options separated by '/', source is the "
                       "percent-encoded id with an optional @png|webp|jpg|avif).",
            "parameters": [
                {"name": "signature", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1},
                 "description": "imgproxy signature; anything (e.g. insecure) when signing is off."},
                {"name": "options", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1},
                 "description": "Processing options, e.g. rs:fill:300:200/g:no/dpr:2 or pr:NAME."},
                {"name": "source", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1},
                 "description": "Percent-encoded id, then @extension."},
                _INM, _IMS,
            ],
            "responses": {"200": picture, "304": not_modified, **_errors(403, 404, 422, 500, 503)},
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
