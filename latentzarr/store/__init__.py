"""The latent store: image id -> bit-exact latent in a Zarr v3 group, with an append-only id index.

See :mod:`latentzarr.store.core` for the write protocol and :mod:`latentzarr.store.layout` for the layout.
This package imports neither torch nor :mod:`latentzarr.models`.
"""

from __future__ import annotations

from latentzarr.store.arrays import ArrayMeta
from latentzarr.store.chunks import EncodedLatent
from latentzarr.store.core import DEFAULT_SHARD_IMAGES, LatentStore, MixedArraysError
from latentzarr.store.group import GroupWriter
from latentzarr.store.layout import FORMAT_VERSION, LOGICAL_DTYPES
from latentzarr.store.vacuum import VacuumReport

__all__ = ["DEFAULT_SHARD_IMAGES", "FORMAT_VERSION", "LOGICAL_DTYPES", "ArrayMeta", "EncodedLatent", "GroupWriter",
           "LatentStore", "MixedArraysError", "VacuumReport"]
