"""Validation of what ``LatentStore.put`` receives: latents, model name and attributes, per-id metadata."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from latentzarr.errors import InvalidLatentError
from latentzarr.store.layout import LOGICAL_DTYPES, logical_dtype_name

__all__ = ["check_finite", "coerce_latents", "normalise_model_attrs", "per_id", "validate_model"]


def coerce_latents(latents: np.ndarray | Sequence[np.ndarray], n_ids: int) -> tuple[np.ndarray, str]:
    """Return ``latents`` as one C-contiguous (N, C, h, w) array and its logical dtype name.

    Raises
    ------
    InvalidLatentError
        Not an array (or sequence of equally shaped (C, h, w) arrays), not 4-D, N != ``n_ids``, or a dtype
        other than float16 / float32 / bfloat16.
    """
    if isinstance(latents, np.ndarray):
        arr = latents
    elif isinstance(latents, Sequence) and not isinstance(latents, (str, bytes)):
        items = [np.asarray(x) for x in latents]
        shapes = {x.shape for x in items}
        dtypes = {x.dtype for x in items}
        if len(shapes) > 1 or len(dtypes) > 1:
            raise InvalidLatentError(
                f"Expected latents of one shape and dtype. Got shapes {sorted(map(str, shapes))} and dtypes "
                f"{sorted(map(str, dtypes))} instead; put each shape in its own call."
            )
        if not items:
            raise InvalidLatentError(f"Expected {n_ids} latents. Got an empty sequence instead.")
        arr = np.stack(items)
    else:
        raise InvalidLatentError(
            f"Expected latents as a numpy array (N, C, h, w) or a sequence of (C, h, w) arrays. "
            f"Got {type(latents).__name__} instead."
        )
    logical = logical_dtype_name(arr.dtype)
    if logical is None:
        raise InvalidLatentError(
            f"Expected latents of dtype {', '.join(LOGICAL_DTYPES)}. Got {arr.dtype} instead; cast them first "
            "(e.g. latents.astype(np.float32), which is exact from float16 and bfloat16 but not from float64)."
        )
    if arr.ndim != 4:
        raise InvalidLatentError(
            f"Expected latents of shape (N, C, h, w). Got shape {arr.shape} instead; a single latent (C, h, w) "
            "goes in as latents[None]."
        )
    if arr.shape[0] != n_ids:
        raise InvalidLatentError(f"Expected {n_ids} latents, one per id. Got {arr.shape[0]} instead.")
    if 0 in arr.shape[1:]:
        raise InvalidLatentError(f"Expected a non-empty latent shape (C, h, w). Got {arr.shape[1:]} instead.")
    return np.ascontiguousarray(arr), logical


def check_finite(latents: np.ndarray, ids: Sequence[str]) -> None:
    """Raise :class:`InvalidLatentError` naming the ids whose latents hold NaN or Inf."""
    finite = np.isfinite(latents.reshape(len(latents), -1)).all(axis=1)
    if not finite.all():
        bad = [ids[i] for i in np.flatnonzero(~finite)]
        raise InvalidLatentError(
            f"Expected finite latents. Got NaN or Inf in {len(bad)} latent(s), ids {bad[:10]!r} instead; "
            "re-encode those images (a NaN latent decodes to garbage)."
        )


def validate_model(model: object) -> str:
    """Return ``model`` if it is a non-empty string of at most 200 characters."""
    if not isinstance(model, str) or not model.strip() or len(model) > 200:
        raise InvalidLatentError(
            f"Expected a model id: a non-empty string such as 'taef2'. Got {model!r} instead."
        )
    return model


def normalise_model_attrs(model_attrs: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Model attributes as a plain JSON-round-tripped dict (None stays None)."""
    if model_attrs is None:
        return None
    if not isinstance(model_attrs, Mapping):
        raise InvalidLatentError(f"Expected model_attrs as a mapping. Got {type(model_attrs).__name__} instead.")
    try:
        return json.loads(json.dumps(dict(model_attrs), sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise InvalidLatentError(
            f"Expected JSON-serialisable model_attrs. Got {model_attrs!r} instead ({exc})."
        ) from None


def per_id(values: Sequence[Any] | None, n: int, name: str, kind: type | tuple[type, ...]) -> list[Any]:
    """``values`` as a list of length ``n`` whose items are ``kind`` or None (all None when ``values`` is None)."""
    if values is None:
        return [None] * n
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(f"Expected {name} as a sequence with one item per id. Got {type(values).__name__} instead.")
    if len(values) != n:
        raise ValueError(f"Expected {n} {name}, one per id. Got {len(values)} instead.")
    out = list(values)
    for v in out:
        if v is not None and (not isinstance(v, kind) or isinstance(v, bool)):
            raise ValueError(f"Expected each of {name} to be {kind} or None. Got {v!r} instead.")
    return out


def decoder_setup_json(decoder_setup: Mapping[str, Any] | str | None) -> str | None:
    """The decoder setup of a put as a JSON string (None stays None)."""
    if decoder_setup is None or isinstance(decoder_setup, str):
        return decoder_setup
    try:
        return json.dumps(dict(decoder_setup), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Expected a JSON-serialisable decoder_setup. Got {decoder_setup!r} instead ({exc}).") \
            from None
