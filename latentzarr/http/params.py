"""Request parsing for the HTTP endpoint: ids from the raw URL path, rendition parameters, ETags.

Ids are opaque strings, never paths: ``/v1/images/{id}`` takes exactly one path segment, percent-decoded
(an id holding ``/`` is sent as ``%2F``), so ``a%2Fb`` is the id ``"a/b"`` and ``a/b`` is no route at all.

Renditions are parsed in two steps shared by the native query and the imgproxy-style path
(:mod:`latentzarr.http.imgproxy`): each spelling becomes one *options* dict (keys of :data:`OPTION_KEYS`, values
already validated), a preset's options are laid under it, and :func:`resolve_rendition` turns the result into a
:class:`~latentzarr.models.images.Rendition`, applying ``dpr`` and negotiating ``format=auto`` from ``Accept``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from latentzarr.errors import InvalidIdError, InvalidRenditionError
from latentzarr.ids import validate_id
from latentzarr.models.images import FITS, FORMATS, GRAVITIES, Rendition

__all__ = [
    "IMAGES_PREFIX",
    "MAX_PAGE",
    "MAX_SIZE",
    "MIN_SIZE",
    "OPTION_KEYS",
    "ParameterError",
    "etag_matches",
    "image_etag",
    "negotiate_format",
    "parse_id",
    "parse_id_path",
    "parse_options",
    "parse_page",
    "parse_rendition",
    "resolve_rendition",
]

IMAGES_PREFIX = "/v1/images/"
MIN_SIZE, MAX_SIZE = 16, 4096
"""Bounds (pixels, longest side) of the ``size`` parameter."""
MAX_PAGE = 200
"""Most items per listing page."""
MAX_DPR = 4.0
"""Largest device-pixel ratio (``dpr``); the smallest is 1."""
DEFAULT_FORMAT = "png"
"""Format of a request that names none, and of ``format=auto`` when ``Accept`` names no image type we write."""
OPTION_KEYS = ("format", "size", "quality", "width", "height", "fit", "gravity", "dpr", "enlarge")
"""Keys of an options dict (see the module docstring)."""
NATIVE_NAMES = {"format": "format", "size": "size", "quality": "quality", "q": "quality", "w": "width",
                "width": "width", "h": "height", "height": "height", "fit": "fit", "gravity": "gravity",
                "dpr": "dpr", "enlarge": "enlarge"}
"""Native query parameter -> option key (``q`` and ``quality``, ``w`` and ``width``... are aliases)."""
_INT = re.compile(r"-?[0-9]{1,18}")
_NUMBER = re.compile(r"[0-9]{1,3}(\.[0-9]{1,6})?")
_TRUE, _FALSE = ("1", "t", "true"), ("0", "f", "false")
_MEDIA_RANGE = re.compile(r"\s*([^;,\s]+)\s*((?:;[^,]*)?)")


class ParameterError(ValueError):
    """A request parameter is invalid; ``parameter`` names it (``"id"``, ``"size"``...); ``status`` is the HTTP
    status to answer (422 for a malformed value, 403 for one refused by policy: signature, presets-only)."""

    def __init__(self, parameter: str, detail: str, status: int = 422) -> None:
        super().__init__(detail)
        self.parameter = parameter
        self.detail = detail
        self.status = status


def parse_id_path(raw_path: bytes) -> tuple[str, str] | None:
    """``(id, action)`` from a raw path under ``/v1/images/``; action is ``""``, ``"latent"`` or ``"meta"``.

    Returns None when the path is no image route (empty id, more segments, unknown action). Raises
    :class:`ParameterError` (``"id"``) for an id that is not valid UTF-8 or fails :func:`validate_id`.
    """
    rest = raw_path[len(IMAGES_PREFIX):]
    parts = rest.split(b"/")
    if len(parts) > 2 or not parts[0] or (len(parts) == 2 and parts[1] not in (b"latent", b"meta")):
        return None
    return parse_id(parts[0]), parts[1].decode() if len(parts) == 2 else ""


def parse_id(raw: bytes) -> str:
    """An image id from its percent-encoded (UTF-8) path segment; :class:`ParameterError` ``id`` when invalid."""
    try:
        image_id = unquote(raw.decode("ascii"), errors="strict")
    except (UnicodeDecodeError, UnicodeEncodeError) as exc:
        raise ParameterError("id", "Expected an id percent-encoded as UTF-8. Got invalid bytes instead.") from exc
    try:
        validate_id(image_id)
    except InvalidIdError as exc:
        raise ParameterError("id", str(exc)) from exc
    return image_id


def _int_param(query: Mapping[str, str], name: str, low: int, high: int, default: int | None) -> int | None:
    text = query.get(name)
    if text is None:  # absent; present but empty is a malformed integer
        return default
    value = int(text) if _INT.fullmatch(text) else None
    if value is None or not low <= value <= high:
        raise ParameterError(name, f"Expected {name} as an integer from {low} to {high}. Got {text!r} instead.")
    return value


def parse_option(key: str, text: str, parameter: str) -> Any:
    """One option value from its text: ``key`` is an :data:`OPTION_KEYS` entry, ``parameter`` the name the client
    used (for the error). Raises :class:`ParameterError` naming ``parameter``."""
    if key == "format":
        fmt = text.lower()
        if fmt not in (*FORMATS, "jpg", "auto"):
            raise ParameterError(parameter, f"Expected {parameter} to be one of {', '.join(FORMATS)}, jpg or auto. "
                                            f"Got {text!r} instead.")
        return "jpeg" if fmt == "jpg" else fmt
    if key in ("size", "quality", "width", "height"):
        low, high = {"size": (MIN_SIZE, MAX_SIZE), "quality": (1, 100)}.get(key, (0, MAX_SIZE))
        value = int(text) if _INT.fullmatch(text) else None
        if value is None or not low <= value <= high:
            raise ParameterError(parameter, f"Expected {parameter} as an integer from {low} to {high}. "
                                            f"Got {text!r} instead.")
        return value
    if key == "dpr":
        dpr = float(text) if _NUMBER.fullmatch(text) else None
        if dpr is None or not 1 <= dpr <= MAX_DPR:
            raise ParameterError(parameter, f"Expected {parameter} as a number from 1 to {MAX_DPR:g}. "
                                            f"Got {text!r} instead.")
        return dpr
    if key == "fit":
        if text not in FITS:
            raise ParameterError(parameter, f"Expected {parameter} to be one of {', '.join(FITS)}. "
                                            f"Got {text!r} instead.")
        return text
    if key == "gravity":
        if text not in GRAVITIES:
            raise ParameterError(parameter, f"Expected {parameter} to be one of {', '.join(GRAVITIES)}. "
                                            f"Got {text!r} instead.")
        return text
    if key == "enlarge":
        if text.lower() not in (*_TRUE, *_FALSE):
            raise ParameterError(parameter, f"Expected {parameter} to be 1, t, true, 0, f or false. "
                                            f"Got {text!r} instead.")
        return text.lower() in _TRUE
    raise ParameterError(parameter, f"Expected an option among {', '.join(OPTION_KEYS)}. Got {parameter!r}.")


def parse_options(query: Mapping[str, str]) -> dict[str, Any]:
    """The options dict of a native query (``format``, ``size``, ``quality``/``q``, ``w``/``width``,
    ``h``/``height``, ``fit``, ``gravity``, ``dpr``, ``enlarge``); other parameters are ignored. Two aliases
    of one option must agree. Raises :class:`ParameterError` naming the parameter."""
    options: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for name, key in NATIVE_NAMES.items():
        text = query.get(name)
        if text is None:  # absent; present but empty is a malformed value
            continue
        value = parse_option(key, text, name)
        if key in options and options[key] != value:
            raise ParameterError(name, f"Expected {name} to agree with {seen[key]}. Got {text!r} and "
                                       f"{query.get(seen[key])!r} instead.")
        options[key], seen[key] = value, name
    return options


def negotiate_format(accept: str | None, default: str = DEFAULT_FORMAT) -> str:
    """The format for ``format=auto``: AVIF if ``Accept`` names ``image/avif``, else WebP if it names
    ``image/webp``, else JPEG if it names ``image/jpeg`` but not ``image/png``, else ``default`` (also when
    ``Accept`` is missing or names no image type). Types with ``q=0`` count as refused."""
    accepted = set()
    for match in _MEDIA_RANGE.finditer(accept or ""):
        media, params = match.group(1).lower(), match.group(2)
        q = re.search(r"q\s*=\s*([0-9.]+)", params)
        try:
            if q is not None and float(q.group(1)) <= 0:
                continue
        except ValueError:
            continue
        accepted.add(media)
    for fmt in ("avif", "webp"):
        if f"image/{fmt}" in accepted:
            return fmt
    if "image/jpeg" in accepted and "image/png" not in accepted:
        return "jpeg"
    return default


def resolve_rendition(options: Mapping[str, Any], accept: str | None = None,
                      names: Mapping[str, str] | None = None, *, strict_quality: bool = True,
                      ) -> tuple[Rendition, bool]:
    """``(rendition, negotiated)`` of an options dict: ``dpr`` multiplies ``width``/``height``/``size``, and
    ``format=auto`` is negotiated from ``accept`` (``negotiated`` True: the response must say ``Vary: Accept``;
    a quality is then dropped for png). ``names`` maps option keys to the parameter names the client used, for
    errors. ``strict_quality=False`` drops a quality for png silently (imgproxy does; and a preset's quality
    when the request chose png) instead of refusing it. Raises :class:`ParameterError`."""
    names = {k: k for k in OPTION_KEYS} | dict(names or {})
    fmt = options.get("format", DEFAULT_FORMAT)
    negotiated = fmt == "auto"
    if negotiated:
        fmt = negotiate_format(accept)
    quality = options.get("quality")
    if quality is not None and fmt == "png":
        if strict_quality and not negotiated:
            raise ParameterError(names["quality"], f"Expected no {names['quality']} for png (it is lossless). Got "
                                                   f"{quality!r} instead; use webp, jpeg or avif for a quality.")
        quality = None
    dpr = options.get("dpr", 1.0)
    sides = {}
    for key in ("size", "width", "height"):
        value = options.get(key)
        if value and dpr != 1:
            value = round(value * dpr)
            if value > MAX_SIZE:
                raise ParameterError(names["dpr"], f"Expected {names[key]} x {names['dpr']} <= {MAX_SIZE} pixels. "
                                                   f"Got {options[key]} x {dpr:g} = {value} instead.")
        sides[key] = value
    if sides["size"] is not None and (sides["width"] or sides["height"]):
        raise ParameterError(names["size"], f"Expected either {names['size']} or width/height. Got both.")
    try:
        rendition = Rendition.parse(fmt, sides["size"], quality, width=sides["width"], height=sides["height"],
                                    fit=options.get("fit", "fit"), gravity=options.get("gravity", "ce"),
                                    enlarge=options.get("enlarge", False))
    except InvalidRenditionError as exc:  # pragma: no cover - parse_option is stricter
        raise ParameterError(names["format"], str(exc)) from exc
    return rendition, negotiated


def parse_rendition(query: Mapping[str, str], accept: str | None = None) -> Rendition:
    """The :class:`Rendition` of a native query (see :func:`parse_options`); raises :class:`ParameterError`
    naming the bad parameter."""
    return resolve_rendition(parse_options(query), accept)[0]


def parse_page(query: Mapping[str, str], default_limit: int = 50) -> tuple[int, int]:
    """``(offset, limit)`` of a listing request; raises :class:`ParameterError`."""
    offset = _int_param(query, "offset", 0, 2**53, 0)
    limit = _int_param(query, "limit", 1, MAX_PAGE, default_limit)
    return int(offset or 0), int(limit or default_limit)


def image_etag(latent_sha256: str, token: str) -> str:
    """**Weak** ETag of one rendition of one stored latent: its digest (unique per latent) and the rendition.

    Weak on purpose: a decode is bit-exact only for a fixed decoder setup (batch size, threads, device,
    weights), and the workers batch decodes by load, so two decodes of one URL may differ by a level in a few
    pixels. The pictures are equivalent, not byte-identical, which is what ``W/`` says (RFC 9110 8.8.1).
    """
    return f'W/"{latent_sha256[:40]}.{token}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header matches ``etag`` (weak comparison, ``*`` matches anything)."""
    if not if_none_match:
        return False
    etag = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False
