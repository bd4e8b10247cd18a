"""A per-worker cache of answers: each entry lives at most ``ttl_ms``, and at most ``entries`` are kept.

>>> now = [0.0]
>>> cache = TtlCache(ttl_ms=250, entries=2, clock=lambda: now[0])
>>> cache.put("a", 1); cache.get("a")
1
>>> now[0] = 0.251; cache.get("a") is None  # older than the ttl: gone
True
>>> cache.put("a", 1); cache.put("b", 2); cache.put("c", 3); cache.get("a") is None  # the oldest made room
True
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class TtlCache:
    def __init__(self, ttl_ms: int, entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_ms / 1000
        self.entries = entries
        self.clock = clock
        self.hits = 0
        self.misses = 0
        self._data: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()

    def get(self, key: Hashable) -> Any:
        """The value stored under ``key`` less than ``ttl_ms`` ago, else None."""
        found = self._data.get(key)
        if found is not None:
            stored_at, value = found
            if self.clock() - stored_at < self.ttl_s:
                self.hits += 1
                return value
            del self._data[key]
        self.misses += 1
        return None

    def put(self, key: Hashable, value: Any) -> None:
        if self.ttl_s <= 0:
            return
        self._data[key] = (self.clock(), value)
        self._data.move_to_end(key)
        while len(self._data) > self.entries:
            self._data.popitem(last=False)

    def drop(self, matches: Callable[[Hashable], bool]) -> int:
        """Remove every entry whose key ``matches``; how many."""
        gone = [key for key in self._data if matches(key)]
        for key in gone:
            del self._data[key]
        return len(gone)

    def held_keys(self) -> list[Hashable]:
        return list(self._data)

    def __len__(self) -> int:
        return len(self._data)
