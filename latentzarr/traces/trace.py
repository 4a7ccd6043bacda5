"""The in-memory request trace that readers return and the simulator replays.

A :class:`Trace` is a set of parallel numpy arrays, one element per request, in request order (the order of the
file; readers do not re-sort). Replaying it is a loop over ``object_ids`` (dense ``int64`` codes ``0..n_objects-1``)
with ``sizes`` looked up by the same index.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from latentzarr.cache.costs import DEFAULT_IMAGE_SIZE

__all__ = ["DEFAULT_OBJECT_SIZE", "Trace"]

#: Object size in bytes given to every request of a trace that has no size column: a 1024x1024 PNG of a generated
#: image (design.md: 1.4-1.5 MB; the cache's ``DEFAULT_IMAGE_SIZE``). Latent sizes are the simulator's business.
DEFAULT_OBJECT_SIZE: int = DEFAULT_IMAGE_SIZE


@dataclass(eq=False)
class Trace:
    """A request trace as parallel arrays.

    Parameters
    ----------
    timestamps
        ``float64`` seconds, one per request (seconds since the trace start for synthetic traces, the file's own
        clock otherwise). Not necessarily sorted; see :attr:`is_sorted`.
    object_ids
        ``int64`` dense codes ``0..n_objects-1``: first-appearance order for traces read from text, birth order
        for synthetic traces.
    sizes
        ``int64`` object size in bytes per request. :data:`DEFAULT_OBJECT_SIZE` where the source had none.
    models
        Optional model id per request (a numpy array of ``str`` objects, or ``None``).
    id_labels
        Optional original ids: ``id_labels[code]`` is the string id of code ``code`` (hex photo id, URL, ...).
    bad_lines
        Number of malformed input lines skipped while reading (0 for synthetic traces).
    bad_examples
        The first few malformed lines as ``(line number, text)``, 1-based line numbers.
    n_lines
        Number of non-empty input lines read (good plus bad); equals ``len(self)`` plus ``bad_lines``.
    meta
        Free-form provenance (format, generator parameters, path).
    """

    timestamps: np.ndarray
    object_ids: np.ndarray
    sizes: np.ndarray
    models: np.ndarray | None = None
    id_labels: np.ndarray | None = None
    bad_lines: int = 0
    bad_examples: list[tuple[int, str]] = field(default_factory=list)
    n_lines: int = 0
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.timestamps = np.ascontiguousarray(self.timestamps, dtype=np.float64)
        self.object_ids = np.ascontiguousarray(self.object_ids, dtype=np.int64)
        self.sizes = np.ascontiguousarray(self.sizes, dtype=np.int64)
        n = len(self.timestamps)
        for name in ("object_ids", "sizes", "models"):
            arr = getattr(self, name)
            if arr is not None and len(arr) != n:
                raise ValueError(f"Expected {name} of length {n} (one per request). Got length {len(arr)} instead.")
        if not self.n_lines:
            self.n_lines = n + self.bad_lines

    def __len__(self) -> int:
        return len(self.timestamps)

    def __repr__(self) -> str:
        return (
            f"<Trace {len(self)} requests, {self.n_objects} objects, "
            f"{self.duration / 86400:.1f} days, {self.bad_lines} bad lines>"
        )

    @property
    def n_objects(self) -> int:
        """Number of distinct objects (``max(object_ids) + 1``; codes are dense)."""
        return int(self.object_ids.max()) + 1 if len(self) else 0

    @property
    def duration(self) -> float:
        """Seconds between the first and the last request."""
        return float(self.timestamps.max() - self.timestamps.min()) if len(self) else 0.0

    @property
    def is_sorted(self) -> bool:
        """True when timestamps never decrease."""
        return bool(np.all(np.diff(self.timestamps) >= 0))

    @property
    def bad_fraction(self) -> float:
        """Malformed lines over all non-empty lines read (0.0 for an empty input)."""
        return self.bad_lines / self.n_lines if self.n_lines else 0.0
