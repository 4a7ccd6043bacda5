"""A byte-bounded LRU with a thin tail segment: one tier of the dual-format cache.

Objects sit in recency order. The least recently used ones, up to ``tail`` of the tier's capacity in bytes,
form the *tail* segment; the rest form the *main* segment. A hit in the tail is a request that a tier smaller
by ``tail * capacity`` bytes would have missed, so tail hits per byte of tail measure the marginal value of
capacity. Hits in either segment move the object to the most recently used end of the main segment; overflow of
the main segment slides into the tail; overflow of the whole tier evicts from the tail's LRU end.

Both segments are :class:`collections.OrderedDict` (key -> size in bytes) in LRU -> MRU order, so every step is
O(1). The dictionaries are read and written directly by the batch replay loop of
:class:`~latentzarr.cache.dual.DualFormatCache` (same package), which must keep the invariants below.

Invariants (bytes): ``main_bytes == sum(main.values())``, ``tail_bytes == sum(tail.values())``,
``main_bytes + tail_bytes <= capacity`` after every public call, ``main_bytes <= main_capacity`` whenever the
tail is non-empty, and no key is in both segments.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

__all__ = ["MAIN_HIT", "NOT_FOUND", "TAIL_HIT", "SegmentedLRU"]

NOT_FOUND = 0
"""Result of :meth:`SegmentedLRU.touch` for a key that is not in the tier."""
MAIN_HIT = 1
"""Result of :meth:`SegmentedLRU.touch` for a key found in the main segment."""
TAIL_HIT = 2
"""Result of :meth:`SegmentedLRU.touch` for a key found in the tail segment."""


class SegmentedLRU:
    """A byte-bounded LRU whose least recently used ``tail`` fraction of capacity is tracked separately.

    Parameters
    ----------
    capacity
        Capacity in bytes (>= 0).
    tail
        Fraction of ``capacity`` that forms the tail segment, in [0, 1).
    tail_min
        Smallest tail segment in bytes (>= 0; at most the whole tier). A tier whose tail is smaller than the step
        by which its owner resizes it would under-report what that step costs.
    """

    __slots__ = (
        "capacity", "main", "main_bytes", "main_capacity", "tail", "tail_bytes", "tail_fraction", "tail_min",
    )

    def __init__(self, capacity: int, tail: float = 0.1, *, tail_min: int = 0) -> None:
        self.main: OrderedDict[Hashable, int] = OrderedDict()
        self.tail: OrderedDict[Hashable, int] = OrderedDict()
        self.main_bytes = 0
        self.tail_bytes = 0
        self.tail_fraction = tail
        self.tail_min = max(0, int(tail_min))
        self.capacity = 0
        self.main_capacity = 0
        self.set_capacity(capacity)

    def __len__(self) -> int:
        return len(self.main) + len(self.tail)

    def __contains__(self, key: object) -> bool:
        return key in self.main or key in self.tail

    @property
    def used_bytes(self) -> int:
        """Bytes held by both segments."""
        return self.main_bytes + self.tail_bytes

    @property
    def tail_capacity(self) -> int:
        """Bytes reserved for the tail segment (``capacity - main_capacity``)."""
        return self.capacity - self.main_capacity

    def size_of(self, key: Hashable) -> int:
        """Size in bytes of ``key``; raises ``KeyError`` if absent."""
        size = self.main.get(key)
        return self.tail[key] if size is None else size

    def touch(self, key: Hashable) -> int:
        """Record a hit on ``key``: move it to the MRU end and return NOT_FOUND, MAIN_HIT or TAIL_HIT."""
        main = self.main
        if key in main:
            main.move_to_end(key)
            return MAIN_HIT
        tail = self.tail
        if key in tail:
            size = tail.pop(key)
            self.tail_bytes -= size
            main[key] = size
            self.main_bytes += size
            self._slide()
            return TAIL_HIT
        return NOT_FOUND

    def insert(self, key: Hashable, size: int) -> list[Hashable]:
        """Insert ``key`` at the MRU end (replacing an old entry) and return the keys evicted to make room.

        The caller checks ``size <= capacity`` first; a larger object evicts everything and is evicted itself.
        """
        if key in self:
            self.pop(key)
        self.main[key] = size
        self.main_bytes += size
        self._slide()
        return self._evict_overflow()

    def pop(self, key: Hashable) -> int:
        """Remove ``key`` and return its size; raises ``KeyError`` if absent."""
        size = self.main.pop(key, None)
        if size is not None:
            self.main_bytes -= size
            # the main segment shrank: the tail may now be larger than its share, which is allowed
            return size
        size = self.tail.pop(key)
        self.tail_bytes -= size
        return size

    def set_capacity(self, capacity: int) -> list[Hashable]:
        """Change the capacity in bytes; return the keys evicted to fit."""
        self.capacity = int(capacity)
        tail = max(int(self.capacity * self.tail_fraction), self.tail_min)
        self.main_capacity = max(0, self.capacity - tail)
        self._slide()
        return self._evict_overflow()

    def clear(self) -> None:
        """Drop every entry."""
        self.main.clear()
        self.tail.clear()
        self.main_bytes = self.tail_bytes = 0

    def _slide(self) -> None:
        # move LRU entries of the main segment into the tail until main fits its share
        main, tail = self.main, self.tail
        while self.main_bytes > self.main_capacity and main:
            k, s = main.popitem(last=False)
            self.main_bytes -= s
            tail[k] = s
            self.tail_bytes += s

    def _evict_overflow(self) -> list[Hashable]:
        evicted: list[Hashable] = []
        main, tail = self.main, self.tail
        while self.main_bytes + self.tail_bytes > self.capacity:
            if tail:
                k, s = tail.popitem(last=False)
                self.tail_bytes -= s
            else:
                k, s = main.popitem(last=False)
                self.main_bytes -= s
            evicted.append(k)
        return evicted
