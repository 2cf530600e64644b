"""How often a job's progress is reported, pure: a progress event (and its audit copy, two
acknowledged Kafka publishes) after every 1,000-row batch costs more than the batch's own
commit, so batches are summed and reported at most once per interval per eraser process.
A job's first batch and the batch that completes it always report, so the first and the
final counts are there at once and exact (`done` is the job's committed counter). Sums never
mix tables: a batch of another table first reports what is pending of the one before, so
the rows per table (`lethe_rows_erased_total{table}`) stay exact."""

from __future__ import annotations

from dataclasses import dataclass

# (table, rows, objects) of one progress event
Report = tuple[str, int, int]


@dataclass
class Progress:
    """Batches of one job this process committed but has not reported yet."""

    reported_at: float | None = None  # monotonic time of the last report; None: never
    table: str = ""
    rows: int = 0
    objects: int = 0

    def add(
        self,
        table: str,
        rows: int,
        objects: int,
        *,
        done: int,
        total: int,
        now: float,
        interval: float,
    ) -> list[Report]:
        """Count a committed batch in; returns what to report now (oldest first)."""
        out: list[Report] = []
        if self.table != table and (self.rows or self.objects):
            out.append(self._take())
        self.table = table
        self.rows += rows
        self.objects += objects
        if (
            interval <= 0
            or self.reported_at is None
            or done >= total
            or now - self.reported_at >= interval
        ):
            out.append(self._take())
            self.reported_at = now
        return out

    def _take(self) -> Report:
        report = (self.table, self.rows, self.objects)
        self.rows = self.objects = 0
        return report
