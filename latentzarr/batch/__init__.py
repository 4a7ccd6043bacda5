"""Batch decode of training sets: a selection of ids -> Zarr uint8 arrays or image shards, resumable; and a
``torch`` ``IterableDataset`` streaming decoded batches (torch is imported only for the dataset)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from latentzarr.batch.output import FORMATS, BatchOutput, BatchOutputError
from latentzarr.batch.plan import Chunk, OutputArray, plan_selection
from latentzarr.batch.run import BatchReport, batch_decode, decode_tasks

__all__ = [
    "FORMATS",
    "BatchOutput",
    "BatchOutputError",
    "BatchReport",
    "Chunk",
    "LatentImageDataset",
    "OutputArray",
    "batch_decode",
    "decode_tasks",
    "plan_selection",
]


def __getattr__(name: str) -> Any:
    if name == "LatentImageDataset":
        from latentzarr.batch.dataset import LatentImageDataset

        return LatentImageDataset
    raise AttributeError(f"module 'latentzarr.batch' has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from latentzarr.batch.dataset import LatentImageDataset
