"""Who may do what: the roles' ranks and the per-key submission rate (no HTTP here: the
API-key dependencies are in `services.intake.http.deps`)."""

from __future__ import annotations

import time
from collections.abc import Callable

RANK = {"viewer": 0, "service": 1, "admin": 1, "owner": 2}


class RateLimiter:
    """Token bucket per API key (per intake replica: N replicas allow N times the rate)."""

    def __init__(self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = per_minute / 60.0, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """0 when allowed; else the seconds to wait."""
        now = self.clock()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate if self.rate > 0 else 60.0
