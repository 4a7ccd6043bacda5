"""DecodeBatcher: concurrent requests of one shape share forward passes; shapes never mix; errors propagate."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from latentzarr.cluster.batcher import DecodeBatcher


class Recorder:
    """A fake decoder that records batch sizes and returns a picture derived from each latent."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[tuple[int, tuple[int, ...]]] = []
        self.gate = gate

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.gate is not None:
            self.gate.wait(5)
        self.batches.append((len(x), x.shape[1:]))
        return (x.sum(axis=(1, 2, 3))[:, None, None, None] + np.zeros((1, 2, 2, 3))).astype(np.uint8)


def test_concurrent_requests_are_batched_and_answered_correctly():
    gate = threading.Event()
    rec = Recorder(gate)
    b = DecodeBatcher(rec, max_batch=4, max_wait_ms=200)
    lats = [np.full((2, 3, 3), i, dtype=np.float32) for i in range(9)]
    futs = [b.submit(lat) for lat in lats]
    gate.set()
    for i, f in enumerate(futs):
        assert f.result(5)[0, 0, 0] == np.uint8(i * 18)
    assert sum(n for n, _ in rec.batches) == 9
    assert max(n for n, _ in rec.batches) == 4  # 9 queued requests cannot fit in fewer than 3 passes of 4
    assert b.batches == len(rec.batches) and b.decoded == 9
    b.close()


def test_shapes_and_dtypes_never_mix():
    rec = Recorder()
    b = DecodeBatcher(rec, max_batch=8, max_wait_ms=50)
    lats = [np.zeros((2, 3, 3), np.float32), np.zeros((2, 4, 4), np.float32), np.zeros((2, 3, 3), np.float16)] * 3
    with ThreadPoolExecutor(9) as pool:
        out = list(pool.map(b.decode, lats))
    assert len(out) == 9
    for n, shape in rec.batches:
        assert n >= 1 and shape in ((2, 3, 3), (2, 4, 4))
    b.close()


def test_decode_error_reaches_every_caller_and_batcher_keeps_serving():
    calls = {"n": 0}

    def flaky(x):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("GPU fell over")
        return np.zeros((len(x), 1, 1, 3), np.uint8)

    b = DecodeBatcher(flaky, max_batch=2, max_wait_ms=0)
    with pytest.raises(RuntimeError, match="GPU fell over"):
        b.decode(np.zeros((1, 1, 1)))
    assert b.decode(np.zeros((1, 1, 1))).shape == (1, 1, 3)
    b.close()
    with pytest.raises(RuntimeError, match="closed"):
        b.submit(np.zeros((1, 1, 1)))


def test_parameters_are_validated():
    with pytest.raises(ValueError, match="max_batch"):
        DecodeBatcher(lambda x: x, max_batch=0)
    with pytest.raises(ValueError, match="max_wait_ms"):
        DecodeBatcher(lambda x: x, max_wait_ms=-1)
