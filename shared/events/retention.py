"""Retention (issue 7): the nightly jobs on `lethe.jobs.erase.v1`, and the audit records of
policy changes and of manual cleanup runs. Progress of a retention job uses the erasure
events (`ErasurePlanned`, `BatchErased` with phase `retention`, `JobCompleted`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from shared.events.envelope import Payload, event


@event
class RetentionRequested(Payload):
    """Delete (or mask, per the data map) the org's rows of `category` older than `cutoff`."""

    event_type = "RetentionRequested"
    category: str
    days: int
    cutoff: datetime
    period: str | None = None  # the scheduled period this run belongs to
    source: Literal["schedule", "manual"] = "schedule"


@event
class RetentionPolicyChanged(Payload):
    event_type = "RetentionPolicyChanged"
    old: dict[str, int]
    new: dict[str, int]


@event
class RetentionCleanupRan(Payload):
    """A run of `lethe cleanup` (the same code as the nightly jobs), with its stats."""

    event_type = "RetentionCleanupRan"
    category: str
    days: int
    cutoff: datetime
    dry_run: bool
    rows: dict[str, int]
    objects_deleted: int
    errors: list[dict[str, Any]] = []
