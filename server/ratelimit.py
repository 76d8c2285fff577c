"""A small in-memory sliding-window rate limiter with bounded memory.

Each key keeps at most ``limit`` timestamps (older ones cannot matter), expired
keys are pruned as the table grows, and past ``max_keys`` the key seen least
recently is forgotten. State is per process: with several workers each one
counts on its own, which only makes the limit a few times looser.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable


class SlidingWindowLimiter:
    def __init__(
        self,
        limit: int,
        window_seconds: float,
        *,
        max_keys: int = 10_000,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or window_seconds <= 0 or max_keys < 1:
            raise ValueError("limit, window and max_keys must be positive")
        self.limit = limit
        self.window = window_seconds
        self.max_keys = max_keys
        self._now = now
        #: key -> recent hits, oldest first; the dict is ordered by last use.
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._hits)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        hits = self._hits.get(key)
        if hits is None:
            return None
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if not hits:
            del self._hits[key]
            return None
        return hits

    def blocked(self, key: str) -> bool:
        """True when ``key`` has used up its window (does not count a hit)."""
        hits = self._recent(key, self._now())
        return hits is not None and len(hits) >= self.limit

    def hit(self, key: str) -> None:
        """Count one event for ``key``."""
        now = self._now()
        hits = self._recent(key, now)
        if hits is None:
            if len(self._hits) >= self.max_keys:
                self._prune(now)
            while len(self._hits) >= self.max_keys:
                self._hits.popitem(last=False)
            hits = self._hits[key] = deque(maxlen=self.limit)
        hits.append(now)
        self._hits.move_to_end(key)

    def attempt(self, key: str) -> bool:
        """Count a hit unless the key is blocked; True when it was allowed."""
        if self.blocked(key):
            return False
        self.hit(key)
        return True

    def _prune(self, now: float) -> None:
        for key in list(self._hits):
            self._recent(key, now)
