"""Bounded retries of store reads: the one place that decides what is transient and how long to keep trying.

A read that fails with a *transient* error (a connection error, a timeout, another I/O error of the storage
layer) is retried :data:`RETRY_ATTEMPTS` times in all, with exponential backoff and jitter; if every attempt
fails, :class:`~latentzarr.errors.StoreUnavailableError` (retryable) is raised, chained to the last error.
Errors that say something about the data or the request (a missing object, corrupt bytes, an unknown id, bad
input) are never retried and never turned into ``StoreUnavailableError``: they propagate unchanged.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from latentzarr.errors import LatentZarrError, StoreUnavailableError

__all__ = ["RETRY_ATTEMPTS", "RETRY_BACKOFF_MS", "is_transient", "with_retries"]

T = TypeVar("T")

RETRY_ATTEMPTS = 4
"""Attempts of one read in all (the first try plus three retries)."""
RETRY_BACKOFF_MS = (25.0, 400.0)
"""Backoff before retry k (k = 1, 2, ...): ``first * 2**(k-1)`` ms, at most ``cap`` ms, times a jitter in [0.5, 1.5)."""

_NOT_TRANSIENT = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, FileExistsError)


def _network_errors() -> tuple[type[BaseException], ...]:
    """botocore's connection-level errors (s3fs raises them as they are; they are not ``OSError``)."""
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError
    except ImportError:  # no S3 support installed
        return ()
    return (BotoConnectionError, HTTPClientError)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a transient storage failure worth retrying.

    True for :class:`OSError` and its subclasses (``ConnectionError``, ``TimeoutError``, ``EIO``...) except those
    that describe the object rather than the connection (missing, exists, permission, not a file/folder) and
    except latentzarr's own errors (``CorruptDataError`` is an ``OSError`` but is permanent); and for botocore's
    connection errors (an unreachable S3 endpoint, a dropped connection, a read timeout).
    """
    if isinstance(exc, OSError):
        return not isinstance(exc, (LatentZarrError, *_NOT_TRANSIENT))
    return isinstance(exc, _network_errors())


def with_retries(fn: Callable[[], T], *, what: str, url: str, attempts: int = RETRY_ATTEMPTS) -> T:
    """Call ``fn()``; retry transient failures with backoff; raise ``StoreUnavailableError`` after ``attempts``.

    Parameters
    ----------
    fn
        The read, without arguments; it must be safe to repeat (reads are).
    what, url
        What is being read and from which store, for the error message.
    attempts
        Calls in all (>= 1).
    """
    first, cap = RETRY_BACKOFF_MS
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if attempt == attempts:
                raise StoreUnavailableError(
                    f"Expected the store {url!r} to answer {what}. Got {type(exc).__name__}: {exc} on each of "
                    f"{attempts} attempts instead; it is unreachable or failing. Retry later (retryable)."
                ) from exc
        time.sleep(min(cap, first * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5) / 1000)
    raise AssertionError("unreachable")  # pragma: no cover
