"""Injected object-store latency: a wait drawn from a configurable distribution before every object read.

A local folder answers a read in well under a millisecond; an object store such as S3 takes 100-200 ms per GET
(design.md). :class:`LatencyInjector` draws one latency (ms) per read from a seeded generator and sleeps that long in
the reading thread, so every replayed configuration pays the same store latency distribution.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

__all__ = ["DISTRIBUTIONS", "LatencyInjector", "parse_latency"]

T = TypeVar("T")

DISTRIBUTIONS = ("uniform", "constant", "lognormal", "none")
"""Supported latency distributions: ``uniform:LO:HI`` ms, ``constant:MS``, ``lognormal:MEDIAN:SIGMA`` (ms, log-space
sigma), ``none`` (no wait)."""


@dataclass
class LatencyInjector:
    """Sleep a drawn latency (ms) before each object read; thread-safe, seeded.

    Parameters
    ----------
    distribution
        One of :data:`DISTRIBUTIONS`.
    params
        Parameters of the distribution in ms: (lo, hi) for uniform, (ms,) for constant, (median, sigma) for
        lognormal, () for none.
    seed
        Seed of the generator; configurations replayed with the same seed draw the same sequence of latencies.

    Attributes
    ----------
    reads, injected_ms
        Reads wrapped so far and the total latency (ms) injected into them.
    """

    distribution: str = "uniform"
    params: tuple[float, ...] = (100.0, 200.0)
    seed: int = 0
    reads: int = field(default=0, init=False)
    injected_ms: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        want = {"uniform": 2, "constant": 1, "lognormal": 2, "none": 0}
        if self.distribution not in want:
            raise ValueError(f"Expected a latency distribution in {DISTRIBUTIONS}. Got {self.distribution!r} instead.")
        self.params = tuple(float(p) for p in self.params)
        if len(self.params) != want[self.distribution] or any(not p >= 0 for p in self.params):
            raise ValueError(f"Expected {want[self.distribution]} parameter(s) >= 0 (ms) for {self.distribution!r}. "
                             f"Got {self.params!r} instead.")
        if self.distribution == "uniform" and self.params[0] > self.params[1]:
            raise ValueError(f"Expected uniform latency lo <= hi (ms). Got {self.params!r} instead.")
        self._rng = np.random.default_rng(self.seed)
        self._lock = threading.Lock()

    def fresh(self, seed: int | None = None) -> LatencyInjector:
        """A new injector with the same distribution and ``seed`` (default: this one's); counters at zero."""
        return LatencyInjector(self.distribution, self.params, self.seed if seed is None else seed)

    def draw(self) -> float:
        """One latency in ms (counted as one read)."""
        with self._lock:
            d, p = self.distribution, self.params
            if d == "uniform":
                ms = float(self._rng.uniform(p[0], p[1]))
            elif d == "constant":
                ms = p[0]
            elif d == "lognormal":
                ms = float(p[0] * np.exp(p[1] * self._rng.standard_normal()))
            else:
                ms = 0.0
            self.reads += 1
            self.injected_ms += ms
            return ms

    def wait(self) -> float:
        """Sleep one drawn latency in the calling thread; returns it (ms)."""
        ms = self.draw()
        if ms > 0:
            time.sleep(ms / 1000)
        return ms

    def wrap(self, read: Callable[..., T]) -> Callable[..., T]:
        """``read`` preceded by :meth:`wait` on every call (the latency-injecting store wrapper)."""
        def delayed(*args: Any, **kwargs: Any) -> T:
            self.wait()
            return read(*args, **kwargs)

        return delayed

    @property
    def spec(self) -> str:
        """The ``"name:p1:p2"`` text :func:`parse_latency` reads back."""
        return ":".join([self.distribution, *(f"{p:g}" for p in self.params)])


def parse_latency(text: str, seed: int = 0) -> LatencyInjector:
    """Parse ``"uniform:100:200"``, ``"constant:150"``, ``"lognormal:140:0.3"`` or ``"none"`` (ms)."""
    name, *rest = str(text).strip().split(":")
    try:
        params = tuple(float(x) for x in rest)
    except ValueError as exc:
        raise ValueError(f"Expected a latency like 'uniform:100:200' (ms). Got {text!r} instead.") from exc
    return LatencyInjector(name.lower(), params, seed)
