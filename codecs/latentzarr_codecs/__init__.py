"""latentzarr-codecs: a lossless Zarr v3 / numcodecs codec for diffusion-model latents, built on pcodec.

Importing this package registers the numcodecs codec; the Zarr v3 codec is found through the ``zarr.codecs``
entry point, so a plain ``zarr.open`` reads stores written with it once this package is installed.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import numcodecs

from latentzarr_codecs.config import CODEC_NAME, DTYPES, FORMAT_VERSION
from latentzarr_codecs.errors import CorruptChunkError, UnsupportedVersionError
from latentzarr_codecs.lossy import LOSSY_NAME
from latentzarr_codecs.lossy_codecs import LossyCodec, LossyPCodec
from latentzarr_codecs.numcodecs_codec import LatentPCodec
from latentzarr_codecs.zarr3 import LatentCodec

__all__ = [
    "CODEC_NAME",
    "DTYPES",
    "FORMAT_VERSION",
    "LOSSY_NAME",
    "CorruptChunkError",
    "LatentCodec",
    "LatentPCodec",
    "LossyCodec",
    "LossyPCodec",
    "UnsupportedVersionError",
    "__version__",
]

try:
    __version__ = version("latentzarr-codecs")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0.0.0"

numcodecs.register_codec(LatentPCodec)
numcodecs.register_codec(LossyPCodec)
