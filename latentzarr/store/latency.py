"""Object-store GET latency model: first-byte latency + bytes / throughput, seeded jitter, per GET.

A local folder or a moto S3 stand-in answers a GET in about a millisecond; S3 in one region takes tens to a couple
of hundred ms. :class:`GetLatencyModel` adds, to every object GET a worker makes (a latent chunk or a PNG object),

    wait_ms = first_byte_ms + nbytes / throughput

where ``first_byte_ms`` is drawn per GET from a seeded distribution (``lognormal:MEDIAN:SIGMA`` by default;
``uniform:LO:HI``, ``constant:MS`` and ``none`` also work) and ``throughput`` is the per-connection transfer rate in
MB/s (10**6 bytes per s; 0 = infinite).

Defaults and their sources (see docs/replay.md):

* first byte: log-normal, median 90 ms, sigma 0.25 (P1..P99 = 50..161 ms). AWS's S3 performance whitepaper
  ("Best Practices Design Patterns: Optimizing Amazon S3 Performance", *Timeouts and retries*) gives median
  latencies "in the range of tens of milliseconds" for requests under 512 KB and advises retrying the slowest
  1-5%; the LatentBox paper measured 79-146 ms per S3 GET of a 1.4 MB PNG in one region, and its Decode-All row
  (137.3 ms mean = latent GET + 31 ms decode + ~10 ms network) implies ~96 ms per 0.29 MB latent GET.
* throughput: 90 MB/s per connection, the single-stream S3 GET rate AWS quotes (85-90 MB/s per request) in its
  guidance to parallelise large transfers; a 1.4 MB PNG adds 15.6 ms, a 0.29 MB latent 3.2 ms.

The model pickles as its settings. Each process (a Dask worker) draws its own stream, seeded by
``(seed, stream)``; the worker plugin sets ``stream`` to the worker's name, so every configuration of a replay that
uses the same seed and the same workers draws the same first-byte latencies in the same order on each worker.
"""

from __future__ import annotations

import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["DEFAULT_GET_LATENCY", "DISTRIBUTIONS", "GetLatencyModel", "parse_get_latency"]

DISTRIBUTIONS = ("lognormal", "uniform", "constant", "none")
"""First-byte distributions: ``lognormal:MEDIAN:SIGMA`` (ms, log-space sigma), ``uniform:LO:HI`` (ms),
``constant:MS``, ``none`` (0 ms)."""
DEFAULT_GET_LATENCY = "lognormal:90:0.25@90"
"""Default model text: first byte log-normal (median 90 ms, sigma 0.25), 90 MB/s per GET."""
_NPARAMS = {"lognormal": 2, "uniform": 2, "constant": 1, "none": 0}


