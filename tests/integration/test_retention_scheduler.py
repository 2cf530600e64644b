"""The scheduler on real Postgres with an injected clock: two replicas schedule a period once,
leadership moves when the leader stops, a run missed during downtime happens at the next
start (once), and deadline reminders go once per job and kind."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.intake import store
from services.intake.scheduler import LEADER_LOCK, Scheduler
from shared.datamap import load_datamap
from shared.events.notifications import TEMPLATES
from tests.helpers import eventually

pytestmark = pytest.mark.integration
DATAMAP = Path(__file__).resolve().parents[2] / "deploy/local/sample/datamap.yaml"
DAY1 = datetime(2031, 3, 10, 4, 0, tzinfo=UTC)  # the injected clock starts here
CATEGORIES = {"logs": 30, "messages": 90, "metrics": 365}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def orgs(lethe_db: asyncpg.Pool) -> AsyncIterator[list[str]]:
    ids = [f"sched-{uuid.uuid4().hex[:10]}" for _ in range(2)]
    for i in ids:
        await store.create_org(lethe_db, i, f"Scheduled {i}")
    yield ids
    # The jobs' events are not for a relay of another test.
    await lethe_db.execute("DELETE FROM lethe.outbox WHERE event->>'org_id' = ANY($1)", ids)


def replica(pool: asyncpg.Pool, name: str, orgs: list[str], clock: Clock, **kw: Any) -> Scheduler:
    args: dict[str, Any] = {
        "cron": "0 3 * * *",
        "poll_seconds": 0.05,
        "reminder_days": 7,
        "public_mode": False,
        "public_days": 7,
    }
    args.update(kw)
    return Scheduler(pool, load_datamap(DATAMAP), name=name, orgs=orgs, clock=clock, **args)


async def runs(db: asyncpg.Pool, name: str) -> list[datetime]:
    rows = await db.fetch(
        "SELECT period FROM lethe.scheduler_runs WHERE name = $1 ORDER BY period", name
    )
    return [r[0] for r in rows]


async def retention_jobs(db: asyncpg.Pool, orgs: list[str]) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT j.org_id, j.request_id, j.status, o.event FROM lethe.jobs j "
        "JOIN lethe.outbox o ON (o.event->>'job_id')::uuid = j.id "
        "WHERE j.type = 'retention' AND j.org_id = ANY($1) ORDER BY j.request_id",
        orgs,
    )
    return [dict(r) for r in rows]


async def test_two_replicas_once_per_period_and_catch_up(
    lethe_db: asyncpg.Pool, orgs: list[str]
) -> None:
    name = f"retention-{uuid.uuid4().hex[:8]}"
    clock = Clock(DAY1)
    a, b = replica(lethe_db, name, orgs, clock), replica(lethe_db, name, orgs, clock)
    # Leader election: one lock, one leader.
    assert await a.lead() is True
    assert await b.lead() is False
    await a.resign()

    # First start: the current period is the baseline, nothing runs.
    await a.start()
    await b.start()
    try:
        await eventually(lambda: runs(lethe_db, name), timeout=20, what="the baseline")
        clock.now = DAY1 + timedelta(days=1)  # 11 March 04:00: the 03:00 run is due
        await eventually(lambda: _n(runs(lethe_db, name), 2), timeout=20, what="the second period")
        await asyncio.sleep(0.5)  # both replicas keep polling the same period
        # Even two leaders at once (a lock lost and retaken) cannot run a period twice.
        results = await asyncio.gather(a.tick(), b.tick())
        assert [r.ran for r in results] == [False, False]
    finally:
        await a.stop()
        await b.stop()
    jobs = await retention_jobs(lethe_db, orgs)
    assert len(jobs) == len(orgs) * len(CATEGORIES)  # one per org and category
    period = datetime(2031, 3, 11, 3, 0, tzinfo=UTC)
    for j in jobs:
        payload = j["event"]["payload"]
        days = CATEGORIES[payload["category"]]
        assert payload["days"] == days and payload["period"] == period.isoformat()
        assert datetime.fromisoformat(payload["cutoff"]) == period - timedelta(days=days)
        assert j["status"] == "pending" and j["event"]["type"] == "RetentionRequested"

    # Downtime over three nights: the next start runs the missed run once (the latest).
    clock.now = DAY1 + timedelta(days=4, hours=6)
    c = replica(lethe_db, name, orgs, clock)
    await c.start()
    try:
        await eventually(lambda: _n(runs(lethe_db, name), 3), timeout=20, what="the catch-up")
        await asyncio.sleep(0.3)
    finally:
        await c.stop()
    assert await runs(lethe_db, name) == [
        datetime(2031, 3, 10, 3, 0, tzinfo=UTC),
        period,
        datetime(2031, 3, 14, 3, 0, tzinfo=UTC),
    ]
    assert len(await retention_jobs(lethe_db, orgs)) == 2 * len(orgs) * len(CATEGORIES)


async def test_policy_and_public_mode_shape_the_jobs(
    lethe_db: asyncpg.Pool, orgs: list[str]
) -> None:
    name = f"retention-{uuid.uuid4().hex[:8]}"
    await lethe_db.execute(
        "INSERT INTO lethe.retention_policies (org_id, category, days, updated_by) "
        "VALUES ($1, 'messages', 400, 'test')",
        orgs[0],
    )
    clock = Clock(DAY1)
    s = replica(lethe_db, name, orgs, clock, public_mode=True, public_days=5)
    assert (await s.tick()).ran is False  # baseline
    clock.now += timedelta(days=1)
    assert (await s.tick()).jobs == len(orgs) * 4
    got = {
        (j["org_id"], j["event"]["payload"]["category"]): j["event"]["payload"]["days"]
        for j in await retention_jobs(lethe_db, orgs)
    }
    assert got[(orgs[0], "messages")] == 400 and got[(orgs[1], "messages")] == 90
    assert got[(orgs[0], "anonymous")] == 5


async def _n(probe: Any, n: int) -> bool:
    return len(await probe) >= n


async def test_deadline_reminders_once_per_job_and_kind(
    lethe_db: asyncpg.Pool, orgs: list[str]
) -> None:
    now = DAY1
    org = orgs[0]

    async def job(due: datetime, status: str = "running", email: str | None = "dpo@x.test") -> Any:
        job_id = uuid.uuid4()
        await lethe_db.execute(
            "INSERT INTO lethe.jobs (id, org_id, type, scope, status, channel, actor, regulation, "
            "received_at, due_at, recovery_window_days, requester_email) "
            "VALUES ($1, $2, 'erasure', 'subject', $3, 'http', 'test', 'gdpr', $4, $5, 7, $6)",
            job_id,
            org,
            status,
            due - timedelta(days=30),
            due,
            email,
        )
        return job_id

    soon = await job(now + timedelta(days=3))
    late = await job(now - timedelta(days=1))
    await job(now + timedelta(days=20))  # not yet
    await job(now - timedelta(days=2), status="completed")  # done in time: no reminder
    await job(now - timedelta(days=2), status="soft_deleted")  # out of reach: met
    await job(now + timedelta(days=1), email=None)  # nobody to tell

    s = replica(lethe_db, f"reminders-{uuid.uuid4().hex[:8]}", orgs, Clock(now))
    assert await s.send_reminders(now) == 2
    assert await s.send_reminders(now) == 0  # once per job and kind
    mails = await _mails(lethe_db, org)
    assert {(m["job_id"], m["payload"]["template"]) for m in mails} == {
        (str(soon), "deadline_approaching"),
        (str(late), "deadline_passed"),
    }
    for m in mails:
        p = m["payload"]
        assert p["to"] == "dpo@x.test"
        assert set(TEMPLATES[p["template"]]) == set(p["context"])
    assert (
        next(m for m in mails if m["job_id"] == str(soon))["payload"]["context"]["days_left"] == 3
    )
    # Later, the approaching one is overdue too: one more reminder, of the other kind.
    assert await s.send_reminders(now + timedelta(days=4)) == 1
    assert await s.send_reminders(now + timedelta(days=5)) == 0


async def _mails(db: asyncpg.Pool, org: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT event FROM lethe.outbox WHERE topic = 'lethe.notifications.v1' "
        "AND event->>'org_id' = $1",
        org,
    )
    return [r[0] for r in rows]


async def test_the_leader_dies_the_other_replica_takes_over_and_runs_the_period_once(
    lethe_db: asyncpg.Pool, orgs: list[str]
) -> None:
    name = f"retention-{uuid.uuid4().hex[:8]}"
    clock = Clock(DAY1)
    a, b = replica(lethe_db, name, orgs, clock), replica(lethe_db, name, orgs, clock)
    await a.start()
    await b.start()
    try:
        await eventually(lambda: runs(lethe_db, name), timeout=20, what="the baseline")
        leader = await eventually(lambda: _leader(lethe_db, name, a, b), what="a leader")
        other = b if leader is a else a

        # The leader's process dies: its loop stops without resigning and Postgres drops its
        # session (as when the process is killed), and with it the advisory lock.
        assert leader._task is not None and leader._conn is not None
        leader._task.cancel()
        pid = leader._conn.get_server_pid()
        assert await lethe_db.fetchval("SELECT pg_terminate_backend($1)", pid)
        taken = await eventually(lambda: _leader(lethe_db, name, other), what="a takeover")
        assert taken is other

        clock.now = DAY1 + timedelta(days=1)  # the 03:00 run of 11 March is due
        await eventually(lambda: _n(runs(lethe_db, name), 2), timeout=20, what="the period")
        await asyncio.sleep(0.5)  # polls keep coming for the same period: it must not rerun
    finally:
        await a.stop()
        await b.stop()
    assert await runs(lethe_db, name) == [
        datetime(2031, 3, 10, 3, 0, tzinfo=UTC),
        datetime(2031, 3, 11, 3, 0, tzinfo=UTC),
    ]
    assert len(await retention_jobs(lethe_db, orgs)) == len(orgs) * len(CATEGORIES)


async def _leader(db: asyncpg.Pool, name: str, *replicas: Scheduler) -> Scheduler | None:
    """The replica whose Postgres session holds the leader lock of this schedule."""
    holder = await db.fetchval(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND classid = $1::bigint::oid AND objid = (hashtext($2)::bigint & 4294967295)::oid",
        LEADER_LOCK,
        name,
    )
    for s in replicas:
        conn = s._conn
        if holder is not None and conn is not None and conn.get_server_pid() == holder:
            return s
    return None
