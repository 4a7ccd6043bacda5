"""Fault injection for a store's I/O: latency, transient errors, timeouts, an unreachable store, a full disk.

For reliability tests and soak runs. Pass a :class:`FaultInjector` as ``faults=`` to
:meth:`LatentStore.open <latentzarr.store.LatentStore.open>` / ``create`` (or to
:class:`~latentzarr.cluster.LatentWorkerPlugin`, which opens the store on each worker with it). Every object
operation of that store -- the Zarr array reads and writes *and* the id index and lease objects -- first asks the
injector, which may:

- wait a latency drawn uniformly from ``latency_ms`` (ms);
- raise :class:`InjectedFault` (a ``ConnectionError``, so an ``OSError``) with probability ``error_rate``;
- hang ``timeout_s`` seconds and then raise :class:`TimeoutError` with probability ``timeout_rate``;
- raise ``ConnectionRefusedError`` on every operation while :attr:`FaultInjector.unreachable` is set, or while the
  file ``unreachable_file`` exists (a switch that works across processes, e.g. for Dask workers);
- raise ``OSError(ENOSPC)`` for a write once ``disk_bytes`` bytes have been written through it (a full disk).

The injector pickles as its settings: a copy in another process (a Dask worker) draws its own random stream,
seeded by ``(seed, process id)``, and keeps its own counters.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import WrapperStore

from latentzarr.store.backend import Backend

__all__ = ["FaultInjector", "FaultyBackend", "FaultyStore", "InjectedFault"]


class InjectedFault(ConnectionError):
    """A transient store error raised on purpose by :class:`FaultInjector`."""


@dataclass
class FaultInjector:
    """Settings and state of the faults injected into one store's I/O; thread-safe.

    Parameters
    ----------
    latency_ms
        (low, high): each operation first waits a uniform draw in this range, in ms.
    error_rate
        Probability in [0, 1] that an operation raises :class:`InjectedFault` (after its latency).
    timeout_rate
        Probability in [0, 1] that an operation hangs ``timeout_s`` and then raises :class:`TimeoutError`.
    timeout_s
        Seconds a timed-out operation hangs.
    disk_bytes
        Bytes that writes may add in all before each further write raises ``OSError(ENOSPC)``; None: no limit.
        Raise it (or set None) to "free space".
    unreachable
        While True, every operation raises ``ConnectionRefusedError`` (this process only).
    unreachable_file
        While a file exists at this path, every operation raises ``ConnectionRefusedError`` (every process).
    seed
        Seed of the random draws.

    Attributes
    ----------
    counts
        Per outcome (``ops``, ``errors``, ``timeouts``, ``refused``, ``enospc``): operations seen in this process.
    written_bytes
        Bytes written through this injector in this process (what ``disk_bytes`` is compared with).
    """

    latency_ms: tuple[float, float] = (0.0, 0.0)
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    timeout_s: float = 1.0
    disk_bytes: int | None = None
    unreachable: bool = False
    unreachable_file: str | None = None
    seed: int = 0
    counts: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    written_bytes: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lo, hi = (float(v) for v in self.latency_ms)
        if not 0 <= lo <= hi:
            raise ValueError(f"Expected latency_ms as (low, high) with 0 <= low <= high (ms). Got "
                             f"{self.latency_ms!r} instead.")
        self.latency_ms = (lo, hi)
        for name in ("error_rate", "timeout_rate"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"Expected {name} in [0, 1]. Got {value!r} instead.")
        if not self.timeout_s >= 0:
            raise ValueError(f"Expected timeout_s >= 0 (seconds). Got {self.timeout_s!r} instead.")
        if self.disk_bytes is not None and self.disk_bytes < 0:
            raise ValueError(f"Expected disk_bytes >= 0 or None. Got {self.disk_bytes!r} instead.")
        if self.unreachable_file is not None:
            self.unreachable_file = os.fspath(self.unreachable_file)
        self._start(self.seed)

    def _start(self, *seed: int) -> None:
        self._rng = np.random.default_rng(list(seed))
        self._lock = threading.Lock()
        self.counts = dict.fromkeys(("ops", "errors", "timeouts", "refused", "enospc"), 0)
        self.written_bytes = 0

    def __getstate__(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.__dict__.update(state)
        self._start(self.seed, os.getpid())

    # ------------------------------------------------------------------------------------------ decisions
    def _decide(self, op: str, key: str, nbytes: int) -> tuple[float, BaseException | None, float]:
        """(latency s, error to raise or None, hang s before raising) for one operation."""
        with self._lock:
            self.counts["ops"] += 1
            if self.unreachable or (self.unreachable_file and os.path.exists(self.unreachable_file)):
                self.counts["refused"] += 1
                return 0.0, ConnectionRefusedError(f"injected fault: store unreachable ({op} {key!r})"), 0.0
            lo, hi = self.latency_ms
            delay = float(self._rng.uniform(lo, hi)) / 1000 if hi > 0 else 0.0
            u = float(self._rng.random())
            if u < self.error_rate:
                self.counts["errors"] += 1
                return delay, InjectedFault(f"injected fault: transient error on {op} {key!r}"), 0.0
            if u < self.error_rate + self.timeout_rate:
                self.counts["timeouts"] += 1
                return delay, TimeoutError(f"injected fault: {op} {key!r} timed out after {self.timeout_s:g} s"), \
                    self.timeout_s
            if nbytes and self.disk_bytes is not None and self.written_bytes + nbytes > self.disk_bytes:
                self.counts["enospc"] += 1
                return delay, OSError(errno.ENOSPC, f"No space left on device (injected; writing {key!r})"), 0.0
            self.written_bytes += nbytes
            return delay, None, 0.0

    def check(self, op: str, key: str, nbytes: int = 0) -> None:
        """Apply the faults to one blocking operation ``op`` on ``key`` (``nbytes`` > 0 for a write)."""
        delay, exc, hang = self._decide(op, key, nbytes)
        if delay + hang:
            time.sleep(delay + hang)
        if exc is not None:
            raise exc

    async def acheck(self, op: str, key: str, nbytes: int = 0) -> None:
        """:meth:`check` for an asynchronous operation (waits without blocking the event loop)."""
        delay, exc, hang = self._decide(op, key, nbytes)
        if delay + hang:
            await asyncio.sleep(delay + hang)
        if exc is not None:
            raise exc


class FaultyStore(WrapperStore[Store]):
    """A Zarr v3 store that passes every operation through a :class:`FaultInjector` before the wrapped store."""

    def __init__(self, store: Store, faults: FaultInjector | None = None) -> None:
        super().__init__(store)
        self.faults = faults if faults is not None else FaultInjector()

    def _with_store(self, store: Store) -> FaultyStore:
        return type(self)(store, self.faults)

    def __repr__(self) -> str:
        return f"FaultyStore({self._store!r}, {self.faults!r})"

    async def get(self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None) -> Buffer | None:
        await self.faults.acheck("get", key)
        return await self._store.get(key, prototype, byte_range)

    async def get_partial_values(self, prototype: BufferPrototype,
                                 key_ranges: Iterable[tuple[str, ByteRequest | None]]) -> list[Buffer | None]:
        key_ranges = list(key_ranges)
        for key, _ in key_ranges:
            await self.faults.acheck("get", key)
        return await self._store.get_partial_values(prototype, key_ranges)

    async def _get_many(self, requests: Iterable[tuple[str, BufferPrototype, ByteRequest | None]]
                        ) -> AsyncGenerator[tuple[str, Buffer | None], None]:
        for key, prototype, byte_range in requests:
            yield key, await self.get(key, prototype, byte_range)

    async def exists(self, key: str) -> bool:
        await self.faults.acheck("exists", key)
        return await self._store.exists(key)

    async def set(self, key: str, value: Buffer) -> None:
        await self.faults.acheck("set", key, len(value))
        await self._store.set(key, value)

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        await self.faults.acheck("set", key, len(value))
        await self._store.set_if_not_exists(key, value)

    async def _set_many(self, values: Iterable[tuple[str, Buffer]]) -> None:
        for key, value in values:
            await self.set(key, value)

    async def delete(self, key: str) -> None:
        await self.faults.acheck("delete", key)
        await self._store.delete(key)

    async def delete_dir(self, prefix: str) -> None:
        await self.faults.acheck("delete", prefix)
        await self._store.delete_dir(prefix)

    async def is_empty(self, prefix: str) -> bool:
        await self.faults.acheck("list", prefix)
        return await self._store.is_empty(prefix)

    async def _listed(self, prefix: str, items: AsyncIterator[str]) -> AsyncIterator[str]:
        await self.faults.acheck("list", prefix)
        async for item in items:
            yield item

    def list(self) -> AsyncIterator[str]:
        return self._listed("", self._store.list())

    def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        return self._listed(prefix, self._store.list_prefix(prefix))

    def list_dir(self, prefix: str) -> AsyncIterator[str]:
        return self._listed(prefix, self._store.list_dir(prefix))


class FaultyBackend(Backend):
    """A :class:`~latentzarr.store.backend.Backend` whose objects and Zarr store both go through ``faults``.

    The lock of a *local* store is an OS file lock beside the store and is not faulted.
    """

    def __init__(self, url: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None,
                 *, read_only: bool = False, faults: FaultInjector) -> None:
        super().__init__(url, storage_options, read_only=read_only)
        self.faults = faults
        self.zarr_store = FaultyStore(self.zarr_store, faults)

    def exists(self, key: str) -> bool:
        self.faults.check("exists", key)
        return super().exists(key)

    def read(self, key: str) -> bytes:
        self.faults.check("get", key)
        return super().read(key)

    def write(self, key: str, data: bytes, *, exclusive: bool = False) -> None:
        self.faults.check("set", key, len(data))
        super().write(key, data, exclusive=exclusive)

    def sync(self, keys: list[str]) -> None:
        self.faults.check("sync", ",".join(keys[:1]))
        super().sync(keys)

    def delete(self, key: str) -> None:
        self.faults.check("delete", key)
        super().delete(key)

    def listdir(self, key: str) -> list[str]:
        self.faults.check("list", key)
        return super().listdir(key)

    def size(self, key: str) -> int:
        self.faults.check("list", key)
        return super().size(key)

    def modified_age(self, key: str) -> float:
        self.faults.check("exists", key)
        return super().modified_age(key)

    def __repr__(self) -> str:
        return f"FaultyBackend({self.url!r}, {self.faults!r})"
