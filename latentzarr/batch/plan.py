"""Plan a batch decode: a selection of ids -> one output array per source array -> chunks of ``batch_size`` ids.

Pure bookkeeping over a :class:`~latentzarr.store.LatentStore` (no torch, no dask): every id is validated and
looked up *before* any work starts, so an unknown id fails fast with :class:`~latentzarr.errors.UnknownIdError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from latentzarr.ids import validate_ids

if TYPE_CHECKING:  # pragma: no cover
    from latentzarr.store import LatentStore

__all__ = ["DOWNSCALE", "Chunk", "OutputArray", "plan_selection"]

DOWNSCALE = 8
"""Pixels per latent cell along each axis for every supported autoencoder: an (h, w) latent -> (8h, 8w) image."""


@dataclass(frozen=True)
class Chunk:
    """One unit of work: ``ids`` (at most ``batch_size``) -> rows ``start:start+len(ids)`` of output ``array``."""

    array: str
    index: int
    start: int
    ids: tuple[str, ...]

    @property
    def key(self) -> str:
        """Name of this chunk's completion marker (``<array>/<index>``)."""
        return f"{self.array}/{self.index:08d}"


@dataclass(frozen=True)
class OutputArray:
    """The selected ids of one source array (one model, latent shape and dtype), in selection order.

    Attributes
    ----------
    name : str
        Source array name, also the output array's name.
    model : str
        Model recorded in the source array (the default decoder).
    latent_shape : tuple of int
        (C, h, w) of each latent.
    ids : tuple of str
        Image ids in selection order; row ``i`` of the output holds ``ids[i]``.
    """

    name: str
    model: str
    latent_shape: tuple[int, int, int]
    ids: tuple[str, ...]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, 3) of each decoded image."""
        _, h, w = self.latent_shape
        return (h * DOWNSCALE, w * DOWNSCALE, 3)

    def chunks(self, batch_size: int) -> list[Chunk]:
        """Consecutive chunks of ``batch_size`` ids (the last may be shorter)."""
        return [Chunk(self.name, n, start, self.ids[start:start + batch_size])
                for n, start in enumerate(range(0, len(self.ids), batch_size))]


def check_batch_size(batch_size: object) -> int:
    """Return ``batch_size`` if it is a positive int, else raise ``ValueError``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"Expected batch_size as a positive int. Got {batch_size!r} instead.")
    return batch_size


def plan_selection(store: LatentStore, ids: Iterable[str] | None = None) -> list[OutputArray]:
    """Group a selection (``None``: every committed id) by source array, keeping selection order in each group.

    Arrays come in the order of their first selected id.

    Raises
    ------
    InvalidIdError, DuplicateIdError
        An id is malformed, or appears twice.
    UnknownIdError
        An id is not in the store.
    ValueError
        The selection is empty.
    """
    if isinstance(ids, str):
        raise TypeError(f"Expected a sequence of ids. Got the str {ids!r} instead; wrap it in a list.")
    if ids is None:
        store.refresh()
        selected = store.ids()
    else:
        selected = validate_ids(ids)
    if not selected:
        raise ValueError(f"Expected at least one id to decode. Got an empty selection of {store.url!r} instead.")
    groups: dict[str, list[str]] = {}
    info: dict[str, tuple[str, tuple[int, int, int]]] = {}
    for image_id in selected:
        rec = store.record(image_id)  # UnknownIdError before any work starts
        groups.setdefault(rec["array"], []).append(image_id)
        info.setdefault(rec["array"], (rec["model"], tuple(int(n) for n in rec["shape"])))
    return [OutputArray(name, info[name][0], info[name][1], tuple(members)) for name, members in groups.items()]
