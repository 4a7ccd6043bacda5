"""Exceptions raised by latentzarr.

Every error a user can trigger has its own class, so callers (the CLI, the HTTP endpoint, tests) can react
specifically. Messages say what was expected, what was given, and what to do next.
"""

from __future__ import annotations

__all__ = [
    "BatchOutputError",
    "CorruptDataError",
    "DuplicateIdError",
    "InvalidIdError",
    "InvalidImageError",
    "InvalidLatentError",
    "InvalidRenditionError",
    "LatentZarrError",
    "MixedArraysError",
    "ModelNotFoundError",
    "NotALatentStoreError",
    "ObjectTooLargeError",
    "SpawnedImportError",
    "StoreLockedError",
    "StoreUnavailableError",
    "TraceFormatError",
    "UnknownIdError",
    "UnsupportedFormatError",
    "WriteConflictError",
]


class LatentZarrError(Exception):
    """Base class of every latentzarr error.

    ``retryable`` says whether the same call may succeed if made again later unchanged (True for transient
    conditions such as an unreachable store or a worker that died mid-read; False for bad input or bad data).
    """

    retryable: bool = False


class InvalidIdError(LatentZarrError, ValueError):
    """An image id is empty, too long, not a string, or contains forbidden characters."""


class UnknownIdError(LatentZarrError, KeyError):
    """An image id is not in the store. ``args[0]`` is the id."""

    def __init__(self, image_id: str, where: str = "the store") -> None:
        super().__init__(image_id)
        self.image_id = image_id
        self.where = where

    def __str__(self) -> str:  # KeyError's default str() is repr(key); say more.
        return f"Unknown image id {self.image_id!r}: it is not in {self.where}."


class DuplicateIdError(LatentZarrError, ValueError):
    """An id appears twice in one call, or is already committed (ids are immutable)."""


class InvalidLatentError(LatentZarrError, ValueError):
    """A latent has the wrong shape or dtype for its array, or contains NaN/Inf."""


class NotALatentStoreError(LatentZarrError, ValueError):
    """A path or URL does not hold a latentzarr store.

    ``url`` is where it was looked for and ``found`` says what is there instead (both None when not known), so
    that a front end (the CLI) can say how to create one in its own terms.
    """

    def __init__(self, message: str, *, url: str | None = None, found: str | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.found = found


class UnsupportedFormatError(LatentZarrError, ValueError):
    """A store or codec configuration was written by a newer, unknown format version."""


class CorruptDataError(LatentZarrError, OSError):
    """Stored bytes failed to decode or failed their checksum."""


class StoreLockedError(LatentZarrError, TimeoutError):
    """The store's writer lock could not be taken in time."""


class StoreUnavailableError(LatentZarrError, ConnectionError):
    """The store did not answer (connection errors, timeouts) after bounded retries; retry later.

    Raised instead of a result, never instead of a wrong one: transient failures are not mistaken for missing
    ids or corrupt data. ``__cause__`` holds the last underlying error.
    """

    retryable = True


class WriteConflictError(LatentZarrError, RuntimeError):
    """A write found, at its commit, that a concurrent operation removed rows it had written (a
    :meth:`~latentzarr.store.LatentStore.vacuum` with a grace period shorter than the write); nothing was committed.
    Retry the write."""

    retryable = True


class ModelNotFoundError(LatentZarrError, FileNotFoundError):
    """Model weights are not where ``LATENTZARR_MODELS`` points and could not be fetched."""


class ObjectTooLargeError(LatentZarrError, ValueError):
    """An object is larger than the cache (or cache tier) it was offered to, so it can never be cached."""


class TraceFormatError(LatentZarrError, ValueError):
    """A request trace has too many malformed lines, or none that parse. The message quotes the first few."""


class MixedArraysError(LatentZarrError, ValueError):
    """The ids of one ``LatentStore.get`` call live in different arrays (different model, shape or dtype)."""


class InvalidRenditionError(LatentZarrError, ValueError):
    """An image format, size or quality that cannot be produced."""


class InvalidImageError(LatentZarrError, ValueError):
    """Pixels that are not a uint8 RGB picture (H, W, 3)."""


class BatchOutputError(LatentZarrError, ValueError):
    """A batch-decode output folder was written with other settings (batch size, format, selection)."""


class SpawnedImportError(LatentZarrError, RuntimeError):
    """A local cluster was started at a script's top level, outside ``if __name__ == "__main__":``: each spawned
    worker process re-imports the script and would start a cluster again (see
    :mod:`latentzarr.cluster.spawn_guard`)."""
