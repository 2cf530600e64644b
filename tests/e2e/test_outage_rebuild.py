"""Outages ridden out, and job state rebuilt from events, with the five services as processes.

- Postgres drops the eraser's connections again and again for 5 s in the middle of an erasure
  (`pg_terminate_backend`, as in a failover): every chunk is retried until the database
  answers (the retry horizon, 60 s here), the job completes, nothing is left for review and
  nothing is dead-lettered.
- A job whose row lost its progress (left `running` in phase `erasing`, its counts and review
  items gone, its timeline short) is put right by `lethe jobs rebuild --apply` from the
  events in the audit trail.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from deploy.local import infra
from deploy.local.sample.seed import SeededOrg
from services.cli.dlq import read_all
from services.intake.domain.progress import STATE_FIELDS
from tests.conftest import Org
from tests.e2e.conftest import Services
from tests.helpers import eventually, job_in, submit_erasure
from tests.seeding import seed_sample

pytestmark = pytest.mark.e2e
APP = "lethe-outage-eraser"  # how this module's eraser names its Postgres sessions
SERVICES_ENV = {"LETHE_DLQ_RETRY_HORIZON_SECONDS": "60"}


def _named(url: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}application_name={APP}"


@pytest.fixture(scope="module")
def api_url(services: Services) -> str:
    """This module's eraser: small, rate-limited batches (an erasure lasts seconds), and its
    database sessions named, so the test can cut exactly them."""
    services.stop("eraser")
    env = services.env()
    platform = env["LETHE_PLATFORM_DATABASE_URL"]
    services.start(
        "eraser-outage",
        "eraser",
        {
            "DATABASE_URL": _named(env["DATABASE_URL"]),
            "LETHE_DATABASE_URL": _named(env["DATABASE_URL"]),
            "PLATFORM_DATABASE_URL": _named(platform),
            "LETHE_PLATFORM_DATABASE_URL": _named(platform),
            "LETHE_ERASE_BATCH_SIZE": "5",
            "LETHE_ERASE_RATE_LIMIT_ROWS": "25",
        },
    )
    return services.url


@pytest.fixture
async def seeded(org: Org, platform_db: asyncpg.Pool, s3: Any) -> SeededOrg:
    return await seed_sample(
        platform_db, s3, org.id, heavy=2, conversations_per_user=2, messages_per_conversation=30
    )


async def _cut_connections(admin: asyncpg.Connection, seconds: float) -> int:
    """Terminate every session of the eraser, again and again, for `seconds`; how many."""
    cut, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        cut += len(
            await admin.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = $1 AND pid <> pg_backend_pid()",
                APP,
            )
        )
        await asyncio.sleep(0.2)
    return cut


async def test_postgres_cutting_the_erasers_connections_mid_job_loses_nothing(
    api_url: str,
    org: Org,
    seeded: SeededOrg,
    prepared: infra.Endpoints,
    platform_db: asyncpg.Pool,
) -> None:
    subject = seeded.users[0]
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        job_id = await submit_erasure(client, org, subject.email, window=0)

        async def midway() -> bool:
            job = (await client.get(f"/v1/jobs/{job_id}", headers=org.headers)).json()
            return bool(job["done"]) and job["done"] < job["total"]

        await eventually(midway, what="the erasure part-way", every=0.05, timeout=60)
        admin = await asyncpg.connect(prepared.database_url)
        try:
            cut = await _cut_connections(admin, 5.0)
        finally:
            await admin.close()
        job = await job_in(
            client, org, str(job_id), ("completed", "completed_with_errors", "failed")
        )
    rows = seeded.rows_of(subject)
    print(f"sessions cut: {cut}; job {job['status']}, done {job['done']}/{job['total']} of {rows}")
    assert cut >= 2
    assert job["status"] == "completed", job
    assert job["done"] == job["total"] == rows
    assert job["needs_review"] == [] and job["result"]["verification"]["ok"] is True
    assert await platform_db.fetchval("SELECT count(*) FROM users WHERE id = $1", subject.id) == 0
    dead = [
        d for d in await read_all(prepared.kafka_bootstrap_servers) if str(job_id) in str(d.value)
    ]
    assert dead == []


async def _lethe(prepared: infra.Endpoints, *args: str) -> tuple[int, str]:
    env = {
        **os.environ,
        "DATABASE_URL": prepared.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": prepared.kafka_bootstrap_servers,
        "LETHE_ENV_FILE": "/nonexistent",
        "COLUMNS": "250",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from services.cli import app; app()",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def _state(db: asyncpg.Pool, job_id: uuid.UUID) -> dict[str, Any]:
    row = await db.fetchrow(
        f"SELECT {', '.join(STATE_FIELDS)} FROM lethe.jobs WHERE id = $1", job_id
    )
    return dict(row)


async def test_a_job_that_lost_its_progress_is_rebuilt_from_its_events(
    api_url: str,
    org: Org,
    seeded: SeededOrg,
    prepared: infra.Endpoints,
    lethe_db: asyncpg.Pool,
) -> None:
    subject = seeded.users[1]
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        job_id = await submit_erasure(client, org, subject.email, window=7)
        await job_in(client, org, str(job_id), ("soft_deleted",))

    async def audited() -> bool:  # the auditor has recorded the soft delete
        return bool(
            await lethe_db.fetchval(
                "SELECT 1 FROM lethe.audit_log WHERE job_id = $1 AND action = 'ErasureSoftDeleted'",
                job_id,
            )
        )

    await eventually(audited, what="the soft delete in the audit trail")
    truth = await _state(lethe_db, job_id)
    # The progress consumer never applied the last events (dead-lettered during an outage):
    # stuck in erasing, counts behind, no review items, the timeline short of them.
    await lethe_db.execute(
        "UPDATE lethe.jobs SET status = 'running', phase = 'erasing', done = 5, result = NULL, "
        "purge_after = NULL, eta_seconds = 99 WHERE id = $1",
        job_id,
    )
    await lethe_db.execute(
        "DELETE FROM lethe.job_events WHERE job_id = $1 AND type IN "
        "('ErasureSoftDeleted', 'BatchErased')",
        job_id,
    )

    code, shown = await _lethe(prepared, "jobs", "rebuild", str(job_id))
    assert code == 2, shown
    assert "running" in shown and "soft_deleted" in shown and "--apply" in shown
    assert (await _state(lethe_db, job_id))["status"] == "running"  # only shown, not written

    code, applied = await _lethe(prepared, "jobs", "rebuild", str(job_id), "--apply")
    assert code == 0, applied
    rebuilt = await _state(lethe_db, job_id)
    print(f"rebuilt: {rebuilt['status']} {rebuilt['done']}/{rebuilt['total']}")
    # Everything as it was; the rate is the one column that may differ: it is a snapshot of
    # whichever batch report arrived last, and reports of batches run side by side can arrive
    # in another order than they happened.
    assert rebuilt.pop("rows_per_second") > 0
    truth.pop("rows_per_second")
    assert rebuilt == truth
    timeline = await lethe_db.fetchval(
        "SELECT count(*) FROM lethe.job_events WHERE job_id = $1 AND type = 'ErasureSoftDeleted'",
        job_id,
    )
    assert timeline == 1
    code, again = await _lethe(prepared, "jobs", "rebuild", str(job_id))
    assert code == 0 and "agrees" in again, again
