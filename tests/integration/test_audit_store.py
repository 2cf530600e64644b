"""The audit store on real Postgres: append-only, ordered under concurrency, deduplicated."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from services.auditor import store
from shared.auditchain.verify import verify_chain
from shared.events import Actor, make_event
from shared.events.progress import JobFailed

pytestmark = pytest.mark.integration
ACTOR = Actor(kind="service", id="test")


async def test_concurrent_appenders_never_fork_the_chain(lethe_db: asyncpg.Pool) -> None:
    org = f"org-{uuid.uuid4().hex[:8]}"
    events = [make_event(JobFailed(reason=f"r{i}"), actor=ACTOR, org_id=org) for i in range(40)]
    # Two "replicas" appending at once, each also seeing a redelivery of the other's events.
    await asyncio.gather(
        *(store.append(lethe_db, e) for e in events),
        *(store.append(lethe_db, e) for e in reversed(events)),
    )
    count = await lethe_db.fetchval("SELECT count(*) FROM lethe.audit_log WHERE org_id = $1", org)
    assert count == 40
    verdict = await verify_chain(lethe_db)
    assert verdict.ok, verdict


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE lethe.audit_log SET action = 'x' WHERE seq = $1",
        "DELETE FROM lethe.audit_log WHERE seq = $1",
    ],
)
async def test_history_cannot_be_rewritten(lethe_db: asyncpg.Pool, statement: str) -> None:
    row = await store.append(lethe_db, make_event(JobFailed(reason="x"), actor=ACTOR))
    assert row is not None
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await lethe_db.execute(statement, row.seq)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await lethe_db.execute("TRUNCATE lethe.audit_log")


async def test_verify_names_a_row_changed_behind_the_triggers_back(
    lethe_db: asyncpg.Pool,
) -> None:
    # A superuser can disable triggers; the chain still gives it away. Done in a transaction
    # that is rolled back, so other tests keep an intact chain.
    row = await store.append(lethe_db, make_event(JobFailed(reason="x"), actor=ACTOR))
    assert row is not None
    async with lethe_db.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute("ALTER TABLE lethe.audit_log DISABLE TRIGGER USER")
            await conn.execute(
                'UPDATE lethe.audit_log SET details = \'{"reason": "forged"}\' WHERE seq = $1',
                row.seq,
            )
            verdict = await verify_chain(conn)
        finally:
            await tx.rollback()
    assert not verdict.ok and verdict.first_bad_seq == row.seq
    assert verdict.reason == "hash does not match the row's contents"
