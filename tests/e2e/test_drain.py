"""SIGTERM drains every service (the eraser's replicas: tests/e2e/test_ops_shutdown.py): it
stops taking messages, /readyz answers 503 while it drains, what it holds is finished and
committed, it exits 0 within the grace period, and nothing is lost: what it had not taken is
done by the next process of its group.

One stack for the module; each test replaces one service of it with processes of its own
(the replacement keeps running afterwards, so the stack stays whole)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from deploy.local import infra
from deploy.local.stack import _free_port, wait_http
from shared.auditchain.verify import verify_chain
from shared.events import Actor, make_event
from shared.events.notifications import SendEmail
from shared.events.requests import AuthFailed
from shared.events.topics import AUDIT, NOTIFICATIONS, REQUESTS
from tests.conftest import Org
from tests.e2e.conftest import Services
from tests.helpers import eventually, job_in, mails_to, submit, submit_erasure
from tests.seeding import seed_sample

pytestmark = pytest.mark.e2e
GRACE = 30.0
DRAINED = "drained: every message in hand finished and committed"
ACTOR = Actor(kind="test", id="drain")


class Proc:
    """One service process of a test, with an ops port (intake: its HTTP port)."""

    def __init__(self, services: Services, name: str, service: str, env: dict[str, str]):
        self.services, self.name = services, name
        port = _free_port()
        key = "LETHE_HTTP_PORT" if service == "intake" else "LETHE_OPS_PORT"
        extra = {"LETHE_SHUTDOWN_GRACE_SECONDS": str(GRACE), key: str(port), **env}
        self.pid = services.start(name, service, extra)
        self.url = f"http://127.0.0.1:{port}"

    async def readyz(self, status: int) -> dict[str, Any] | None:
        try:
            async with httpx.AsyncClient(timeout=5) as c:
                r = await c.get(f"{self.url}/readyz")
        except httpx.HTTPError:
            return None
        return dict(r.json()) if r.status_code == status else None

    async def ready(self) -> dict[str, Any]:
        return await eventually(lambda: self.readyz(200), timeout=90, what=f"{self.name} ready")

    def sigterm(self) -> float:
        os.kill(self.pid, signal.SIGTERM)
        return time.monotonic()

    async def exited_drained(self, since: float) -> None:
        """Exit code 0 within the grace period, after a drain that finished its messages."""
        code = await asyncio.to_thread(infra.wait_exit, self.pid, GRACE + 5)
        took = time.monotonic() - since
        log = self.services.log(self.name)
        assert code == 0, log[-3000:]
        assert took < GRACE, f"{self.name} exited after {took:.1f}s, grace {GRACE}s"
        assert DRAINED in log, log[-3000:]


@pytest.fixture
async def client(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=15) as c:
        yield c


async def _publish(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        sent = [await producer.send(topic, value, key=key) for key, value in messages]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _job(client: httpx.AsyncClient, org: Org, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}", headers=org.headers)).json()
    return job


# --------------------------------------------------------------------------- exporter


async def test_exporter_drains_finishes_its_export_and_leaves_the_next_to_its_successor(
    services: Services,
    client: httpx.AsyncClient,
    org: Org,
    platform_db: asyncpg.Pool,
    s3: Any,
) -> None:
    services.stop("exporter")
    # Slow enough that the signal lands mid-export, short enough to finish within the grace.
    slow = {"LETHE_EXPORT_RATE_LIMIT_ROWS": "25", "LETHE_EXPORT_BATCH_ROWS": "10"}
    first = Proc(services, "drain-exporter-1", "exporter", slow)
    ready = await first.ready()
    assert ready["checks"] == {
        "kafka": "ok",
        "postgres": "ok",
        "platform_postgres": "ok",
        "s3:lethe-exports": "ok",
        "s3:lethe-platform": "ok",
    }
    seeded = await seed_sample(platform_db, s3, org.id, users=2, conversations_per_user=2)
    held = await submit(
        client, org, {"type": "export", "subject": {"email": seeded.users[0].email}}
    )

    async def exporting() -> bool:
        job = await _job(client, org, held)
        return job["status"] == "running" and job["done"] > 0

    await eventually(exporting, timeout=60, what="the export to be under way")
    since = first.sigterm()
    draining = await eventually(lambda: first.readyz(503), timeout=10, what="503 while draining")
    assert draining == {"status": "unready", "checks": {"shutdown": "draining"}}
    # Asked for while the exporter drains: it must not take it.
    later = await submit(
        client, org, {"type": "export", "subject": {"email": seeded.users[1].email}}
    )
    await first.exited_drained(since)
    done = await job_in(client, org, held, ("ready",), timeout=30)
    assert done["done"] == done["total"] > 0
    assert (await _job(client, org, later))["status"] == "pending"

    Proc(services, "drain-exporter-2", "exporter", {})
    after = await job_in(client, org, later, ("ready",), timeout=90)
    assert after["done"] == after["total"] > 0


# --------------------------------------------------------------------------- eraser


async def test_eraser_readyz_names_its_parts_and_answers_503_while_it_drains(
    services: Services,
    client: httpx.AsyncClient,
    org: Org,
    platform_db: asyncpg.Pool,
    s3: Any,
) -> None:
    services.stop("eraser")
    # One chunk of 100 rows at 50 rows/s: two seconds in hand when the signal comes.
    slow = {
        "LETHE_ERASE_BATCH_SIZE": "100",
        "LETHE_ERASE_RATE_LIMIT_ROWS": "50",
        "LETHE_ERASE_CONCURRENCY": "1",
    }
    first = Proc(services, "drain-eraser-1", "eraser", slow)
    ready = await first.ready()
    assert ready["checks"] == {
        "kafka": "ok",
        "postgres": "ok",
        "platform_postgres": "ok",
        "s3:lethe-platform": "ok",
    }
    seeded = await seed_sample(platform_db, s3, org.id, users=2, heavy=2)
    subject = seeded.users[0]
    job_id = str(await submit_erasure(client, org, subject.email, window=7))

    async def erasing() -> bool:
        return (await _job(client, org, job_id))["done"] >= 100

    await eventually(erasing, timeout=60, what="the first chunk erased")
    since = first.sigterm()
    draining = await eventually(lambda: first.readyz(503), timeout=10, what="503 while draining")
    assert draining == {"status": "unready", "checks": {"shutdown": "draining"}}
    await first.exited_drained(since)
    assert (await _job(client, org, job_id))["done"] < seeded.rows_of(subject)

    Proc(services, "drain-eraser-2", "eraser", {})
    job = await job_in(client, org, job_id, ("soft_deleted",), timeout=120)
    assert job["done"] == job["total"] == seeded.rows_of(subject)


# --------------------------------------------------------------------------- notifier


async def test_notifier_drains_and_its_successor_sends_the_rest_each_once(
    services: Services, org: Org, prepared: infra.Endpoints
) -> None:
    services.stop("notifier")
    first = Proc(services, "drain-notifier-1", "notifier", {})
    assert (await first.ready())["checks"] == {"kafka": "ok", "postgres": "ok"}
    n = 120
    to = [f"drain-{i}-{uuid.uuid4().hex[:6]}@{org.id}.test" for i in range(n)]
    messages = []
    for address in to:
        env = make_event(
            SendEmail(
                template="job_failed",
                to=address,
                audience="requester",
                context={"job_id": str(uuid.uuid4()), "job_type": "erasure", "reason": "test"},
            ),
            actor=ACTOR,
            job_id=uuid.uuid4(),
            org_id=org.id,
        )
        messages.append((env.key(), env.model_dump_json().encode()))
    await _publish(prepared.kafka_bootstrap_servers, NOTIFICATIONS, messages)

    def delivered() -> dict[str, int]:
        mail = {a: 0 for a in to}
        for m in mails_to(prepared.mail_dir, f"@{org.id}.test"):
            for a in str(m["To"]).split(","):
                if a.strip() in mail:
                    mail[a.strip()] += 1
        return mail

    async def some() -> bool:
        return any(delivered().values())

    await eventually(some, timeout=60, what="the first mails")
    since = first.sigterm()
    await first.exited_drained(since)
    at_stop = sum(1 for v in delivered().values() if v)
    assert at_stop < n, "every mail went before the signal: nothing was tested"

    Proc(services, "drain-notifier-2", "notifier", {})

    async def all_sent() -> dict[str, int] | None:
        mail = delivered()
        return mail if all(mail.values()) else None

    mail = await eventually(all_sent, timeout=120, what="every mail")
    assert set(mail.values()) == {1}, {a: c for a, c in mail.items() if c != 1}


# --------------------------------------------------------------------------- auditor


async def test_auditor_drains_and_its_successor_appends_the_rest_each_once(
    services: Services, org: Org, prepared: infra.Endpoints, lethe_db: asyncpg.Pool
) -> None:
    services.stop("auditor")
    first = Proc(services, "drain-auditor-1", "auditor", {})
    assert (await first.ready())["checks"] == {"kafka": "ok", "postgres": "ok"}
    # The auditor appends in batches of up to 1,000 (thousands a second on an idle machine):
    # enough that the signal lands mid-stream, on a busy machine too.
    n = 50_000
    events = [
        make_event(
            AuthFailed(reason=f"drain {i}", method="GET", path="/v1/jobs", client=None),
            actor=ACTOR,
            org_id=org.id,
        )
        for i in range(n)
    ]
    ids = {e.event_id for e in events}
    first_ids = [e.event_id for e in events[:1000]]
    # Published while the auditor appends: the signal goes as soon as the first rows are in,
    # not after a publish that a busy machine may stretch over the whole stream.
    publishing = asyncio.create_task(
        _publish(
            prepared.kafka_bootstrap_servers,
            AUDIT,
            [(e.key(), e.model_dump_json().encode()) for e in events],
        )
    )

    async def appended() -> list[uuid.UUID]:
        rows = await lethe_db.fetch(
            "SELECT event_id FROM lethe.audit_log WHERE event_id = ANY($1)", list(ids)
        )
        return [r[0] for r in rows]

    async def started() -> bool:
        # Cheap: the first thousand published (one partition: appended first); polling the
        # whole list would itself take a good part of the run.
        return bool(
            await lethe_db.fetchval(
                "SELECT EXISTS (SELECT 1 FROM lethe.audit_log WHERE event_id = ANY($1))", first_ids
            )
        )

    await eventually(started, timeout=60, every=0.05, what="the first audit rows")
    since = first.sigterm()
    await first.exited_drained(since)
    await publishing
    at_stop = len(await appended())
    assert at_stop < n, "every event was appended before the signal: nothing was tested"

    Proc(services, "drain-auditor-2", "auditor", {})

    async def all_there() -> list[uuid.UUID] | None:
        rows = await appended()
        return rows if len(set(rows)) == n else None

    rows = await eventually(all_there, timeout=120, what="every audit row")
    assert len(rows) == n  # each once
    verdict = await verify_chain(lethe_db)  # two processes' appends make one valid chain
    assert verdict.ok, verdict


# --------------------------------------------------------------------------- intake


async def test_intake_drains_and_its_successor_takes_the_rest_each_once(
    services: Services, org: Org, prepared: infra.Endpoints, lethe_db: asyncpg.Pool
) -> None:
    services.stop("intake")
    try:
        first = Proc(services, "drain-intake-1", "intake", {})
        await first.ready()
        n = 150
        tag = uuid.uuid4().hex[:8]
        messages = [
            (
                org.id.encode(),
                json.dumps(
                    {
                        "org_id": org.id,
                        "source": "drain-test",
                        "request": {
                            "type": "erasure",
                            "subject": {"email": f"p{i}@{tag}.example"},
                            "request_id": f"drain-{tag}-{i}",
                        },
                    }
                ).encode(),
            )
            for i in range(n)
        ]
        await _publish(prepared.kafka_bootstrap_servers, REQUESTS, messages)

        async def jobs() -> list[str]:
            rows = await lethe_db.fetch(
                "SELECT request_id FROM lethe.jobs WHERE org_id = $1 AND request_id LIKE $2",
                org.id,
                f"drain-{tag}-%",
            )
            return [r[0] for r in rows]

        await eventually(jobs, timeout=60, what="the first jobs")
        since = first.sigterm()
        await first.exited_drained(since)
        at_stop = len(await jobs())
        assert at_stop < n, "every request was taken before the signal: nothing was tested"

        second = Proc(services, "drain-intake-2", "intake", {})
        await second.ready()

        async def all_there() -> list[str] | None:
            rows = await jobs()
            return rows if len(set(rows)) == n else None

        rows = await eventually(all_there, timeout=120, what="every request a job")
        assert len(rows) == n  # each once
        infra.stop_process("drain-intake-2", services.state_dir)
    finally:
        # The stack's intake again, on its port, for the module's other tests.
        services.start("intake", "intake")
        wait_http(f"{services.url}/healthz", log=services.state_dir / "logs" / "intake.log")
