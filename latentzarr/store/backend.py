"""Byte-level access to a store's location: a local folder or any fsspec URL.

Zarr reads and writes the arrays through its own store object (:attr:`Backend.zarr_store`); the id index and the
lock are plain objects written through this class, which guarantees the two properties the store relies on:

- :meth:`Backend.write` is atomic (readers see the old object or the whole new one, never a part of it):
  local files are written to a temporary name and renamed, object stores replace objects in one PUT;
- ``exclusive=True`` fails with :class:`FileExistsError` when the object already exists (local: ``os.link``;
  S3: ``If-None-Match: *`` through s3fs ``mode="create"``, which moto honours too).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fsspec
import zarr.storage
from fsspec.implementations.local import LocalFileSystem

__all__ = ["Backend"]


def _fsync_dir(folder: str) -> None:
    """fsync a folder so a rename or new file in it survives a power loss (no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Backend:
    """Access to the objects under one root (a local path or an fsspec URL).

    Parameters
    ----------
    url
        Local path, ``file://`` URL, or any fsspec URL such as ``s3://bucket/store.zarr``.
    storage_options
        Passed to fsspec (e.g. ``{"endpoint_url": ..., "key": ..., "secret": ...}`` for S3).
    read_only
        Open the Zarr store read-only.
    """

    def __init__(self, url: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None,
                 *, read_only: bool = False) -> None:
        self.url = os.fspath(url)
        self.storage_options = dict(storage_options or {})
        fs, root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        self.fs = fs
        self.is_local = isinstance(fs, LocalFileSystem)
        self.root = str(Path(root).resolve()) if self.is_local else root.rstrip("/")
        if self.is_local:
            self.url = self.root  # absolute, so that a pickled store reopens from any working directory
        self.read_only = read_only
        if self.is_local:
            self.zarr_store: zarr.abc.store.Store = zarr.storage.LocalStore(self.root, read_only=read_only)
        else:
            self.zarr_store = zarr.storage.FsspecStore.from_url(
                self.url, storage_options=self.storage_options or None, read_only=read_only
            )

    def path(self, key: str) -> str:
        """Full path of ``key`` (relative to the root, ``/``-separated)."""
        return f"{self.root}/{key}" if key else self.root

    def exists(self, key: str) -> bool:
        """Whether the object (or folder) ``key`` exists."""
        if self.is_local:
            return os.path.exists(self.path(key))
        self.fs.invalidate_cache(self.path(key))
        return self.fs.exists(self.path(key))

    def read(self, key: str) -> bytes:
        """Bytes of object ``key``; :class:`FileNotFoundError` when absent."""
        if self.is_local:
            with open(self.path(key), "rb") as f:
                return f.read()
        return self.fs.cat_file(self.path(key))

    def write(self, key: str, data: bytes, *, exclusive: bool = False) -> None:
        """Write object ``key`` atomically; with ``exclusive`` raise :class:`FileExistsError` if it exists."""
        path = self.path(key)
        if not self.is_local:
            self.fs.pipe_file(path, data, mode="create" if exclusive else "overwrite")
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.partial"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if exclusive:
                os.link(tmp, path)  # fails with FileExistsError when path exists
            else:
                os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        _fsync_dir(os.path.dirname(path))

    def sync(self, keys: list[str]) -> None:
        """Make objects written by others (Zarr) durable: fsync local files and their folders; no-op remotely.

        Missing keys are skipped (Zarr writes no object for an all-fill-value chunk).
        """
        if not self.is_local:
            return
        folders = set()
        for key in keys:
            path = self.path(key)
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            folders.add(os.path.dirname(path))
        for folder in folders:
            _fsync_dir(folder)

    def delete(self, key: str) -> None:
        """Delete object ``key``; no error when it is already gone."""
        try:
            if self.is_local:
                os.unlink(self.path(key))
            else:
                self.fs.rm_file(self.path(key))
        except FileNotFoundError:
            pass

    def prune_empty(self, key: str, *, stop: str) -> None:
        """Remove the folders of a deleted object ``key`` that are now empty, up to (not including) folder ``stop``;
        object stores have no folders, so nothing to do there."""
        if not self.is_local:
            return
        folder, stop_path = os.path.dirname(self.path(key)), os.path.normpath(self.path(stop))
        while os.path.normpath(folder) != stop_path and folder.startswith(stop_path):
            try:
                os.rmdir(folder)
            except OSError:  # not empty (or gone): stop here
                return
            folder = os.path.dirname(folder)

    def listdir(self, key: str) -> list[str]:
        """Names (not paths) of the objects directly under folder ``key``; empty when it does not exist."""
        if self.is_local:
            try:
                return sorted(os.listdir(self.path(key)))
            except FileNotFoundError:
                return []
        try:
            entries = self.fs.ls(self.path(key), detail=False, refresh=True)
        except FileNotFoundError:
            return []
        return sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def size(self, key: str) -> int:
        """Total size in bytes of every object under ``key`` (0 when absent)."""
        if self.is_local:
            if os.path.isfile(self.path(key)):
                return os.path.getsize(self.path(key))
            total = 0
            for dirpath, _dirs, files in os.walk(self.path(key)):
                for f in files:
                    with contextlib.suppress(FileNotFoundError):  # renamed or deleted by a writer meanwhile
                        total += os.path.getsize(os.path.join(dirpath, f))
            return total
        self.fs.invalidate_cache(self.path(key))
        try:
            return int(self.fs.du(self.path(key), total=True))
        except FileNotFoundError:
            return 0

    def modified_age(self, key: str) -> float:
        """Seconds since object ``key`` was last modified (by this machine's clock)."""
        import time

        if self.is_local:
            return time.time() - os.path.getmtime(self.path(key))
        self.fs.invalidate_cache(self.path(key))
        return time.time() - self.fs.modified(self.path(key)).timestamp()

    def __repr__(self) -> str:
        return f"Backend({self.url!r})"
