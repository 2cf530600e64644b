"""Eraser replicas as real processes on Kafka: they share one large job, survive a SIGKILL,
and take cancel/restore commands from the job topic.

One module, one big seeded subject for the slow part; the services start once.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from deploy.local import infra
from services.eraser import store
from shared.events import Actor, make_event
from shared.events.jobs import CancelErasure, RestoreErasure
from shared.events.topics import JOBS_ERASE
from tests.conftest import Org
from tests.e2e.conftest import Services
from tests.helpers import eventually, submit_erasure
from tests.seeding import seed_sample

pytestmark = pytest.mark.e2e
REPLICA_ENV = {
    "LETHE_ERASE_BATCH_SIZE": "250",
    # Slow enough that the kill lands mid-job, fast enough for a short test.
    "LETHE_ERASE_RATE_LIMIT_ROWS": "2000",
    "LETHE_ERASE_PURGE_INTERVAL_SECONDS": "1",
}


class Replicas:
    """Eraser processes of the module's stack (stopped with it)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.pids: dict[str, int] = {}

    def start(self, name: str) -> int:
        pid = self.services.start(name, "eraser", REPLICA_ENV)
        self.pids[name] = pid
        return pid

    async def ready(self, *names: str) -> None:
        """Started and in the consumer groups (so the partitions are shared)."""

        async def up() -> bool:
            return all("started successfully" in self.services.log(n) for n in names)

        await eventually(up, timeout=60, what=f"{', '.join(names)} to start")

    def kill(self, name: str) -> None:
        os.killpg(self.pids[name], signal.SIGKILL)


@pytest.fixture(scope="module")
def stack(services: Services) -> tuple[str, Replicas]:
    """The five services, with the single eraser replaced by named replicas."""
    services.stop("eraser")
    replicas = Replicas(services)
    replicas.start("eraser-a")
    replicas.start("eraser-b")
    return services.url, replicas


@pytest.fixture
async def client(stack: tuple[str, Replicas]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack[0], timeout=10) as c:
        yield c


async def _job(lethe_db: asyncpg.Pool, job_id: uuid.UUID) -> store.Job | None:
    return await store.get_job(lethe_db, job_id)


async def _live_rows(platform_db: asyncpg.Pool, user_id: int) -> int:
    n: int = await platform_db.fetchval(
        "SELECT (SELECT count(*) FROM users WHERE id = $1) + "
        "(SELECT count(*) FROM conversations WHERE user_id = $1) + "
        "(SELECT count(*) FROM messages WHERE author_id = $1) + "
        "(SELECT count(*) FROM payments WHERE user_id = $1)",
        user_id,
    )
    return n


async def test_two_replicas_share_a_job_and_survive_a_sigkill(
    stack: tuple[str, Replicas],
    client: httpx.AsyncClient,
    org: Org,
    platform_db: asyncpg.Pool,
    lethe_db: asyncpg.Pool,
    s3: Any,
) -> None:
    _, replicas = stack
    await replicas.ready("eraser-a", "eraser-b")
    seeded = await seed_sample(platform_db, s3, org.id, heavy=100)  # the subject owns ~10k rows
    subject = seeded.users[0]
    expected = seeded.rows_of(subject)
    assert expected > 10_000
    job_id = await submit_erasure(client, org, subject.email, window=7)

    async def started() -> store.Job | None:
        job = await _job(lethe_db, job_id)
        return job if job is not None and job.done >= 2000 else None

    await eventually(started, timeout=60, what="the job to erase its first batches")
    replicas.kill("eraser-a")
    replicas.start("eraser-c")

    async def soft_deleted() -> store.Job | None:
        job = await _job(lethe_db, job_id)
        return job if job is not None and job.status == "soft_deleted" else None

    job = await eventually(soft_deleted, timeout=120, what="the job to be soft-deleted")
    # Exact counts: nothing of the subject is live, every removed row is held exactly once.
    assert job.total == expected and job.done == expected
    assert await _live_rows(platform_db, subject.id) == 0
    async with platform_db.acquire() as conn:
        assert await store.restoration_rows(conn, job_id) == expected
    assert job.verification is not None and job.verification["ok"] is True
    assert job.needs_review == []
    # Both replicas (and the one started after the kill) did chunks of this one job.
    workers = {
        r[0]
        for r in await lethe_db.fetch(
            "SELECT DISTINCT done_by FROM lethe.erase_chunks WHERE job_id = $1", job_id
        )
    }
    pids = {w.rsplit(":", 1)[1] for w in workers}
    assert str(replicas.pids["eraser-a"]) in pids and str(replicas.pids["eraser-b"]) in pids

    # Intake follows from the progress topic: wait for it to catch up with the eraser.
    async def intake_view() -> dict[str, Any] | None:
        view = (await client.get(f"/v1/jobs/{job_id}", headers=org.headers)).json()
        return view if view["status"] == "soft_deleted" else None

    view = await eventually(intake_view, timeout=30, what="intake to show the soft delete")
    assert view["done"] == expected


async def test_cancel_and_restore_commands_from_the_job_topic(
    stack: tuple[str, Replicas],
    client: httpx.AsyncClient,
    org: Org,
    platform_db: asyncpg.Pool,
    lethe_db: asyncpg.Pool,
    s3: Any,
    prepared: infra.Endpoints,
) -> None:
    seeded = await seed_sample(platform_db, s3, org.id, heavy=20)
    subject = seeded.users[0]
    before = await _live_rows(platform_db, subject.id)
    job_id = await submit_erasure(client, org, subject.email, window=7)

    async def some_done() -> store.Job | None:
        job = await _job(lethe_db, job_id)
        return job if job is not None and job.done > 0 else None

    await eventually(some_done, timeout=60, what="the first batch")
    await _command(prepared, job_id, org.id, CancelErasure(reason="wrong subject"))

    async def cancelled() -> store.Job | None:
        job = await _job(lethe_db, job_id)
        return job if job is not None and job.status == "cancelled" else None

    job = await eventually(cancelled, timeout=30, what="the cancel")
    assert 0 < job.done < job.total
    await _command(prepared, job_id, org.id, RestoreErasure(reason="cancelled"))

    async def restored() -> dict[str, Any] | None:
        view = (await client.get(f"/v1/jobs/{job_id}", headers=org.headers)).json()
        return view if view["status"] == "restored" else None

    await eventually(restored, timeout=30, what="the restore")
    assert await _live_rows(platform_db, subject.id) == before


async def _command(
    ep: infra.Endpoints, job_id: uuid.UUID, org_id: str, payload: CancelErasure | RestoreErasure
) -> None:
    env = make_event(payload, actor=Actor(kind="test", id="e2e"), job_id=job_id, org_id=org_id)
    producer = AIOKafkaProducer(bootstrap_servers=ep.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(JOBS_ERASE, env.model_dump_json().encode(), key=env.key())
    finally:
        await producer.stop()
