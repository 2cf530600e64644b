"""One leased claim for both notifier queues: a delivery (email, webhook) or an OpenDSR
callback claimed by a sender that then died is taken over once its lease has run out, and
not before; a sent one is never claimed again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.notifier import store
from services.notifier.lease import Claim
from tests.conftest import Org

pytestmark = pytest.mark.integration

LEASE = 30.0


async def _crash(pool: asyncpg.Pool, table: str, where: str, *args: object) -> None:
    """The sender holding the claim died an hour ago, mid-send."""
    await pool.execute(
        f"UPDATE lethe.{table} SET claimed_at = now() - interval '1 hour' WHERE {where}", *args
    )


async def test_a_delivery_left_by_a_dead_sender_is_taken_over_after_its_lease(
    lethe_db: asyncpg.Pool,
) -> None:
    event_id = uuid.uuid4()

    async def claim() -> Claim:
        return await store.claim(
            lethe_db,
            event_id,
            "requester",
            job_id=None,
            channel="email",
            template="job_failed",
            lease_seconds=LEASE,
        )

    assert await claim() is Claim.GO
    assert await claim() is Claim.BUSY  # its sender is alive: the lease runs
    await _crash(lethe_db, "deliveries", "command_event_id = $1", event_id)
    assert await claim() is Claim.GO  # taken over
    attempts = await lethe_db.fetchval(
        "SELECT attempts FROM lethe.deliveries WHERE command_event_id = $1", event_id
    )
    assert attempts == 2
    await store.mark(lethe_db, event_id, "requester", "sent")
    await _crash(lethe_db, "deliveries", "command_event_id = $1", event_id)
    assert await claim() is Claim.DONE  # sent: never again, however old


async def test_an_opendsr_callback_left_by_a_dead_sender_is_taken_over_after_its_lease(
    lethe_db: asyncpg.Pool, org: Org
) -> None:
    job_id, event_id = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    await lethe_db.execute(
        "INSERT INTO lethe.jobs (id, org_id, type, scope, status, channel, actor, regulation, "
        "received_at, due_at, recovery_window_days) "
        "VALUES ($1, $2, 'erasure', 'subject', 'running', 'http', 'test', 'gdpr', $3, $4, 7)",
        job_id,
        org.id,
        now,
        now + timedelta(days=30),
    )
    endpoint = f"https://lease-{uuid.uuid4().hex[:8]}.example"
    url = f"{endpoint}/cb"
    row = (event_id, url, job_id, org.id, None, "rid", "in_progress", endpoint, b"{}", now)
    assert await store.record_callbacks(lethe_db, [row]) == 1

    async def claim() -> list[store.Callback]:
        # Other tests' endpoints count as full: only this test's callback can be claimed.
        others = await lethe_db.fetch(
            "SELECT DISTINCT endpoint FROM lethe.opendsr_callbacks "
            "WHERE endpoint IS NOT NULL AND endpoint <> $1",
            endpoint,
        )
        full = [r["endpoint"] for r in others]
        return await store.claim_callbacks(lethe_db, full, 100, LEASE)

    [first] = await claim()
    assert (first.event_id, first.url, first.attempts) == (event_id, url, 1)
    assert await claim() == []  # its sender is alive: the lease runs
    await _crash(lethe_db, "opendsr_callbacks", "event_id = $1", event_id)
    [again] = await claim()  # taken over
    assert (again.event_id, again.attempts) == (event_id, 2)
    await store.callback_sent(lethe_db, event_id, url, 200)
    await _crash(lethe_db, "opendsr_callbacks", "event_id = $1", event_id)
    assert await claim() == []  # sent: never again
