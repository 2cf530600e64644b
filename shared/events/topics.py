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


_DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """One topic as `lethe topics apply` creates and keeps it.

    `config` is the whole set of topic-level settings Lethe manages (applied as a set: a
    setting changed by hand is put back); `min.insync.replicas` is added from the
    replication factor at apply time.
    """

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def _delete(days: int) -> dict[str, str]:
    return {"cleanup.policy": "delete", "retention.ms": str(days * _DAY_MS)}


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(REQUESTS, 6, _delete(7)),
    TopicSpec(REQUESTS_REJECTED, 3, _delete(7)),
    # Commands: kept long enough to survive a long outage of the consumers.
    TopicSpec(JOBS_ERASE, 6, _delete(30)),
    TopicSpec(JOBS_EXPORT, 6, _delete(30)),
    # Work items of the replicas; the job's chunk table is the record.
    TopicSpec(ERASE_TASKS, 12, _delete(7)),
    # Keyed by job: the latest state per job is what a dashboard needs, so compacted; every
    # event stays for a week first, so a consumer less than a week behind misses none.
    TopicSpec(
        PROGRESS,
        6,
        {"cleanup.policy": "compact", "min.compaction.lag.ms": str(7 * _DAY_MS)},
    ),
    TopicSpec(NOTIFICATIONS, 3, _delete(7)),
    # One partition: the audit chain is ordered, and the auditor appends in that order. Every
    # event matters (never compacted); Postgres is the store, the topic only carries it.
    TopicSpec(AUDIT, 1, _delete(30)),
    TopicSpec(DLQ, 1, _delete(30)),
)


def min_insync_replicas(replication_factor: int) -> int:
    """Writes (acks=all) survive one broker down: 2 of 3; 1 where there is no spare."""
    return max(1, min(2, replication_factor - 1))
