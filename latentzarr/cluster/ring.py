"""Owner of an image id among named workers: rendezvous (highest-random-weight) hashing.

Every (worker name, id) pair gets a pseudo-random 64-bit score from BLAKE2b; the owner is the worker with the
highest score, and the ranking gives the fallback order. Properties, independent of process and platform:

* deterministic: the same names and id give the same owner everywhere (no Python ``hash`` randomisation);
* names, not addresses: a worker restarted under the same name owns the same ids;
* minimal movement: adding one worker to N moves only the ids it now wins (about 1/(N+1)); removing one moves
  only the ids it owned.

Lookup costs one hash per worker (about 1 us each), fine for clusters of up to a few hundred workers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = ["HashRing"]


def _score(name: str, key: str) -> int:
    digest = hashlib.blake2b(key.encode(), digest_size=8, key=name.encode()[:64]).digest()
    return int.from_bytes(digest, "little")


class HashRing:
    """Rendezvous hashing over worker names.

    Parameters
    ----------
    names
        Worker names (distinct, non-empty strings).
    """

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._names: tuple[str, ...] = ()
        for name in names:
            self.add(name)

    @property
    def names(self) -> tuple[str, ...]:
        """Worker names, in the order they were added."""
        return self._names

    def add(self, name: str) -> None:
        """Add a worker name (no-op if present)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"Expected a non-empty worker name. Got {name!r} instead.")
        if name not in self._names:
            self._names = (*self._names, name)

    def remove(self, name: str) -> None:
        """Remove a worker name (no-op if absent)."""
        self._names = tuple(n for n in self._names if n != name)

    def owner(self, key: str) -> str:
        """The worker name that owns ``key``; ``LookupError`` when the ring is empty."""
        if not self._names:
            raise LookupError("Expected at least one worker in the hash ring. Got none: is the cluster up?")
        return max(self._names, key=lambda n: _score(n, key))

    def ranked(self, key: str) -> list[str]:
        """All worker names, best owner first: the fallback order for ``key``."""
        return sorted(self._names, key=lambda n: _score(n, key), reverse=True)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __repr__(self) -> str:
        return f"HashRing({list(self._names)!r})"
