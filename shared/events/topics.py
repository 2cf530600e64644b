"""Every Kafka topic Lethe uses, with the settings `lethe topics apply` creates them with."""

from __future__ import annotations

from dataclasses import dataclass, field

REQUESTS = "lethe.requests.v1"
REQUESTS_REJECTED = "lethe.requests.rejected.v1"
JOBS_ERASE = "lethe.jobs.erase.v1"
JOBS_EXPORT = "lethe.jobs.export.v1"
ERASE_TASKS = "lethe.erase.tasks.v1"
PROGRESS = "lethe.progress.v1"
NOTIFICATIONS = "lethe.notifications.v1"
AUDIT = "lethe.audit.v1"
DLQ = "lethe.dlq.v1"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(REQUESTS, 6),
    TopicSpec(REQUESTS_REJECTED, 3),
    TopicSpec(JOBS_ERASE, 6),
    TopicSpec(JOBS_EXPORT, 6),
    TopicSpec(ERASE_TASKS, 12),
    TopicSpec(PROGRESS, 6),
    TopicSpec(NOTIFICATIONS, 3),
    # One partition: the audit chain is ordered, and the auditor appends in that order.
    TopicSpec(AUDIT, 1),
    TopicSpec(DLQ, 1, {"retention.ms": str(30 * 24 * 3600 * 1000)}),
)
