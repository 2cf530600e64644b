"""`lethe.progress.v1`: what workers report about a job; intake and dashboards read it."""

from __future__ import annotations

from typing import Any

from shared.events.envelope import Payload, event


@event
class ErasurePlanned(Payload):
    event_type = "ErasurePlanned"
    total: int
    per_table: dict[str, int]


@event
class BatchErased(Payload):
    event_type = "BatchErased"
    table: str
    rows: int
    objects: int
    done: int
    total: int
    rows_per_second: float
    eta_seconds: float | None


@event
class JobCompleted(Payload):
    event_type = "JobCompleted"
    done: int
    total: int
    verification: dict[str, Any]
    needs_review: list[dict[str, Any]] = []


@event
class JobFailed(Payload):
    event_type = "JobFailed"
    reason: str


@event
class DuplicateIgnored(Payload):
    """A redelivered command whose effect already happened (recorded, never re-applied)."""

    event_type = "DuplicateIgnored"
    original_type: str
