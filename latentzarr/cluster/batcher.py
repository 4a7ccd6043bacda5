"""Group concurrent decode requests of one latent shape into one forward pass.

Task threads call :meth:`DecodeBatcher.decode` with one latent each and block on a future; one background
thread takes the first waiting request, then gathers more requests *of the same shape and dtype* until it has
``max_batch`` of them or ``max_wait_ms`` have passed since the first, decodes them together, and hands each
caller its picture. Requests of other shapes wait for the next round. This matters most on a GPU, where a batch
of 8 costs little more than a batch of 1.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

__all__ = ["DecodeBatcher"]


class DecodeBatcher:
    """Batch decodes from many threads through one function ``decode_fn(latents (N,C,h,w)) -> uint8 (N,H,W,3)``.

    Parameters
    ----------
    decode_fn
        Decodes a stacked batch; called from the batcher's own thread only.
    max_batch
        Most latents per forward pass (>= 1).
    max_wait_ms
        Longest time (ms) the first request of a batch waits for companions.
    """

    def __init__(self, decode_fn: Callable[[np.ndarray], np.ndarray], *, max_batch: int = 8,
                 max_wait_ms: float = 5.0) -> None:
        if max_batch < 1:
            raise ValueError(f"Expected max_batch >= 1. Got {max_batch!r} instead.")
        if max_wait_ms < 0:
            raise ValueError(f"Expected max_wait_ms >= 0. Got {max_wait_ms!r} instead.")
        self._decode = decode_fn
        self.max_batch = int(max_batch)
        self.max_wait_ms = float(max_wait_ms)
        self._queue: deque[tuple[np.ndarray, Future]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.batches = 0
        """Forward passes run so far."""
        self.decoded = 0
        """Latents decoded so far."""
        self.wait_ms = 0.0
        """Total time (ms) decoded latents waited in the queue before their forward pass started."""
        self._thread = threading.Thread(target=self._run, name="latentzarr-decode-batcher", daemon=True)
        self._thread.start()

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a forward pass."""
        return len(self._queue)

    def submit(self, latent: np.ndarray) -> Future:
        """Queue one latent (C, h, w); the future resolves to its uint8 picture (H, W, 3)."""
        fut: Future = Future()
        fut.queued_at = time.perf_counter()  # type: ignore[attr-defined]
        with self._cond:
            if self._closed:
                raise RuntimeError("Expected an open DecodeBatcher. Got a closed one (the worker is shutting down).")
            self._queue.append((latent, fut))
            self._cond.notify()
        return fut

    def decode(self, latent: np.ndarray, timeout: float | None = None) -> np.ndarray:
        """Decode one latent (C, h, w) to uint8 (H, W, 3), batched with concurrent callers."""
        return self.submit(latent).result(timeout)

    def close(self) -> None:
        """Stop the thread; waiting requests fail with ``RuntimeError``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=10)
        while self._queue:
            _, fut = self._queue.popleft()
            fut.set_exception(RuntimeError("DecodeBatcher closed before this latent was decoded."))

    def _take_batch(self) -> list[tuple[np.ndarray, Future]] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            first = self._queue.popleft()
            batch = [first]
            kind = (first[0].shape, first[0].dtype)
            deadline = time.monotonic() + self.max_wait_ms / 1000
            while len(batch) < self.max_batch:
                at = next((i for i, item in enumerate(self._queue) if (item[0].shape, item[0].dtype) == kind), None)
                if at is not None:
                    batch.append(self._queue[at])
                    del self._queue[at]  # by position: deque.remove would compare arrays
                    continue
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    break
                self._cond.wait(left)
            return batch

    def _run(self) -> None:
        while (batch := self._take_batch()) is not None:
            futures = [f for _, f in batch if f.set_running_or_notify_cancel()]
            if not futures:
                continue
            live = [lat for lat, f in batch if f in futures]
            started = time.perf_counter()
            try:
                pictures = self._decode(np.stack(live))
            except BaseException as exc:  # hand every caller the error; keep serving
                for f in futures:
                    f.set_exception(exc)
                continue
            self.batches += 1
            self.decoded += len(live)
            self.wait_ms += sum(started - f.queued_at for f in futures) * 1000
            for f, pic in zip(futures, pictures, strict=True):
                f.set_result(pic)

    def __repr__(self) -> str:
        return (f"DecodeBatcher(max_batch={self.max_batch}, max_wait_ms={self.max_wait_ms}, "
                f"queued={self.queue_depth}, batches={self.batches}, decoded={self.decoded})")
