"""The eraser's domain on real Postgres and S3: plan, chunks, restore, cancel, purge, verify.

Chunks go to an in-memory queue instead of Kafka so each test decides when they run (a cancel
lands exactly between two batches, a chunk can be run twice). A chunk that keeps failing runs
through the real eraser on Kafka (its retries, the dead-letter topic, the review item). The
Kafka path, replicas and a SIGKILL are covered by tests/e2e/test_erase_replicas.py.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError

from deploy.local.sample.seed import SeededOrg, seed_org
from services.auditor.app import create_app as create_auditor
from services.auditor.settings import AuditorSettings
from services.eraser import service, store
from services.eraser.app import create_app as create_eraser
from services.eraser.deps import EraserDeps
from services.eraser.objects import quarantine_prefix
from services.eraser.settings import EraserSettings
from services.intake.domain.progress import JobEvent, fold
from shared.events import Actor, Envelope, make_event
from shared.events.jobs import CancelErasure, ErasureRequested, Item, RestoreErasure, Subject
from shared.events.topics import JOBS_ERASE, PROGRESS
from tests.conftest import Org
from tests.helpers import eraser_deps, eventually, find_record, s3_exists

pytestmark = pytest.mark.integration
BUCKET = "lethe-platform"
DATAMAP = Path(__file__).resolve().parents[2] / "deploy/local/sample/datamap.yaml"
# Every table of the sample map, and how to find a user's rows in it.
SUBJECT_ROWS = {
    "users": "SELECT row_to_json(t)::text FROM users t WHERE id = $1",
    "conversations": "SELECT row_to_json(t)::text FROM conversations t WHERE user_id = $1",
    "messages": "SELECT row_to_json(t)::text FROM messages t WHERE author_id = $1 OR "
    "conversation_id IN (SELECT id FROM conversations WHERE user_id = $1)",
    "media_objects": "SELECT row_to_json(t)::text FROM media_objects t WHERE message_id IN "
    "(SELECT id FROM messages WHERE author_id = $1)",
    "payments": "SELECT row_to_json(t)::text FROM payments t WHERE user_id = $1",
    "newsletter_signups": "SELECT row_to_json(t)::text FROM newsletter_signups t "
    "WHERE email = (SELECT email FROM users WHERE id = $1)",
}


@dataclass
class Harness:
    deps: EraserDeps
    queue: list[Envelope] = field(default_factory=list)
    events: list[tuple[str, Envelope]] = field(default_factory=list)

    async def publish(self, env: Envelope) -> None:
        self.queue.append(env)

    async def emit(self, topic: str, env: Envelope) -> None:
        self.events.append((topic, env))

    async def run_chunks(self, limit: int | None = None) -> int:
        """Work the queue in order, as one consumer would (a failure fails the test)."""
        ran = 0
        while self.queue and (limit is None or ran < limit):
            await service.process_chunk(self.queue.pop(0), self.deps)
            ran += 1
        return ran

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [e.payload for _, e in self.events if e.type == event_type]


@pytest.fixture(scope="module")
async def harness_deps(
    base_settings: dict[str, Any], lethe_db: asyncpg.Pool, platform_db: asyncpg.Pool, s3: Any
) -> AsyncIterator[EraserDeps]:
    yield await eraser_deps(base_settings, lethe_db, platform_db, s3, batch_size=25)


@pytest.fixture
def h(harness_deps: EraserDeps) -> Harness:
    harness = Harness(harness_deps)
    harness_deps.emit = harness.emit
    harness_deps.publish_chunk = harness.publish
    return harness


@pytest.fixture
async def seeded(org: Org, platform_db: asyncpg.Pool, s3: Any) -> SeededOrg:
    async with platform_db.acquire() as conn:
        return await seed_org(
            conn,
            s3,
            BUCKET,
            org.id,
            users=3,
            conversations_per_user=2,
            messages_per_conversation=10,
            media_every=3,
            heavy_user_factor=3,
        )


def request(org_id: str, email: str | None, window: int, scope: str = "subject") -> Envelope:
    req = ErasureRequested(
        scope=scope,
        subject=Subject(email=email) if email else None,
        requester_email="dpo@example.test",
        regulation="gdpr",
        due_at=datetime.now(UTC) + timedelta(days=30),
        recovery_window_days=window,
        channel="kafka",
    )
    return make_event(req, actor=Actor(kind="test", id="t"), job_id=uuid.uuid4(), org_id=org_id)


def command(src: Envelope, payload: CancelErasure | RestoreErasure) -> Envelope:
    return make_event(
        payload, actor=Actor(kind="test", id="t"), job_id=src.job_id, org_id=src.org_id
    )


async def snapshot(platform_db: asyncpg.Pool, user_id: int) -> dict[str, set[str]]:
    return {
        t: {r[0] for r in await platform_db.fetch(sql, user_id)} for t, sql in SUBJECT_ROWS.items()
    }


async def live_counts(platform_db: asyncpg.Pool, user_id: int, email: str) -> dict[str, int]:
    r = await platform_db.fetchrow(
        "SELECT (SELECT count(*) FROM users WHERE id = $1) AS users, "
        "(SELECT count(*) FROM conversations WHERE user_id = $1) AS conversations, "
        "(SELECT count(*) FROM messages WHERE author_id = $1) AS messages, "
        "(SELECT count(*) FROM payments WHERE user_id = $1 OR billing_email = $2) AS payments, "
        "(SELECT count(*) FROM newsletter_signups WHERE email = $2) AS signups",
        user_id,
        email,
    )
    return dict(r)


async def present(s3: Any, keys: list[str]) -> list[str]:
    out = []
    for k in keys:
        if await s3_exists(s3, BUCKET, k):
            out.append(k)
    return out


async def job(h: Harness, env: Envelope) -> store.Job:
    assert env.job_id is not None
    j = await store.get_job(h.deps.lethe, env.job_id)
    assert j is not None
    return j


# ------------------------------------------------------------------ tests


async def test_multi_hop_soft_delete_then_purge(
    h: Harness, seeded: SeededOrg, platform_db: asyncpg.Pool, s3: Any
) -> None:
    subject, others = seeded.users[0], seeded.users[1:]
    before_others = [await snapshot(platform_db, o.id) for o in others]
    env = request(seeded.org_id, subject.email, window=7)
    await service.plan(env, h.deps)
    planned = h.of("ErasurePlanned")[0]
    assert planned["total"] == seeded.rows_of(subject)
    assert len(h.queue) >= 2  # wave 0 only: leaves (media, payments, sign-ups) go first
    assert {e.payload["table"] for e in h.queue} <= {
        "media_objects",
        "payments",
        "newsletter_signups",
    }
    await h.run_chunks()

    j = await job(h, env)
    assert j.status == "soft_deleted" and j.done == j.total == seeded.rows_of(subject)
    soft = h.of("ErasureSoftDeleted")[0]
    assert soft["verification"]["ok"] is True and soft["verification"]["rows_remaining"] == {}
    assert soft["needs_review"] == []
    # Progress after every batch, ending at done == total.
    batches = h.of("BatchErased")
    assert len(batches) >= 6 and batches[-1]["done"] == batches[-1]["total"]
    assert all(b["eta_seconds"] is not None for b in batches)
    # Hidden at once: the subject resolves to nothing, payments are masked, objects moved.
    assert await live_counts(platform_db, subject.id, subject.email) == {
        "users": 0,
        "conversations": 0,
        "messages": 0,
        "payments": 0,
        "signups": 0,
    }
    masked = await platform_db.fetch(
        "SELECT * FROM payments WHERE org_id = $1 AND user_id IS NULL", seeded.org_id
    )
    assert len(masked) == subject.payments
    assert all(
        p["billing_name"] == "[redacted]"
        and p["billing_email"].startswith("hmac:")
        and p["card_last4"].startswith("rnd:")
        for p in masked
    )
    assert await present(s3, subject.object_keys) == []
    quarantined = await _list(s3, quarantine_prefix(j.job_id))
    assert len(quarantined) == len(subject.object_keys)
    async with platform_db.acquire() as conn:
        held = await store.restoration_rows(conn, j.job_id)
    assert held == j.done  # every row removed or masked is held, once
    # Nobody else lost anything.
    assert [await snapshot(platform_db, o.id) for o in others] == before_others

    # Until the purge, Lethe knows which rows and objects it holds (to restore them).
    kept = await _kept(h.deps.lethe, platform_db, j.job_id)
    assert all(k in kept for k in subject.object_keys) and str(subject.id) in kept
    # Purge (the window is over): objects, then restoration rows, then the key.
    await platform_db.execute("SELECT 1")
    await h.deps.lethe.execute(
        "UPDATE lethe.erase_tasks SET purge_after = now() WHERE job_id = $1", j.job_id
    )
    assert await service.sweep(h.deps) >= 1
    j = await job(h, env)
    assert j.status == "purged" and j.wrapped_key is None and j.sealed_request is None
    assert await _list(s3, quarantine_prefix(j.job_id)) == set()
    async with platform_db.acquire() as conn:
        assert await store.restoration_rows(conn, j.job_id) == 0
    # After it: counts only. No row holds the subject's email, row keys or object keys.
    kept = await _kept(h.deps.lethe, platform_db, j.job_id)
    assert subject.email not in kept and "dpo@example.test" not in kept
    assert not any(k in kept for k in subject.object_keys) and f'"{subject.id}"' not in kept
    assert (
        await h.deps.lethe.fetchval(
            "SELECT sum(rows_done) FROM lethe.erase_chunks WHERE job_id = $1", j.job_id
        )
        == j.total
    )
    done = h.of("JobCompleted")[0]
    assert done["verification"]["ok"] is True and done["verification"]["key_destroyed"] is True
    assert done["verification"]["rows_remaining"] == {} and done["done"] == j.total
    # The data-hidden notice at the soft delete, the completion after the purge: once each.
    mails = [e.payload for _, e in h.events if e.type == "SendEmail"]
    assert [m["template"] for m in mails] == ["erasure_hidden", "job_completed"]
    assert mails[1]["context"]["rows_purged"] == j.total
    assert mails[1]["context"]["rows_restored"] == 0
    # Restoring after the purge is refused: nothing is readable any more.
    await service.restore(command(env, RestoreErasure()), h.deps)
    assert h.of("CommandRefused")[0]["command"] == "RestoreErasure"


async def test_org_erasure_and_a_chunk_run_twice(
    h: Harness, seeded: SeededOrg, platform_db: asyncpg.Pool, s3: Any
) -> None:
    env = request(seeded.org_id, None, window=0, scope="organisation")
    await service.plan(env, h.deps)
    # Every user's rows, and the organisation row itself (its name masked: issue 12).
    total = sum(seeded.rows_of(u) for u in seeded.users) + 1
    assert h.of("ErasurePlanned")[0]["total"] == total
    first = h.queue[0]
    await h.run_chunks(limit=1)
    h.queue.append(first)  # redelivered: no extra effect
    await h.run_chunks()
    j = await job(h, env)
    assert j.status == "purged" and j.done == total
    for u in seeded.users:
        assert set((await live_counts(platform_db, u.id, u.email)).values()) == {0}
        assert await present(s3, u.object_keys) == []
    assert h.of("JobCompleted")[0]["verification"]["ok"] is True
    name = await platform_db.fetchval("SELECT name FROM organisations WHERE id = $1", seeded.org_id)
    assert name == "[redacted]"


async def test_restore_whole_job_is_byte_identical(
    h: Harness, seeded: SeededOrg, platform_db: asyncpg.Pool, s3: Any
) -> None:
    subject = seeded.users[0]
    before = await snapshot(platform_db, subject.id)
    bodies = {k: (await s3.get_object(Bucket=BUCKET, Key=k))["Body"] for k in subject.object_keys}
    contents = {k: await b.read() for k, b in bodies.items()}
    env = request(seeded.org_id, subject.email, window=7)
    await service.plan(env, h.deps)
    await h.run_chunks()
    assert (await job(h, env)).status == "soft_deleted"

    await service.restore(command(env, RestoreErasure()), h.deps)
    restored = h.of("JobRestored")[0]
    assert restored["whole_job"] is True and restored["needs_review"] == []
    assert restored["rows"] == seeded.rows_of(subject)
    assert restored["objects"] == len(subject.object_keys)
    assert await snapshot(platform_db, subject.id) == before
    for k, data in contents.items():
        assert await (await s3.get_object(Bucket=BUCKET, Key=k))["Body"].read() == data
    j = await job(h, env)
    assert j.status == "restored"
    async with platform_db.acquire() as conn:
        assert await store.restoration_rows(conn, j.job_id) == 0
    assert await _list(s3, quarantine_prefix(j.job_id)) == set()
    # Nothing held any more: the job forgets which rows and objects it touched.
    kept = await _kept(h.deps.lethe, platform_db, j.job_id)
    assert not any(k in kept for k in subject.object_keys) and f'"{subject.id}"' not in kept


async def test_restore_items_parents_first_and_a_taken_key_is_reviewed(
    h: Harness, seeded: SeededOrg, platform_db: asyncpg.Pool
) -> None:
    subject, other = seeded.users[0], seeded.users[1]
    before = await snapshot(platform_db, subject.id)
    env = request(seeded.org_id, subject.email, window=7)
    await service.plan(env, h.deps)
    await h.run_chunks()
    env2 = request(seeded.org_id, other.email, window=7)
    await service.plan(env2, h.deps)
    await h.run_chunks()

    # One conversation of the subject, listed before its parent: the user comes back first.
    conv = json.loads(sorted(before["conversations"])[0])
    items = [
        Item(table="conversations", key=str(conv["id"])),
        Item(table="users", key=str(subject.id)),
    ]
    await service.restore(command(env, RestoreErasure(items=items)), h.deps)
    restored = h.of("JobRestored")[0]
    assert (
        restored["whole_job"] is False and restored["rows"] == 2 and restored["needs_review"] == []
    )
    user_row = await platform_db.fetchval(
        "SELECT row_to_json(t)::text FROM users t WHERE id = $1", subject.id
    )
    conv_row = await platform_db.fetchval(
        "SELECT row_to_json(t)::text FROM conversations t WHERE id = $1", conv["id"]
    )
    assert user_row in before["users"] and conv_row in before["conversations"]
    assert (await job(h, env)).status == "soft_deleted"  # the rest stays erased

    # The other subject's email is taken meanwhile: their user row cannot come back.
    await platform_db.execute(
        "INSERT INTO users (org_id, email) VALUES ($1, $2)", seeded.org_id, other.email
    )
    await service.restore(
        command(env2, RestoreErasure(items=[Item(table="users", key=str(other.id))])), h.deps
    )
    review = h.of("JobRestored")[1]["needs_review"]
    assert (
        review
        == [{"kind": "row", "table": "users", "key": str(other.id), "reason": review[0]["reason"]}]
        and "taken" in review[0]["reason"]
    )
    async with platform_db.acquire() as conn:  # still held, not silently dropped
        assert await store.held(conn, env2.job_id, {"users": [str(other.id)]})  # type: ignore[arg-type]


async def test_cancel_between_batches_keeps_what_is_done_restorable(
    h: Harness, seeded: SeededOrg, platform_db: asyncpg.Pool
) -> None:
    subject = seeded.users[0]
    env = request(seeded.org_id, subject.email, window=7)
    await service.plan(env, h.deps)
    await h.run_chunks(limit=2)
    await service.cancel(command(env, CancelErasure(reason="wrong person")), h.deps)
    await h.run_chunks()  # what was queued has no effect any more
    j = await job(h, env)
    assert j.status == "cancelled" and 0 < j.done < j.total
    cancelled = h.of("JobCancelled")[0]
    assert cancelled["done"] == j.done
    async with platform_db.acquire() as conn:
        assert await store.restoration_rows(conn, j.job_id) == j.done
    live = await live_counts(platform_db, subject.id, subject.email)
    assert live["users"] == 1 and live["conversations"] == subject.conversations
    # What was done comes back.
    await service.restore(command(env, RestoreErasure()), h.deps)
    assert h.of("JobRestored")[0]["rows"] == j.done
    assert (await live_counts(platform_db, subject.id, subject.email))[
        "payments"
    ] == subject.payments
    # A second cancel is refused, naming the state.
    await service.cancel(command(env, CancelErasure()), h.deps)
    assert "restored" in h.of("CommandRefused")[0]["reason"]


async def test_a_failing_chunk_becomes_a_review_item_and_the_rest_finishes(
    base_settings: dict[str, Any],
    seeded: SeededOrg,
    platform_db: asyncpg.Pool,
    lethe_db: asyncpg.Pool,
    s3: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    subject = seeded.users[0]
    poison = await platform_db.fetchval(
        "SELECT id FROM messages WHERE author_id = $1 ORDER BY id LIMIT 1", subject.id
    )
    fn = f"lethe_test_refuse_{uuid.uuid4().hex[:8]}"
    # The platform's error text holds a value (the subject's email): it must reach the logs
    # only, never an event (and so never the immutable audit trail).
    await platform_db.execute(
        f"CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF OLD.id = {int(poison)} THEN "
        f"RAISE EXCEPTION 'row of {subject.email} is locked by legal hold'; END IF; "
        "RETURN OLD; END $$;"
        f"CREATE TRIGGER {fn} BEFORE DELETE ON messages FOR EACH ROW EXECUTE FUNCTION {fn}()"
    )
    caplog.set_level(logging.ERROR, logger="lethe.errors")
    env = request(seeded.org_id, subject.email, window=0)
    job_id = env.job_id
    assert job_id is not None
    # The real eraser on Kafka: a refusal is no outage, so the chunk is tried `dlq_retries`
    # times (well within the horizon), dead-lettered, and
    # becomes a review item; the other chunks go on.
    settings = EraserSettings(
        **base_settings, erase_batch_size=25, dlq_retries=2, dlq_retry_horizon_seconds=30
    )
    auditor = create_auditor(
        AuditorSettings(**base_settings), group_id=f"test-auditor-{uuid.uuid4().hex[:8]}"
    )
    try:
        async with create_eraser(settings), auditor:
            await _publish(settings.kafka_bootstrap_servers, JOBS_ERASE, env)
            j = await eventually(
                lambda: _status(lethe_db, job_id, "purged"), timeout=120, what="the purge"
            )
            await eventually(
                lambda: _audited(lethe_db, job_id, "JobCompleted"), timeout=60, what="audit"
            )
    finally:
        await platform_db.execute(f"DROP TRIGGER {fn} ON messages; DROP FUNCTION {fn}()")
    raw = await find_record(
        settings.kafka_bootstrap_servers,
        PROGRESS,
        lambda r: (
            json.loads(r.value).get("job_id") == str(env.job_id)
            and json.loads(r.value)["type"] == "JobCompleted"
        ),
    )
    done = json.loads(raw)["payload"]
    review = done["needs_review"]
    # The review item names the error's code and the log line that holds its text.
    error = review[0]["error"]
    assert review[0]["table"] == "messages" and "RaiseError P0001 (error_id=" in error, error
    error_id = error.split("error_id=")[1].split(";")[0]
    logged = [r.getMessage() for r in caplog.records if f"error_id={error_id}" in r.getMessage()]
    assert len(logged) == 1 and f"row of {subject.email} is locked by legal hold" in logged[0]
    trail = await lethe_db.fetchval(
        "SELECT string_agg(details::text || actor || coalesce(subject_hash, ''), ' ') "
        "FROM lethe.audit_log WHERE job_id = $1",
        job_id,
    )
    assert error_id in trail and subject.email not in trail
    assert subject.email not in raw.decode()
    # Its parents cannot go either (the message still points at them): reviewed, not hidden.
    assert {r["table"] for r in review} <= {"messages", "conversations", "users"}
    assert done["verification"]["ok"] is False
    # Everything else is gone; the poisoned chunk's rows and objects are all still in place.
    assert await platform_db.fetchval("SELECT count(*) FROM messages WHERE id = $1", poison) == 1
    left = await platform_db.fetchval(
        "SELECT count(*) FROM media_objects m JOIN messages g ON g.id = m.message_id "
        "WHERE g.author_id = $1",
        subject.id,
    )
    failed_chunk_rows = review[0]["rows"]
    assert done["done"] == j.total - sum(r["rows"] for r in review)
    assert failed_chunk_rows >= 1 and left == len(await present(s3, subject.object_keys))


async def _publish(bootstrap: str, topic: str, env: Envelope) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, env.model_dump_json().encode(), key=env.key())
    finally:
        await producer.stop()


async def _kept(lethe: asyncpg.Pool, platform: asyncpg.Pool, job_id: uuid.UUID) -> str:
    """Every row Lethe keeps on a job (its task, chunks, objects, restoration log), as text."""
    parts = [
        await lethe.fetchval(
            f"SELECT coalesce(string_agg(to_jsonb(t)::text, ' '), '') FROM lethe.{table} t "
            "WHERE job_id = $1",
            job_id,
        )
        for table in ("erase_tasks", "erase_chunks", "erase_objects")
    ]
    parts.append(
        await platform.fetchval(
            "SELECT coalesce(string_agg(to_jsonb(t)::text, ' '), '') FROM lethe.restoration_log t "
            "WHERE job_id = $1",
            job_id,
        )
    )
    return " ".join(parts)


async def _audited(db: asyncpg.Pool, job_id: uuid.UUID, action: str) -> bool:
    return bool(
        await db.fetchval(
            "SELECT count(*) FROM lethe.audit_log WHERE job_id = $1 AND action = $2",
            job_id,
            action,
        )
    )


async def _status(db: asyncpg.Pool, job_id: uuid.UUID, status: str) -> store.Job | None:
    j = await store.get_job(db, job_id)
    return j if j is not None and j.status == status else None


async def _list(s3: Any, prefix: str) -> set[str]:
    keys: set[str] = set()
    async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys.update(o["Key"] for o in page.get("Contents", []))
    return keys


class FlakyKafka:
    """Each event's first publish times out, as a producer's does while the brokers are
    unreachable; sent again, it goes through. (An event sent again under a new id would time
    out again, forever: the handler must send the same event.)"""

    def __init__(self, h: Harness) -> None:
        self.h, self.failed = h, set[uuid.UUID]()

    async def emit(self, topic: str, env: Envelope) -> None:
        if env.event_id not in self.failed:
            self.failed.add(env.event_id)
            raise KafkaTimeoutError()
        await self.h.emit(topic, env)


async def _retried(step: Any) -> None:
    """As the consumer does with an outage: the whole handler again, until it goes through."""
    for _ in range(30):
        try:
            await step()
            return
        except KafkaTimeoutError:
            continue
    raise AssertionError("never went through")


async def test_events_whose_publish_failed_are_sent_again_when_redelivered(
    h: Harness, seeded: SeededOrg, lethe_db: asyncpg.Pool
) -> None:
    subject = seeded.users[0]
    kafka = FlakyKafka(h)
    h.deps.emit = kafka.emit
    env = request(seeded.org_id, subject.email, window=7)
    await _retried(lambda: service.plan(env, h.deps))
    while h.queue:
        chunk = h.queue.pop(0)
        await _retried(lambda: service.process_chunk(chunk, h.deps))  # noqa: B023

    j = await job(h, env)
    assert j.status == "soft_deleted" and j.done == j.total == seeded.rows_of(subject)
    assert len(kafka.failed) >= 8  # the plan, every chunk, the soft delete, its notice
    # Downstream keeps each event once (by id): nothing is missing from what it received.
    sent: dict[uuid.UUID, Envelope] = {}
    for topic, e in h.events:
        if topic == PROGRESS:
            sent.setdefault(e.event_id, e)
    chunks = await lethe_db.fetchval(
        "SELECT count(*) FROM lethe.erase_chunks WHERE job_id = $1 AND status = 'done'", j.job_id
    )
    batches = [e for e in sent.values() if e.type == "BatchErased"]
    assert len(batches) == chunks and chunks >= 6
    assert [e.type for e in sent.values()].count("ErasurePlanned") == 1
    assert [e.type for e in sent.values()].count("ErasureSoftDeleted") == 1
    # What intake makes of them: the job hidden, every row counted, nothing to review.
    events = sorted(sent.values(), key=lambda e: e.occurred_at)
    state = fold(JobEvent(e.event_id, e.type, e.occurred_at, "", e.payload) for e in events)
    assert state["status"] == "soft_deleted" and state["phase"] == "recovery_window"
    assert state["done"] == state["total"] == j.total and state["needs_review"] == []
    mails = {e.event_id for t, e in h.events if e.type == "SendEmail"}
    assert len(mails) == 1  # the window's notice, once
