"""Retention's decisions, pure: what a run counts, what it reports, which events and notices
say so. The run itself (services/eraser/service/cleaning.py and retention.py) does the I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.eraser.domain import ACTOR
from shared.events import Envelope, Payload, make_event
from shared.events.progress import BatchErased, JobCompleted
from shared.notices import job_notice

ANONYMOUS = "anonymous"
ROWS_KEPT_REASON = (
    "past the policy but still referenced by rows that stay, through "
    "links retention cannot follow (a `referenced_by` relation of the table, or a "
    "foreign key the data map does not declare): kept, never deleted under "
    "another row; declare the link's kind to let them go"
)


class PublicModeOff(ValueError):
    pass


@dataclass
class Stats:
    rows: dict[str, int] = field(default_factory=dict)
    objects_deleted: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    planned: dict[str, int] = field(default_factory=dict)
    remaining: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    done: int = 0  # rows of the category's own tables (children counted in `rows`)
    detached: dict[str, int] = field(default_factory=dict)  # links cut in rows that stay
    kept: dict[str, int] = field(default_factory=dict)  # past the policy, still referenced
    cancelled: bool = False

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "objects_deleted": self.objects_deleted,
            "errors": self.errors,
            "planned": self.planned,
            "remaining": self.remaining,
            "dry_run": self.dry_run,
            "detached": self.detached,
            "kept": self.kept,
            "cancelled": self.cancelled,
        }


def add_counts(into: dict[str, int], counts: dict[str, int]) -> None:
    for name, n in counts.items():
        into[name] = into.get(name, 0) + n


def event(env: Envelope, payload: Payload) -> Envelope:
    """A retention job has no subject: its events carry the job and the org only."""
    return make_event(payload, actor=ACTOR, job_id=env.job_id, org_id=env.org_id)


def batch_event(table: str, rows: int, objs: int, done: int, total: int) -> BatchErased:
    return BatchErased(
        table=table,
        rows=rows,
        objects=objs,
        done=done,
        total=total,
        rows_per_second=0.0,
        eta_seconds=None,
        phase="retention",
    )


def objects_error(table: str, rows: int, failed: int) -> dict[str, Any]:
    return {
        "kind": "objects",
        "table": table,
        "rows": rows,
        "objects": failed,
        "error": "objects not deleted; their rows stay until next run",
    }


def completed(stats: Stats, category: str, cutoff: datetime) -> JobCompleted:
    """The run's report: errors, rows left (when nothing failed) and rows kept for review."""
    review = list(stats.errors)
    if stats.remaining and not review:
        review.append({"kind": "rows_remaining", "tables": stats.remaining})
    if stats.kept:
        review.append({"kind": "rows_kept", "tables": stats.kept, "reason": ROWS_KEPT_REASON})
    verification = {
        "phase": "retention",
        "category": category,
        "cutoff": cutoff.isoformat(),
        "rows_remaining": stats.remaining,
        "rows": stats.rows,
        "links_detached": stats.detached,
        "rows_kept": stats.kept,
        "objects_deleted": stats.objects_deleted,
        "ok": not stats.remaining and not stats.errors,
    }
    return JobCompleted(
        done=stats.done,
        total=sum(stats.planned.values()),
        verification=verification,
        needs_review=review,
    )


def failure_notice(env: Envelope, reason: str) -> Envelope | None:
    """A retention job has no requester: its failure is mailed to the org's owner contacts."""
    if env.job_id is None:
        return None
    return job_notice(
        "job_failed",
        actor=ACTOR,
        job_id=env.job_id,
        org_id=env.org_id,
        subject_hash=None,
        to=None,
        context={"job_type": "retention", "reason": reason},
        audience="owners",
        once="job_failed",
    )
