"""How often a job's progress is reported, pure: a progress event (and its audit copy, two
acknowledged Kafka publishes) after every 1,000-row batch costs more than the batch's own
commit, so batches are summed and reported at most once per interval per eraser process.
A job's first batch and the batch that completes it always report, so the first and the
final counts are there at once and exact (`done` is the job's committed counter)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Progress:
    """Batches of one job this process committed but has not reported yet."""

    reported_at: float | None = None  # monotonic time of the last report; None: never
    rows: int = 0
    objects: int = 0

    def add(
        self, rows: int, objects: int, done: int, total: int, now: float, interval: float
    ) -> tuple[int, int] | None:
        """Count a committed batch in; returns (rows, objects) to report now, or None."""
        self.rows += rows
        self.objects += objects
        due = (
            interval <= 0
            or self.reported_at is None
            or done >= total
            or now - self.reported_at >= interval
        )
        if not due:
            return None
        out = (self.rows, self.objects)
        self.rows = self.objects = 0
        self.reported_at = now
        return out
