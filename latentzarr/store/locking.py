"""The writer lock of a store: held only for short critical sections (reserve rows, commit an index file).

- Local stores: :class:`filelock.FileLock` on ``<root>/.latentzarr.lock`` (an OS lock: released by the kernel when
  the holder dies, so a killed writer never leaves the store locked), plus a :class:`threading.RLock` per store
  object so threads sharing one object queue up without contending on the file.
- Object stores: a *lease* object ``<root>/.latentzarr.lock`` created with an exclusive PUT (``If-None-Match: *``).
  The holder deletes it when done. A lease older than ``stale_after`` seconds (its holder died) is broken.
  Breaking is not atomic on S3 (no conditional delete), so two writers that both find the same stale lease may
  both proceed; the index commit itself is an exclusive PUT as well, so even then no commit is overwritten.
  The exclusive create is atomic on local disks and on S3 (s3fs ``mode="create"`` sends ``If-None-Match: *``;
  AWS S3 and moto honour it). fsspec's generic fallback (other object stores) checks then writes, which is not
  atomic; reading the lease back narrows that race but does not close it: there, run one writer per store.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from contextlib import AbstractContextManager
from types import TracebackType

import filelock

from latentzarr.errors import StoreLockedError
from latentzarr.store.backend import Backend
from latentzarr.store.layout import LOCK_NAME

__all__ = ["DEFAULT_STALE_AFTER", "DEFAULT_TIMEOUT", "LeaseLock", "LocalLock", "make_lock"]

DEFAULT_TIMEOUT = 60.0
"""Seconds to wait for the writer lock before :class:`StoreLockedError`."""

DEFAULT_STALE_AFTER = 120.0
"""Seconds after which a lease on an object store counts as abandoned (a critical section takes well under 1 s)."""


class LocalLock(AbstractContextManager["LocalLock"]):
    """Process- and thread-safe lock on a local store.

    Parameters
    ----------
    path
        The lock file.
    timeout
        Seconds to wait before raising :class:`StoreLockedError`.
    """

    def __init__(self, path: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout
        self._thread_lock = threading.RLock()
        self._file_lock = filelock.FileLock(path, thread_local=False)

    def __enter__(self) -> LocalLock:
        if not self._thread_lock.acquire(timeout=self.timeout):
            raise StoreLockedError(self._message())
        try:
            self._file_lock.acquire(timeout=self.timeout)
        except filelock.Timeout:
            self._thread_lock.release()
            raise StoreLockedError(self._message()) from None
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._file_lock.release()
        self._thread_lock.release()

    def _message(self) -> str:
        return (f"Expected to take the writer lock {self.path!r} within {self.timeout:g} s. Got no lock instead: "
                "another writer holds it. Retry later, or pass a longer lock_timeout.")


class LeaseLock(AbstractContextManager["LeaseLock"]):
    """A lease on an object store, taken by creating ``<root>/.latentzarr.lock`` exclusively.

    Parameters
    ----------
    backend
        Where the store lives.
    timeout
        Seconds to wait before raising :class:`StoreLockedError`.
    stale_after
        Age in seconds after which an existing lease is considered abandoned and deleted.
    """

    def __init__(self, backend: Backend, timeout: float = DEFAULT_TIMEOUT,
                 stale_after: float = DEFAULT_STALE_AFTER) -> None:
        self.backend = backend
        self.timeout = timeout
        self.stale_after = stale_after
        self._thread_lock = threading.RLock()
        self._token: str | None = None
        self._depth = 0

    def __enter__(self) -> LeaseLock:
        deadline = time.monotonic() + self.timeout
        if not self._thread_lock.acquire(timeout=self.timeout):
            raise StoreLockedError(self._message())
        if self._depth:
            self._depth += 1
            return self
        token = uuid.uuid4().hex
        body = json.dumps({"token": token, "host": socket.gethostname(), "pid": os.getpid(),
                           "time": time.time()}).encode()
        delay = 0.02
        while True:
            try:
                self.backend.write(LOCK_NAME, body, exclusive=True)
                if self._holder() == token:  # read back: catches a lost race where create is not atomic
                    break
            except FileExistsError:
                try:
                    if self.backend.modified_age(LOCK_NAME) > self.stale_after:
                        self.backend.delete(LOCK_NAME)
                        continue
                except FileNotFoundError:
                    continue
            if time.monotonic() >= deadline:
                self._thread_lock.release()
                raise StoreLockedError(self._message())
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        self._token = token
        self._depth = 1
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self._depth -= 1
            if self._depth == 0:
                if self._holder() == self._token:  # never delete a lease someone else took after ours went stale
                    self.backend.delete(LOCK_NAME)
                self._token = None
        finally:
            self._thread_lock.release()

    def _holder(self) -> str | None:
        """Token of the current lease, or None when there is none (or it is unreadable)."""
        try:
            return json.loads(self.backend.read(LOCK_NAME)).get("token")
        except (FileNotFoundError, ValueError, AttributeError):
            return None

    def _message(self) -> str:
        return (f"Expected to take the writer lease {self.backend.path(LOCK_NAME)!r} within {self.timeout:g} s. "
                "Got no lease instead: another writer holds it. Retry later; a lease abandoned by a dead writer "
                f"is broken after {self.stale_after:g} s.")


def make_lock(backend: Backend, timeout: float = DEFAULT_TIMEOUT) -> LocalLock | LeaseLock:
    """The right lock for ``backend``: a file lock for local paths, a lease for object stores."""
    if backend.is_local:
        return LocalLock(backend.path(LOCK_NAME), timeout=timeout)
    return LeaseLock(backend, timeout=timeout)
