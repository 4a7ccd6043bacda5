"""A latent's stored chunk as bytes, read straight out of its shard without decoding.

A cache that keeps latents *compressed* (the dual-format cache's latent tier) and a worker that ships a latent to
another worker both want the bytes the codec wrote, not the decoded array: they are 1.2-1.6x smaller, and getting
them costs no decode now and no re-encode later (re-encoding a 512^2 latent at the store's level costs ~35 ms).

Layout read here (Zarr v3 sharding, as :func:`~latentzarr.store.arrays.create_latent_array` writes it): one
shard object per ``shard_images`` rows at ``arrays/<name>/c/<shard>/0/0/0``; its index at the end is
``shard_images`` little-endian ``(offset, nbytes)`` uint64 pairs followed by a CRC-32C of them; an unwritten chunk
is ``(2**64-1, 2**64-1)``. One row is one chunk, encoded by ``latentzarr.latent`` (its own header and CRC-32), or
by ``latentzarr.lossy`` in an array of a lossy precision mode (its own header CRC, then a ``latentzarr.latent``
payload).
A read costs two ranged GETs (index, then chunk), as a Zarr read of one chunk of a shard does.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Sequence

import google_crc32c
import numpy as np
from latentzarr_codecs.engine import decode_chunk
from latentzarr_codecs.errors import CorruptChunkError, UnsupportedVersionError
from latentzarr_codecs.lossy import cast_values, decode_lossy_chunk
from zarr.abc.store import RangeByteRequest, Store, SuffixByteRequest
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from latentzarr.errors import CorruptDataError, UnsupportedFormatError
from latentzarr.store.arrays import ArrayMeta
from latentzarr.store.layout import storage_dtype, to_logical

__all__ = ["EncodedLatent", "encode_shard", "read_encoded", "read_shard_index", "shard_index", "written_rows"]

_EMPTY = 2**64 - 1


@dataclasses.dataclass(frozen=True, slots=True)
class EncodedLatent:
    """One latent as stored: the ``latentzarr.latent`` chunk bytes, with the dtype and shape to decode them.

    Invariant: :meth:`decode` gives exactly what :meth:`LatentStore.get_one` gives for the same id (the chunk
    carries a CRC-32, so damage is detected, never decoded into wrong values).
    """

    data: bytes
    """The chunk, header included."""
    dtype: str
    """Logical dtype: float16, float32 or bfloat16."""
    shape: tuple[int, int, int]
    """Latent shape (C, h, w)."""
    precision: str = "lossless"
    """The array's precision mode (``"lossless"``, ``"q8"``...): which codec wrote :attr:`data`."""

    @property
    def lossy(self) -> bool:
        """True when :attr:`data` is a ``latentzarr.lossy`` chunk (a lossy precision mode)."""
        return self.precision != "lossless"

    @property
    def nbytes(self) -> int:
        """Bytes held (the chunk's size)."""
        return len(self.data)

    def decode(self) -> np.ndarray:
        """The latent (C, h, w) in its logical dtype (bfloat16 as ``ml_dtypes.bfloat16``), bit-exact (for a lossy
        array: exactly the stored, already-rounded values a Zarr read gives).

        Raises :class:`~latentzarr.errors.CorruptDataError` when the bytes fail the codec's checks, and
        :class:`~latentzarr.errors.UnsupportedFormatError` when a newer codec version wrote them (upgrade).
        """
        try:
            if self.lossy:
                decoded, name, _ = decode_lossy_chunk(self.data)
                if name != self.dtype:
                    raise CorruptChunkError(f"Expected a chunk of {self.dtype} values. Got {name} instead.")
                values = cast_values(decoded, name, storage_dtype(self.dtype))
            else:
                values, _ = decode_chunk(self.data, self.dtype)
        except CorruptChunkError as exc:
            raise CorruptDataError(f"Expected an intact latent chunk. Got a damaged one instead: {exc}") from exc
        except UnsupportedVersionError as exc:
            raise UnsupportedFormatError(f"Expected a latent chunk this latentzarr can read. Got {exc} instead; "
                                         "upgrade latentzarr and latentzarr-codecs (the data is not damaged).") from exc
        return to_logical(values, self.dtype).reshape(self.shape)


