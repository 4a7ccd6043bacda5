"""Named renditions (presets) for the endpoint: loaded from a JSON or TOML file, validated once at start-up.

A presets file maps a name to native rendition options (the query parameters of ``/v1/images/{id}``)::

    # presets.toml
    [thumb]
    w = 200
    h = 200
    fit = "fill"
    format = "webp"

    [hero]
    w = 1200
    dpr = 2
    q = 80

A preset is used as ``preset=NAME`` (native) or ``pr:NAME`` (imgproxy-style). Options given next to it override
the preset's, unless the server runs presets-only (``--presets-only``), which refuses every rendition option but
the preset (and the output format): arbitrary renditions let any client make the workers decode, resize and cache
without end, so a public endpoint should serve a fixed set.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from latentzarr.http.params import NATIVE_NAMES, ParameterError, parse_option, resolve_rendition

__all__ = ["PRESET_NAME", "check_presets", "load_presets"]

PRESET_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""What a preset name may be (it appears in URLs as ``preset=NAME`` and ``pr:NAME``)."""


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise ValueError(f"Expected a string, number or boolean. Got {type(value).__name__} {value!r} instead.")


def check_presets(presets: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Validate ``{name: {option: value}}`` (native option names, see :data:`~latentzarr.http.params.NATIVE_NAMES`)
    and return ``{name: options dict}``. Raises ``ValueError`` naming the preset and the option."""
    if not isinstance(presets, Mapping):
        raise ValueError(f"Expected presets as a mapping name -> options. Got {type(presets).__name__} instead.")
    out: dict[str, dict[str, Any]] = {}
    for name, spec in presets.items():
        if not isinstance(name, str) or not PRESET_NAME.fullmatch(name):
            raise ValueError(f"Expected preset names of 1-64 letters, digits, '_' or '-'. Got {name!r} instead.")
        if not isinstance(spec, Mapping):
            raise ValueError(f"Expected preset {name!r} as a table of options. Got {spec!r} instead.")
        options: dict[str, Any] = {}
        for option, value in spec.items():
            key = NATIVE_NAMES.get(option)
            if key is None:
                raise ValueError(f"Expected the options of preset {name!r} among {', '.join(NATIVE_NAMES)}. "
                                 f"Got {option!r} instead.")
            try:
                options[key] = parse_option(key, _text(value), option)
            except ParameterError as exc:
                raise ValueError(f"Preset {name!r}: {exc.detail}") from None
        try:
            resolve_rendition(options)
        except ParameterError as exc:
            raise ValueError(f"Preset {name!r}: {exc.detail}") from None
        out[name] = options
    return out


def load_presets(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read and validate a presets file: TOML when it ends in ``.toml``, else JSON. Raises ``ValueError`` (bad
    content, naming the preset) or ``OSError`` (unreadable)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ValueError as exc:
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise ValueError(f"Expected {path} to hold {kind} presets. Got a parse error: {exc}") from None
    return check_presets(data)
