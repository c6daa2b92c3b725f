"""An in-memory cache with per-entry expiry for the API gateway."""

import time
from typing import Callable


class TTLCache:
    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, object]] = {}

    def set(self, key: str, value: object) -> None:
        self._entries[key] = (self._clock() + self.ttl, value)

    def get(self, key: str, default: object = None) -> object:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock():
            return default
        return entry[1]

    def prune(self) -> int:
        """Drop expired entries; return how many were dropped."""
        now = self._clock()
        dropped = 0
        for key, (expires, _) in self._entries.items():
            if expires <= now:
                del self._entries[key]
                dropped += 1
        return dropped

    def __len__(self) -> int:
        return len(self._entries)
