"""latentzarr: store AI-generated images as compressed diffusion latents in Zarr, decode on demand with Dask.

The public API is re-exported here and imported lazily, so ``import latentzarr`` stays fast and does not load
torch or distributed until a name that needs them is used.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from latentzarr._lazy import lazy_exports

try:
    __version__ = version("latentzarr")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

# public name -> module that defines it
_LAZY: dict[str, str] = {
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
    "ObjectTooLargeError": "latentzarr.errors",
    "TraceFormatError": "latentzarr.errors",
    "MixedArraysError": "latentzarr.errors",
    "InvalidRenditionError": "latentzarr.errors",
    "InvalidImageError": "latentzarr.errors",
    "SpawnedImportError": "latentzarr.errors",
    "validate_id": "latentzarr.ids",
    "LatentStore": "latentzarr.store",
    "LatentAutoencoder": "latentzarr.models",
    "load_model": "latentzarr.models",
    "encode_image": "latentzarr.models.images",
    "pixel_digest": "latentzarr.models.images",
    "Rendition": "latentzarr.models.images",
    "ingest_images": "latentzarr.ingest",
    "ingest_arrays": "latentzarr.ingest",
    "export_images": "latentzarr.export",
    "decode_ids": "latentzarr.export",
    "sample_images": "latentzarr.samples",
    "run_demo": "latentzarr.demo",
    "DualFormatCache": "latentzarr.cache",
    "LRUImageCache": "latentzarr.cache",
    "S3FIFOImageCache": "latentzarr.cache",
    "CostModel": "latentzarr.cache",
    "Trace": "latentzarr.traces",
    "read_trace": "latentzarr.traces",
    "write_trace": "latentzarr.traces",
    "synth_trace": "latentzarr.traces",
    "analyze_trace": "latentzarr.traces",
    "LatentClient": "latentzarr.cluster",
    "LatentWorkerPlugin": "latentzarr.cluster",
    "HashRing": "latentzarr.cluster",
    "ReadFailedError": "latentzarr.cluster",
    "start_cluster": "latentzarr.cluster",
    "get_latentzarr_plugin": "latentzarr.cluster",
    "BatchOutputError": "latentzarr.errors",
    "BatchReport": "latentzarr.batch",
    "LatentImageDataset": "latentzarr.batch",
    "batch_decode": "latentzarr.batch",
    "create_app": "latentzarr.http",
    "open_dataset": "latentzarr.xr",
    "StoreUnavailableError": "latentzarr.errors",
    "WriteConflictError": "latentzarr.errors",
    "EncodedLatent": "latentzarr.store",
    "FaultInjector": "latentzarr.store.faults",
    "PluginMissingError": "latentzarr.cluster",
    "PrecisionMode": "latentzarr.precision",
    "parse_mode": "latentzarr.precision",
    "evaluate_fidelity": "latentzarr.precision",
    "plan_lifecycle": "latentzarr.lifecycle",
    "apply_lifecycle": "latentzarr.lifecycle",
}

__all__ = ["__version__", *sorted(_LAZY)]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


if TYPE_CHECKING:  # pragma: no cover
    from latentzarr.batch import BatchReport, LatentImageDataset, batch_decode  # noqa: F401
    from latentzarr.cache import CostModel, DualFormatCache, LRUImageCache, S3FIFOImageCache  # noqa: F401
    from latentzarr.cluster import (  # noqa: F401
        HashRing,
        LatentClient,
        LatentWorkerPlugin,
        PluginMissingError,
        ReadFailedError,
        get_latentzarr_plugin,
        start_cluster,
    )
    from latentzarr.demo import run_demo  # noqa: F401
    from latentzarr.errors import *  # noqa: F403
    from latentzarr.export import decode_ids, export_images  # noqa: F401
    from latentzarr.http import create_app  # noqa: F401
    from latentzarr.ids import validate_id  # noqa: F401
    from latentzarr.ingest import ingest_arrays, ingest_images  # noqa: F401
    from latentzarr.lifecycle import apply_lifecycle, plan_lifecycle  # noqa: F401
    from latentzarr.models import LatentAutoencoder, load_model  # noqa: F401
    from latentzarr.models.images import Rendition, encode_image, pixel_digest  # noqa: F401
    from latentzarr.precision import PrecisionMode, evaluate_fidelity, parse_mode  # noqa: F401
    from latentzarr.samples import sample_images  # noqa: F401
    from latentzarr.store import EncodedLatent, LatentStore  # noqa: F401
    from latentzarr.store.faults import FaultInjector  # noqa: F401
    from latentzarr.traces import Trace, analyze_trace, read_trace, synth_trace, write_trace  # noqa: F401
    from latentzarr.xr import open_dataset  # noqa: F401
