"""latentzarr: store AI-generated images as compressed diffusion latents in Zarr, decode on demand with Dask.

The public API is re-exported here and imported lazily, so ``import latentzarr`` stays fast and does not load
torch or distributed until a name that needs them is used.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("latentzarr")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    # errors and ids
    "LatentZarrError": "latentzarr.errors",
    "InvalidIdError": "latentzarr.errors",
    "UnknownIdError": "latentzarr.errors",
    "DuplicateIdError": "latentzarr.errors",
    "InvalidLatentError": "latentzarr.errors",
    "NotALatentStoreError": "latentzarr.errors",
    "UnsupportedFormatError": "latentzarr.errors",
    "CorruptDataError": "latentzarr.errors",
    "StoreLockedError": "latentzarr.errors",
    "ModelNotFoundError": "latentzarr.errors",
    "validate_id": "latentzarr.ids",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'latentzarr' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover
    from latentzarr.errors import *  # noqa: F403
    from latentzarr.ids import validate_id  # noqa: F401