def _get(store: Store, key: str, byte_range: RangeByteRequest | SuffixByteRequest) -> bytes | None:
    buf = sync(store.get(key, prototype=default_buffer_prototype(), byte_range=byte_range))
    return None if buf is None else buf.to_bytes()


def read_shard_index(store: Store, meta: ArrayMeta, shard: int, where: str | None = None) -> np.ndarray | None:
    """The index of shard object ``shard`` of array ``meta`` (see :func:`shard_index`); None when the shard object
    does not exist. One ranged read."""
    raw = _get(store, meta.shard_key(shard), SuffixByteRequest(16 * meta.shard_images + 4))
    return None if raw is None else shard_index(raw, meta, shard, where)


def shard_index(data: bytes, meta: ArrayMeta, shard: int, where: str | None = None) -> np.ndarray:
    """The index at the end of ``data`` (a shard object, or its tail) of shard ``shard`` of array ``meta``:
    (shard_images, 2) uint64 ``(offset, nbytes)`` per row, ``(2**64-1, 2**64-1)`` for an unwritten row.

    Raises
    ------
    CorruptDataError
        The index fails its CRC-32C (``where`` says whose read it was).
    """
    size = 16 * meta.shard_images + 4
    raw = data[-size:]
    if len(raw) != size or struct.pack("<I", google_crc32c.value(raw[:-4])) != raw[-4:]:
        raise CorruptDataError(f"Expected an intact shard index in {meta.shard_key(shard)!r}"
                               f"{f' for {where}' if where else ''}. Got one that fails its CRC-32C instead: the "
                               "shard is damaged; restore it from a backup.")
    return np.frombuffer(raw, dtype="<u8", count=2 * meta.shard_images).reshape(meta.shard_images, 2)


def encode_shard(chunks: Sequence[bytes | None]) -> bytes:
    """A whole shard object holding ``chunks`` (one per row; None: unwritten), in the layout Zarr's sharding codec
    writes and :func:`read_shard_index` reads: the chunks back to back, then the index and its CRC-32C.

    Chunk bytes do not depend on where a chunk sits, so chunks taken out of one shard (:func:`read_encoded`) and
    packed into another decode to the same values.
    """
    index = np.full((len(chunks), 2), _EMPTY, dtype="<u8")
    offset = 0
    for i, chunk in enumerate(chunks):
        if chunk is not None:
            index[i] = offset, len(chunk)
            offset += len(chunk)
    raw = index.tobytes()
    return b"".join(c for c in chunks if c is not None) + raw + struct.pack("<I", google_crc32c.value(raw))


def written_rows(index: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows a shard index holds data for."""
    return ~((index[:, 0] == _EMPTY) & (index[:, 1] == _EMPTY))


def read_encoded(store: Store, meta: ArrayMeta, row: int, image_id: str) -> EncodedLatent:
    """The stored chunk of ``row`` of the array ``meta`` in the Zarr ``store`` (``image_id`` names it in errors).

    Raises
    ------
    CorruptDataError
        The shard object is missing, its index fails its CRC-32C or holds no entry for the row.
    """
    shard, inner = divmod(int(row), meta.shard_images)
    key = meta.shard_key(shard)
    where = f"image id {image_id!r} (array {meta.name!r}, row {int(row)})"
    index = read_shard_index(store, meta, shard, where)
    if index is None:
        raise CorruptDataError(f"Expected the shard object {key!r} of {where}. Got none instead: it is missing. "
                               "Restore it from a backup, or re-ingest the image.")
    offset, nbytes = (int(v) for v in index[inner])
    if offset == _EMPTY and nbytes == _EMPTY:
        raise CorruptDataError(f"Expected stored data for {where}. Got an empty index entry in {key!r} instead; "
                               "re-ingest the image.")
    data = _get(store, key, RangeByteRequest(offset, offset + nbytes))
    if data is None or len(data) != nbytes:
        raise CorruptDataError(f"Expected {nbytes} bytes at offset {offset} of {key!r} for {where}. Got "
                               f"{0 if data is None else len(data)} instead: the shard is truncated.")
    return EncodedLatent(data, meta.dtype, meta.shape, meta.precision_name)
