"""Validation of user-supplied image ids.

Ids are opaque user strings (never paths): 1..256 characters, no control characters, no surrogates. They are
compared exactly (no normalisation), so ``"a"`` and ``"a "`` are different ids.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from latentzarr.errors import DuplicateIdError, InvalidIdError

__all__ = ["MAX_ID_LENGTH", "validate_id", "validate_ids"]

MAX_ID_LENGTH = 256
"""Longest accepted id, in characters."""


def validate_id(image_id: object) -> str:
    """Return ``image_id`` if it is a valid id, else raise :class:`InvalidIdError` saying why."""
    if not isinstance(image_id, str):
        raise InvalidIdError(f"Expected an image id of type str. Got {type(image_id).__name__} {image_id!r} instead.")
    if not image_id:
        raise InvalidIdError("Expected a non-empty image id. Got '' instead.")
    if len(image_id) > MAX_ID_LENGTH:
        raise InvalidIdError(
            f"Expected an image id of at most {MAX_ID_LENGTH} characters. Got {len(image_id)} characters "
            f"({image_id[:32]!r}...) instead; use a shorter id or a hash of it."
        )
    for ch in image_id:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cs", "Zl", "Zp"):
            raise InvalidIdError(
                f"Expected an image id without control characters. Got {image_id!r} instead "
                f"(character {ch!r} is not allowed)."
            )
    return image_id


def validate_ids(ids: Iterable[object]) -> list[str]:
    """Validate every id and reject duplicates within the batch; return them as a list."""
    out = [validate_id(i) for i in ids]
    if len(set(out)) != len(out):
        seen: set[str] = set()
        dups = sorted({i for i in out if i in seen or seen.add(i)})
        raise DuplicateIdError(f"Expected unique ids in one call. Got duplicates {dups[:5]!r} instead.")
    return out
