"""Request parsing for the HTTP endpoint: ids from the raw URL path, rendition parameters, ETags.

Ids are opaque strings, never paths: ``/v1/images/{id}`` takes exactly one path segment, percent-decoded
(an id holding ``/`` is sent as ``%2F``), so ``a%2Fb`` is the id ``"a/b"`` and ``a/b`` is no route at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import unquote

from latentzarr.errors import InvalidIdError, InvalidRenditionError
from latentzarr.ids import validate_id
from latentzarr.models.images import FORMATS, Rendition

__all__ = [
    "IMAGES_PREFIX",
    "MAX_PAGE",
    "MAX_SIZE",
    "MIN_SIZE",
    "ParameterError",
    "etag_matches",
    "image_etag",
    "parse_id_path",
    "parse_page",
    "parse_rendition",
]

IMAGES_PREFIX = "/v1/images/"
MIN_SIZE, MAX_SIZE = 16, 4096
"""Bounds (pixels, longest side) of the ``size`` parameter."""
MAX_PAGE = 200
"""Most items per listing page."""
_INT = re.compile(r"-?[0-9]{1,18}")


class ParameterError(ValueError):
    """A request parameter is invalid; ``parameter`` names it (``"id"``, ``"size"``...)."""

    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(detail)
        self.parameter = parameter
        self.detail = detail


def parse_id_path(raw_path: bytes) -> tuple[str, str] | None:
    """``(id, action)`` from a raw path under ``/v1/images/``; action is ``""``, ``"latent"`` or ``"meta"``.

    Returns None when the path is no image route (empty id, more segments, unknown action). Raises
    :class:`ParameterError` (``"id"``) for an id that is not valid UTF-8 or fails :func:`validate_id`.
    """
    rest = raw_path[len(IMAGES_PREFIX):]
    parts = rest.split(b"/")
    if len(parts) > 2 or not parts[0] or (len(parts) == 2 and parts[1] not in (b"latent", b"meta")):
        return None
    try:
        image_id = unquote(parts[0].decode("ascii"), errors="strict")
    except (UnicodeDecodeError, UnicodeEncodeError) as exc:
        raise ParameterError("id", "Expected an id percent-encoded as UTF-8. Got invalid bytes instead.") from exc
    try:
        validate_id(image_id)
    except InvalidIdError as exc:
        raise ParameterError("id", str(exc)) from exc
    return image_id, parts[1].decode() if len(parts) == 2 else ""


def _int_param(query: Mapping[str, str], name: str, low: int, high: int, default: int | None) -> int | None:
    text = query.get(name)
    if text is None:  # absent; present but empty is a malformed integer
        return default
    value = int(text) if _INT.fullmatch(text) else None
    if value is None or not low <= value <= high:
        raise ParameterError(name, f"Expected {name} as an integer from {low} to {high}. Got {text!r} instead.")
    return value


def parse_rendition(query: Mapping[str, str]) -> Rendition:
    """The :class:`Rendition` of ``format`` (png/webp/jpeg), ``size`` (:data:`MIN_SIZE`..:data:`MAX_SIZE`) and
    ``quality`` (1..100, lossy formats only); raises :class:`ParameterError` naming the bad parameter."""
    fmt = query.get("format", "png")
    if fmt.lower() not in (*FORMATS, "jpg"):
        raise ParameterError("format", f"Expected format to be one of {', '.join(FORMATS)}. Got {fmt!r} instead.")
    size = _int_param(query, "size", MIN_SIZE, MAX_SIZE, None)
    quality = _int_param(query, "quality", 1, 100, None)
    if quality is not None and fmt.lower() == "png":
        raise ParameterError("quality", f"Expected no quality for png (it is lossless). Got {quality!r} instead; "
                                        "use format=webp or format=jpeg for a quality setting.")
    try:
        return Rendition.parse(fmt, size, quality)
    except InvalidRenditionError as exc:  # pragma: no cover - the checks above are stricter
        raise ParameterError("format", str(exc)) from exc


def parse_page(query: Mapping[str, str], default_limit: int = 50) -> tuple[int, int]:
    """``(offset, limit)`` of a listing request; raises :class:`ParameterError`."""
    offset = _int_param(query, "offset", 0, 2**53, 0)
    limit = _int_param(query, "limit", 1, MAX_PAGE, default_limit)
    return int(offset or 0), int(limit or default_limit)


def image_etag(latent_sha256: str, token: str) -> str:
    """Strong ETag of one rendition of one stored latent: its digest (unique per latent) and the rendition."""
    return f'"{latent_sha256[:40]}.{token}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header matches ``etag`` (weak comparison, ``*`` matches anything)."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False
