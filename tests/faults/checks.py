"""One erasure with a fault in the middle, and the counts that say nothing was lost.

`erase_through(stack, client, fault)` seeds an org (a heavy subject with media, two others),
submits the subject's erasure (no recovery window: erased, purged, completed), waits until
the job is mid-way (some chunks done, not all), runs `fault`, waits for the job to end and
returns the `Counts` a user would compare. `Counts.print` shows them; `assert_nothing_lost`
compares them.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy.local.sample.seed import SeededOrg
from shared.events.topics import AUDIT, DLQ, JOBS_ERASE, NOTIFICATIONS, PROGRESS, TOPICS
from tests.conftest import Org
from tests.faults.conftest import FaultStack
from tests.helpers import eventually, job_in, s3_exists, submit_erasure
from tests.seeding import PLATFORM_BUCKET, seed_sample

# Topics whose events are audited (ERASE_TASKS carries internal work items, never audited).
AUDITED = (JOBS_ERASE, PROGRESS, NOTIFICATIONS, AUDIT)
JOB_TIMEOUT = 240.0


async def seed(stack: FaultStack, org: Org, heavy: int = 10) -> SeededOrg:
    """Three users; the subject (user 0) has ~1,000 rows and 20 media objects."""
    assert stack.platform is not None
    return await seed_sample(
        stack.platform, stack.s3, org.id, heavy=heavy, bucket=PLATFORM_BUCKET, media_every=50
    )


async def rows_of(platform: asyncpg.Pool, user_id: int) -> dict[str, int]:
    r = await platform.fetchrow(
        "SELECT (SELECT count(*) FROM users WHERE id = $1) AS users, "
        "(SELECT count(*) FROM conversations WHERE user_id = $1) AS conversations, "
        "(SELECT count(*) FROM messages WHERE author_id = $1) AS messages, "
        "(SELECT count(*) FROM media_objects m JOIN messages g ON g.id = m.message_id "
        " WHERE g.author_id = $1) AS media",
        user_id,
    )
    return dict(r)


async def objects_present(stack: FaultStack, keys: list[str]) -> int:
    return sum([await s3_exists(stack.s3, PLATFORM_BUCKET, k) for k in keys])


async def progress(lethe: asyncpg.Pool, job_id: uuid.UUID) -> tuple[str, int, int] | None:
    """(status, done, total) of the erasure as the eraser records it; None before planning."""
    r = await lethe.fetchrow(
        "SELECT status, done, total FROM lethe.erase_tasks WHERE job_id = $1", job_id
    )
    return None if r is None else (r["status"], r["done"], r["total"])


async def wait_mid_job(lethe: asyncpg.Pool, job_id: uuid.UUID) -> tuple[int, int]:
    """Until some chunks are done and some are not; (done, total) at that moment."""

    async def mid() -> tuple[int, int] | None:
        p = await progress(lethe, job_id)
        # A tenth done: chunks of the later waves are flowing (not just the first).
        if p is not None and p[0] == "erasing" and p[2] // 10 <= p[1] < p[2] and p[1]:
            return p[1], p[2]
        assert p is None or p[0] in ("planning", "erasing"), f"job ended before the fault: {p}"
        return None

    return await eventually(mid, timeout=120, every=0.1, what="the erasure to be mid-way")


async def topic_events(bootstrap: str, job_id: uuid.UUID) -> dict[str, set[str]]:
    """Event ids of the job on each audited topic, and on the dead-letter topic."""
    wanted = str(job_id)
    found: dict[str, set[str]] = {t: set() for t in (*AUDITED, DLQ)}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        counts = {spec.name: spec.partitions for spec in TOPICS}
        parts = [TopicPartition(t, p) for t in found for p in range(counts[t])]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        while any([await consumer.position(p) < end[p] for p in parts]):
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                for rec in records:
                    env = _envelope(rec.value)
                    if env.get("job_id") == wanted:
                        found[tp.topic].add(str(env["event_id"]))
    finally:
        await consumer.stop()
    return found


def _envelope(raw: bytes | None) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclass
class Counts:
    """What was compared, for the test's output."""

    seeded_rows: int
    total: int = 0
    done: int = 0
    status: str = ""
    review_items: int = 0
    subject_rows_left: dict[str, int] = field(default_factory=dict)
    subject_objects_left: int = 0
    others_changed: int = 0  # other users whose row counts changed
    others_objects_missing: int = 0
    batch_erased_rows: int = 0  # sum of `rows` over the job's BatchErased audit rows
    topic_events: int = 0  # distinct event ids of the job on the audited topics
    audited_events: int = 0  # audit_log rows of the job
    missing_from_audit: list[str] = field(default_factory=list)
    dead_lettered: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    def print(self, title: str) -> None:
        lines = [f"{title}:"] + [f"  {k} = {v}" for k, v in vars(self).items()]
        print("\n".join(lines))

    def assert_nothing_lost(self) -> None:
        assert self.status == "completed", self
        assert self.seeded_rows == self.total == self.done, self
        assert sum(self.subject_rows_left.values()) == 0 and self.subject_objects_left == 0, self
        assert self.others_changed == 0 and self.others_objects_missing == 0, self
        assert self.review_items == 0, self
        assert self.batch_erased_rows == self.done, self
        assert not self.missing_from_audit and self.topic_events <= self.audited_events, self
        assert self.dead_lettered == 0, self


