"""What the simulator replays: per-request object ids, image sizes and latent sizes, and the working set.

A trace (:class:`latentzarr.traces.Trace`) gives one size per request: the size of the object as the trace saw it.
The simulator reads it as the encoded image's size and derives the latent's size by ``latent_ratio`` (default
0.30 MB / 1.45 MB = 0.207, the published SD3.5 figures). A trace without sizes gets the readers' documented
default object size, :data:`latentzarr.traces.DEFAULT_OBJECT_SIZE` (1.45 MB), hence 0.30 MB latents.

The **working set** is the bytes of all distinct objects *as images*: the space an image-only cache would need to
never miss twice. Cache sizes are fractions of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latentzarr.cache.costs import DEFAULT_IMAGE_SIZE, DEFAULT_LATENT_SIZE

__all__ = ["DEFAULT_LATENT_RATIO", "Workload"]

DEFAULT_LATENT_RATIO = DEFAULT_LATENT_SIZE / DEFAULT_IMAGE_SIZE
"""Latent bytes per image byte (0.30 MB / 1.45 MB)."""


@dataclass(eq=False)
class Workload:
    """Parallel arrays, one element per request, plus the working set in bytes.

    Parameters
    ----------
    ids
        ``int64`` object ids.
    image_sizes, latent_sizes
        ``int64`` bytes of the requested object as an encoded image and as a compressed latent.
    """

    ids: np.ndarray
    image_sizes: np.ndarray
    latent_sizes: np.ndarray

    def __post_init__(self) -> None:
        self.ids = np.ascontiguousarray(self.ids, dtype=np.int64)
        self.image_sizes = np.ascontiguousarray(self.image_sizes, dtype=np.int64)
        self.latent_sizes = np.ascontiguousarray(self.latent_sizes, dtype=np.int64)
        n = len(self.ids)
        if len(self.image_sizes) != n or len(self.latent_sizes) != n:
            raise ValueError(
                f"Expected ids, image_sizes and latent_sizes of one length. Got {n}, {len(self.image_sizes)} and "
                f"{len(self.latent_sizes)} instead."
            )
        if n and (self.image_sizes.min() < 0 or self.latent_sizes.min() < 0):
            raise ValueError("Expected object sizes >= 0 bytes. Got a negative size instead; check the trace.")

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_trace(cls, trace: object, *, latent_ratio: float = DEFAULT_LATENT_RATIO) -> Workload:
        """Build from a :class:`latentzarr.traces.Trace` (``object_ids``, ``sizes`` as image bytes)."""
        latent_ratio = float(latent_ratio)
        if not 0.0 < latent_ratio < float("inf"):
            raise ValueError(f"Expected latent_ratio > 0 (latent bytes per image byte). Got {latent_ratio!r} instead.")
        ids = np.asarray(trace.object_ids)  # type: ignore[attr-defined]
        sizes = np.asarray(trace.sizes, dtype=np.int64)  # type: ignore[attr-defined]
        latent = np.maximum(1, np.rint(sizes * latent_ratio)).astype(np.int64)
        return cls(ids, sizes, latent)

    @classmethod
    def from_arrays(
        cls,
        ids: np.ndarray,
        image_sizes: np.ndarray | None = None,
        *,
        image_size: int = DEFAULT_IMAGE_SIZE,
        latent_ratio: float = DEFAULT_LATENT_RATIO,
    ) -> Workload:
        """Build from ids and optional image sizes (default: ``image_size`` bytes for every object)."""
        ids = np.asarray(ids)
        sizes = np.full(len(ids), image_size, dtype=np.int64) if image_sizes is None else image_sizes
        latent = np.maximum(1, np.rint(np.asarray(sizes) * float(latent_ratio))).astype(np.int64)
        return cls(ids, sizes, latent)

    def as_lists(self) -> tuple[list[int], list[int], list[int]]:
        """``(ids, image_sizes, latent_sizes)`` as Python lists, built once and reused by every replay."""
        cached = self.__dict__.get("_lists")
        if cached is None:
            cached = (self.ids.tolist(), self.image_sizes.tolist(), self.latent_sizes.tolist())
            self.__dict__["_lists"] = cached
        return cached

    def head(self, n: int) -> Workload:
        """The first ``n`` requests."""
        return Workload(self.ids[:n], self.image_sizes[:n], self.latent_sizes[:n])

    @property
    def n_objects(self) -> int:
        """Number of distinct object ids."""
        return len(np.unique(self.ids)) if len(self) else 0

    @property
    def working_set_bytes(self) -> int:
        """Bytes of every distinct object as an image (its last size seen in the trace)."""
        if not len(self):
            return 0
        _uniq, last = np.unique(self.ids[::-1], return_index=True)
        return int(self.image_sizes[::-1][last].sum())
