"""In-memory limits of one intake replica (no I/O here; the runtime holds one of each).

`StreamSlots`: live SSE connections per holder (an API key, a status link), capped.
`AuthFailureTally`: refusals without a known caller, counted per (source, window) so that the
audit trail gets one event per source and window instead of one per request.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

OTHER_SOURCES = "*"  # the bucket of sources past the per-window cap


class StreamSlots:
    """Counts open streams per holder; `take` refuses past the holder kind's cap."""

    def __init__(self, caps: dict[str, int]) -> None:
        self.caps = caps
        self._open: Counter[tuple[str, str]] = Counter()

    def take(self, kind: str, holder: str) -> bool:
        if self._open[kind, holder] >= self.caps[kind]:
            return False
        self._open[kind, holder] += 1
        return True

    def give_back(self, kind: str, holder: str) -> None:
        self._open[kind, holder] -= 1
        if self._open[kind, holder] <= 0:
            del self._open[kind, holder]

    def open(self, kind: str, holder: str) -> int:
        return self._open.get((kind, holder), 0)


@dataclass
class Tally:
    """The refusals of one source in one window."""

    source: str
    window_start: datetime
    count: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


class AuthFailureTally:
    """Refusals per (source, window). At most `max_sources` sources are counted apart in a
    window, the rest together under `OTHER_SOURCES`: the audit events a window yields are
    bounded whatever the traffic."""

    def __init__(
        self, window_seconds: int, max_sources: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.window, self.max_sources, self.clock = window_seconds, max_sources, clock
        self._windows: dict[int, dict[str, Tally]] = {}

    def note(self, source: str | None, reason: str) -> None:
        start = int(self.clock()) // self.window * self.window
        window = self._windows.setdefault(start, {})
        src = source or "unknown"
        if src not in window and len(window) >= self.max_sources:
            src = OTHER_SOURCES
        tally = window.get(src)
        if tally is None:
            tally = window[src] = Tally(src, datetime.fromtimestamp(start, UTC))
        tally.count += 1
        tally.reasons[reason] += 1

    def closed(self, *, everything: bool = False) -> list[Tally]:
        """Take the windows that have ended (`everything`: the open one too, at shutdown)."""
        now = self.clock()
        done = [s for s in self._windows if everything or s + self.window <= now]
        return [t for s in sorted(done) for t in self._windows.pop(s).values()]

    def put_back(self, tallies: list[Tally]) -> None:
        """Counts whose audit events could not be written: counted again, sent next time."""
        for t in tallies:
            window = self._windows.setdefault(int(t.window_start.timestamp()), {})
            kept = window.setdefault(t.source, Tally(t.source, t.window_start))
            kept.count += t.count
            kept.reasons.update(t.reasons)
