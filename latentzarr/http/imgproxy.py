"""imgproxy-compatible URLs: ``/{signature}/{options}/plain/{id}@{extension}`` and imgproxy's URL signatures.

The supported subset of `imgproxy's processing options <https://docs.imgproxy.net/usage/processing>`_:

=========================================  =====================================================================
``rs:%type:%w:%h:%enlarge``, ``resize:``   resizing type (fit, fill, fill-down, force, auto), width, height, enlarge
``s:%w:%h:%enlarge``, ``size:``            width, height, enlarge
``rt:%type``, ``resizing_type:``           resizing type
``w:``/``width:``, ``h:``/``height:``      width, height (0: from the aspect ratio)
``dpr:%dpr``                               device-pixel ratio, 1-4: multiplies width and height
``q:``/``quality:``                        quality 1-100 (lossy formats)
``g:%type``/``gravity:``                   crop gravity: ce, no, so, ea, we, noea, nowe, soea, sowe (offsets 0 only)
``el:``/``enlarge:``                       1/t/true: allow upscaling
``f:``/``format:``/``ext:``                png, webp, jpg, avif or auto (``Accept`` negotiation)
``pr:%name1:%name2``/``preset:``           presets, applied in place (later options override them)
=========================================  =====================================================================

``@extension`` (png, webp, jpg/jpeg, avif) sets the format and wins over ``f:``; without one the format is the
preset's, ``f:``'s or png. Arguments left empty keep their default (``rs:fill:300`` sets no height). The id is
percent-encoded like the native route's. Anything else (``sm`` gravity, offsets, ``extend``, base64 or encrypted
sources, unknown options) is refused with a 4xx naming the option, never silently ignored.

Signatures are imgproxy's: ``base64url(HMAC-SHA256(key, salt + path))`` without padding, where ``path`` is the
raw URL path after the signature segment (from its leading ``/``), and key and salt are hex-decoded. Several
key/salt pairs may be configured: the first signs, any verifies (key rotation). With no pairs, signing is off and
the signature segment may be anything (imgproxy's convention; ``insecure`` by habit). ``IMGPROXY_SIGNATURE_SIZE``
truncation is supported through ``signature_size`` (default 32 bytes, the full digest).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from latentzarr.http.params import ParameterError, parse_id, parse_option

__all__ = ["ImgproxyRequest", "Signer", "parse_imgproxy_path"]

EXTENSIONS = {"png": "png", "webp": "webp", "jpg": "jpeg", "jpeg": "jpeg", "avif": "avif"}
"""``@extension`` -> format."""
_ALIASES = {"rs": "resize", "resize": "resize", "s": "size", "size": "size", "rt": "resizing_type",
            "resizing_type": "resizing_type", "w": "width", "width": "width", "h": "height", "height": "height",
            "dpr": "dpr", "q": "quality", "quality": "quality", "g": "gravity", "gravity": "gravity",
            "el": "enlarge", "enlarge": "enlarge", "f": "format", "format": "format", "ext": "format",
            "pr": "preset", "preset": "preset"}
_FALSE = ("", "0", "f", "false")


class Signer:
    """imgproxy URL signatures over one or more hex key/salt pairs: the first pair signs, every pair verifies.

    Parameters
    ----------
    keys, salts
        Hex strings, paired by position (as ``IMGPROXY_KEYS`` / ``IMGPROXY_SALTS``); equal, non-zero counts.
    signature_size
        Bytes of the HMAC kept in the signature, 1-32 (imgproxy's ``IMGPROXY_SIGNATURE_SIZE``).
    """

    def __init__(self, keys: Sequence[str], salts: Sequence[str], signature_size: int = 32) -> None:
        keys, salts = list(keys), list(salts)
        if not keys or len(keys) != len(salts):
            raise ValueError(f"Expected as many signing salts as signing keys (at least one pair). Got "
                             f"{len(keys)} key(s) and {len(salts)} salt(s) instead.")
        if not 1 <= signature_size <= 32:
            raise ValueError(f"Expected signature_size from 1 to 32 bytes. Got {signature_size!r} instead.")
        self.pairs = [(_hex("signing key", k), _hex("signing salt", s)) for k, s in zip(keys, salts, strict=True)]
        self.signature_size = int(signature_size)

    def __repr__(self) -> str:  # never shows the secrets
        return f"Signer(<{len(self.pairs)} key/salt pair(s)>, signature_size={self.signature_size})"

    def _digest(self, pair: tuple[bytes, bytes], path: bytes) -> bytes:
        key, salt = pair
        return hmac.new(key, salt + path, hashlib.sha256).digest()[: self.signature_size]

    def sign(self, path: str | bytes) -> str:
        """The signature of ``path`` (everything after the signature segment, from its ``/``) with the first pair."""
        raw = path.encode() if isinstance(path, str) else path
        return base64.urlsafe_b64encode(self._digest(self.pairs[0], raw)).rstrip(b"=").decode()

    def verify(self, signature: str, path: str | bytes) -> bool:
        """Whether ``signature`` is the signature of ``path`` under any configured pair (constant-time compare)."""
        raw = path.encode() if isinstance(path, str) else path
        try:
            given = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        except (binascii.Error, ValueError):
            return False
        ok = False
        for pair in self.pairs:
            ok |= hmac.compare_digest(given, self._digest(pair, raw))
        return ok


def _hex(name: str, text: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except (ValueError, TypeError):
        value = b""
    if not value:
        raise ValueError(f"Expected the {name} as a non-empty hex string. Got {len(str(text))} characters that are "
                         "not hex instead.")
    return value


@dataclass
class ImgproxyRequest:
    """One parsed imgproxy-style URL."""

    signature: str
    signed_path: bytes
    """The raw path after the signature segment, from its ``/``: what the signature covers."""
    image_id: str
    options: dict[str, Any] = field(default_factory=dict)
    """An options dict (see :mod:`latentzarr.http.params`), presets expanded."""
    names: dict[str, str] = field(default_factory=dict)
    """Option key -> the imgproxy option name the URL used (for errors)."""
    presets: list[str] = field(default_factory=list)
    """Preset names used, in order."""
    other_options: list[str] = field(default_factory=list)
    """Names of the options given besides presets and the format (refused in presets-only mode)."""


def parse_imgproxy_path(raw_path: bytes, presets: Mapping[str, Mapping[str, Any]] | None = None,
                        *, presets_only: bool = False) -> ImgproxyRequest | None:
    """Parse ``/{signature}/{options}/plain/{id}[@{extension}]`` (raw, percent-encoded bytes).

    Returns None when the path has no ``/plain/`` part (not an imgproxy URL). Raises :class:`ParameterError`
    naming the option, preset, extension or id that is wrong. In ``presets_only`` mode every options segment must
    be a preset (``pr:NAME`` or a bare ``NAME``); any other option is refused with status 403.
    """
    presets = presets or {}
    if not raw_path.startswith(b"/"):
        return None
    signature, sep, rest = raw_path[1:].partition(b"/")
    rest = b"/" + rest
    at = rest.find(b"/plain/")
    if not sep or at < 0:
        return None
    try:
        sig_text = signature.decode("ascii")
        opts_text = rest[1:at].decode("ascii") if at else ""
    except UnicodeDecodeError as exc:
        raise ParameterError("options", "Expected ASCII processing options. Got other bytes instead.") from exc
    source = rest[at + len(b"/plain/"):]
    id_part, at_sign, ext = source.rpartition(b"@")
    if not at_sign:
        id_part, ext = source, b""
    request = ImgproxyRequest(sig_text, rest, parse_id(id_part))
    for segment in filter(None, opts_text.split("/")):
        _apply(request, unquote(segment), presets, presets_only)
    if at_sign:
        fmt = EXTENSIONS.get(ext.decode("ascii", "replace").lower())
        if fmt is None:
            raise ParameterError("extension", f"Expected @extension to be one of {', '.join(EXTENSIONS)}. Got "
                                              f"{ext.decode('ascii', 'replace')!r} instead.")
        request.options["format"], request.names["format"] = fmt, "extension"
    return request


def _apply(request: ImgproxyRequest, segment: str, presets: Mapping[str, Mapping[str, Any]],
           presets_only: bool) -> None:
    name, _, args_text = segment.partition(":")
    args = args_text.split(":") if args_text else []
    option = _ALIASES.get(name)
    if presets_only and option != "preset":
        if name in presets and not args:  # imgproxy's only-presets mode: a bare segment is a preset name
            option, args = "preset", [name]
        elif option != "format":
            raise ParameterError(name, f"Expected only presets (pr:NAME) on this server (presets-only). Got the "
                                       f"option {name!r} instead.", status=403)
    if option is None:
        raise ParameterError(name, f"Expected a processing option among {', '.join(sorted(set(_ALIASES)))}. Got "
                                   f"{name!r} instead (this server supports a subset of imgproxy's options).")
    if option == "preset":
        if not args:
            raise ParameterError(name, f"Expected {name}:NAME. Got no preset name.")
        for preset in args:
            if preset not in presets:
                known = ", ".join(sorted(presets)) or "none configured"
                raise ParameterError(name, f"Expected a preset among: {known}. Got {preset!r} instead.")
            request.options.update(presets[preset])
            request.names.update(dict.fromkeys(presets[preset], f"{name}:{preset}"))
            request.presets.append(preset)
        return
    if option != "format":
        request.other_options.append(name)
    fields = {"resize": ("fit", "width", "height", "enlarge", "extend"), "size": ("width", "height", "enlarge",
              "extend"), "resizing_type": ("fit",), "width": ("width",), "height": ("height",), "dpr": ("dpr",),
              "quality": ("quality",), "gravity": ("gravity", "x_offset", "y_offset"), "enlarge": ("enlarge",),
              "format": ("format",)}[option]
    if len(args) > len(fields) or (len(fields) == 1 and len(args) != 1):
        count = "1 argument" if len(fields) == 1 else f"at most {len(fields)} arguments"
        raise ParameterError(name, f"Expected {name} with {count} ({', '.join(fields)}). Got {len(args)} instead.")
    for key, text in zip(fields, args, strict=False):
        if key in ("extend", "x_offset", "y_offset"):
            if text.lower() not in (*_FALSE, "0.0"):
                raise ParameterError(name, f"Expected {name}'s {key} to be empty or 0 (not supported here). "
                                           f"Got {text!r} instead.")
            continue
        if text == "" and len(fields) > 1:
            continue  # an omitted argument keeps its default
        request.options[key] = parse_option(key, text, name)
        request.names[key] = name