async def _audit(lethe: asyncpg.Pool, job_id: uuid.UUID) -> tuple[set[str], int]:
    rows = await lethe.fetch(
        "SELECT event_id, action, details FROM lethe.audit_log WHERE job_id = $1", job_id
    )
    batch_rows = sum(int(r["details"].get("rows", 0)) for r in rows if r["action"] == "BatchErased")
    return {str(r["event_id"]) for r in rows}, batch_rows


async def audit_counts(stack: FaultStack, job_id: uuid.UUID, counts: Counts) -> None:
    """Every event of the job on the topics is in the audit log (the auditor may lag: waits)."""
    assert stack.lethe is not None
    deadline = time.monotonic() + 90
    while True:
        on_topics = await topic_events(stack.ep.kafka_bootstrap_servers, job_id)
        audited, batch_rows = await _audit(stack.lethe, job_id)
        ids = set().union(*(on_topics[t] for t in AUDITED))
        missing = sorted(ids - audited)
        if not missing or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    counts.topic_events, counts.audited_events = len(ids), len(audited)
    counts.missing_from_audit, counts.batch_erased_rows = missing, batch_rows
    counts.dead_lettered = len(on_topics[DLQ])


async def erase_through(
    stack: FaultStack,
    client: httpx.AsyncClient,
    fault: Callable[[], Awaitable[dict[str, Any] | None]],
) -> Counts:
    """Seed, submit, wait until mid-job, `fault()`, wait for the end; the counts."""
    assert stack.lethe is not None and stack.platform is not None
    org = await stack.new_org()
    seeded = await seed(stack, org)
    subject, others = seeded.users[0], seeded.users[1:]
    before = {o.id: await rows_of(stack.platform, o.id) for o in others}
    job_id = await submit_erasure(client, org, subject.email, window=0)
    done_at_fault, total = await wait_mid_job(stack.lethe, job_id)
    notes: dict[str, Any] = {"done_when_fault_began": done_at_fault, "planned_total": total}
    t0 = time.monotonic()
    notes |= await fault() or {}
    notes["fault_seconds"] = round(time.monotonic() - t0, 1)
    job = await job_in(client, org, str(job_id), ("completed", "failed"), timeout=JOB_TIMEOUT)
    counts = Counts(
        seeded_rows=seeded.rows_of(subject),
        total=job["total"],
        done=job["done"],
        status=job["status"],
        review_items=len(job.get("needs_review") or []),
        subject_rows_left={
            k: v for k, v in (await rows_of(stack.platform, subject.id)).items() if v
        },
        subject_objects_left=await objects_present(stack, subject.object_keys),
        notes=notes,
    )
    counts.others_changed = sum(
        [await rows_of(stack.platform, o.id) != before[o.id] for o in others]
    )
    counts.others_objects_missing = sum(
        [len(o.object_keys) - await objects_present(stack, o.object_keys) for o in others]
    )
    await audit_counts(stack, job_id, counts)
    return counts