@dataclass
class GetLatencyModel:
    """Latency (ms) added to each object GET; thread-safe, seeded.

    Parameters
    ----------
    distribution
        First-byte distribution, one of :data:`DISTRIBUTIONS`.
    params
        Its parameters in ms (log-space sigma for lognormal).
    throughput_mb_s
        Transfer rate per GET in MB/s (10**6 bytes/s); 0: transfer time is 0.
    seed
        Seed of the first-byte draws.
    stream
        Name of this stream (a worker's name); streams with the same seed and name draw the same sequence.

    Attributes
    ----------
    gets, waited_ms
        GETs seen by this copy and the total latency (ms) they were given.
    """

    distribution: str = "lognormal"
    params: tuple[float, ...] = (90.0, 0.25)
    throughput_mb_s: float = 90.0
    seed: int = 0
    stream: str = ""
    gets: int = field(default=0, init=False, compare=False)
    waited_ms: float = field(default=0.0, init=False, compare=False)

    def __post_init__(self) -> None:
        if self.distribution not in _NPARAMS:
            raise ValueError(f"Expected a first-byte distribution in {DISTRIBUTIONS}. Got {self.distribution!r} "
                             "instead.")
        self.params = tuple(float(p) for p in self.params)
        want = _NPARAMS[self.distribution]
        if len(self.params) != want or any(not p >= 0 for p in self.params):
            raise ValueError(f"Expected {want} parameter(s) >= 0 (ms) for {self.distribution!r}. Got "
                             f"{self.params!r} instead.")
        if self.distribution == "uniform" and self.params[0] > self.params[1]:
            raise ValueError(f"Expected uniform latency lo <= hi (ms). Got {self.params!r} instead.")
        if not self.throughput_mb_s >= 0:
            raise ValueError(f"Expected throughput_mb_s >= 0 (MB/s). Got {self.throughput_mb_s!r} instead.")
        self._start()

    def _start(self) -> None:
        self._rng = np.random.default_rng([int(self.seed), zlib.crc32(str(self.stream).encode())])
        self._lock = threading.Lock()
        self.gets, self.waited_ms = 0, 0.0

    def __getstate__(self) -> dict[str, Any]:
        return {"distribution": self.distribution, "params": self.params, "throughput_mb_s": self.throughput_mb_s,
                "seed": self.seed, "stream": self.stream}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._start()

    def with_stream(self, stream: str, seed: int | None = None) -> GetLatencyModel:
        """A fresh copy (counters at zero) drawing stream ``stream`` (and ``seed``, default this one's)."""
        return GetLatencyModel(self.distribution, self.params, self.throughput_mb_s,
                               self.seed if seed is None else seed, str(stream))

    def first_byte_ms(self) -> float:
        """One first-byte draw (ms)."""
        d, p = self.distribution, self.params
        if d == "lognormal":
            return float(p[0] * np.exp(p[1] * self._rng.standard_normal()))
        if d == "uniform":
            return float(self._rng.uniform(p[0], p[1]))
        return p[0] if d == "constant" else 0.0

    def transfer_ms(self, nbytes: int) -> float:
        """Transfer time (ms) of ``nbytes`` bytes at :attr:`throughput_mb_s`."""
        return nbytes / (self.throughput_mb_s * 1000) if self.throughput_mb_s > 0 else 0.0

    def draw(self, nbytes: int) -> float:
        """Latency (ms) of one GET of ``nbytes`` bytes (counted)."""
        with self._lock:
            ms = self.first_byte_ms() + self.transfer_ms(nbytes)
            self.gets += 1
            self.waited_ms += ms
            return ms

    def wait(self, nbytes: int, *, already_ms: float = 0.0) -> float:
        """Sleep the model's latency for one GET of ``nbytes`` bytes, less ``already_ms`` the real GET took.

        Returns the modelled latency (ms); the GET then costs max(modelled, real) in all.
        """
        ms = self.draw(nbytes)
        if ms > already_ms:
            time.sleep((ms - already_ms) / 1000)
        return ms

    def mean_ms(self, nbytes: int) -> float:
        """Expected latency (ms) of a GET of ``nbytes`` bytes."""
        d, p = self.distribution, self.params
        first = {"lognormal": lambda: p[0] * np.exp(p[1] ** 2 / 2), "uniform": lambda: (p[0] + p[1]) / 2,
                 "constant": lambda: p[0], "none": lambda: 0.0}[d]()
        return float(first) + self.transfer_ms(nbytes)

    @property
    def spec(self) -> str:
        """The text :func:`parse_get_latency` reads back."""
        return ":".join([self.distribution, *(f"{p:g}" for p in self.params)]) + f"@{self.throughput_mb_s:g}"

    def describe(self) -> dict[str, Any]:
        """JSON-ready parameters (for reports)."""
        return {"spec": self.spec, "first_byte": self.distribution, "first_byte_params_ms": list(self.params),
                "throughput_mb_s": self.throughput_mb_s, "seed": self.seed,
                "formula": "first_byte_ms + bytes / (throughput_mb_s * 1000), per GET, seeded per worker"}


def parse_get_latency(text: str, seed: int = 0) -> GetLatencyModel:
    """Parse ``"lognormal:90:0.25@90"`` (first byte ``@`` MB/s), ``"uniform:100:200"``, ``"constant:150"``,
    ``"none"``; without ``@`` the throughput is 0 (first byte only)."""
    body, _, rate = str(text).strip().partition("@")
    name, *rest = body.split(":")
    try:
        params = tuple(float(x) for x in rest)
        throughput = float(rate) if rate else 0.0
    except ValueError as exc:
        raise ValueError(f"Expected a GET latency like 'lognormal:90:0.25@90' (ms, MB/s). Got {text!r} instead.") \
            from exc
    return GetLatencyModel(name.lower(), params, throughput, seed)
