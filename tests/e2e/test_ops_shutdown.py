"""Operations with the services as processes: three eraser replicas, one stopped by SIGTERM in
the middle of a job, and the metrics endpoints moving while a job runs."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
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
from shared.events.notifications import SendEmail
from shared.events.topics import JOBS_ERASE, NOTIFICATIONS
from tests.conftest import Org
from tests.e2e.conftest import Services
from tests.helpers import eventually, submit_erasure
from tests.seeding import seed_sample

pytestmark = pytest.mark.e2e
GRACE = 10.0
ERASERS = ("ops-eraser-1", "ops-eraser-2", "ops-eraser-3")
ERASER_ENV = {
    "LETHE_ERASE_BATCH_SIZE": "250",
    # Slow enough that the signal lands mid-job, fast enough for a short test.
    "LETHE_ERASE_RATE_LIMIT_ROWS": "1000",
    "LETHE_ERASE_PURGE_INTERVAL_SECONDS": "1",
    "LETHE_SHUTDOWN_GRACE_SECONDS": str(GRACE),
}
NOTIFIER_ENV = {"LETHE_NOTIFY_RETRIES": "2", "LETHE_NOTIFY_BACKOFF_SECONDS": "0.1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Stack:
    """The module's stack with processes of its own, each with an ops port."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.ep, self.state_dir, self.url = services.ep, services.state_dir, services.url
        self.pids: dict[str, int] = {}
        self.ops: dict[str, str] = {}

    def start(self, name: str, service: str, extra: dict[str, str]) -> None:
        port = _free_port()
        self.pids[name] = self.services.start(name, service, {**extra, "LETHE_OPS_PORT": str(port)})
        self.ops[name] = f"http://127.0.0.1:{port}"

    def log(self, name: str) -> str:
        return self.services.log(name)

    async def ready(self, *names: str) -> None:
        async def all_ready() -> bool:
            async with httpx.AsyncClient(timeout=5) as c:
                for n in names:
                    try:
                        if (await c.get(f"{self.ops[n]}/readyz")).status_code != 200:
                            return False
                    except httpx.HTTPError:
                        return False
            return True

        await eventually(all_ready, timeout=90, what=f"{', '.join(names)} ready")


@pytest.fixture(scope="module")
def stack(services: Services) -> Stack:
    """The five services; the eraser as three replicas and the notifier with an ops port."""
    services.stop("eraser")
    services.stop("notifier")
    s = Stack(services)
    for name in ERASERS:
        s.start(name, "eraser", ERASER_ENV)
    s.start("ops-notifier", "notifier", NOTIFIER_ENV)
    return s


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as c:
        yield c


async def _submit(client: httpx.AsyncClient, org: Org, email: str, window: int) -> uuid.UUID:
    notify = f"privacy@{org.id}.example"
    return await submit_erasure(client, org, email, window=window, notify_email=notify)


async def _job_with(
    lethe_db: asyncpg.Pool, job_id: uuid.UUID, *, status: str | None = None, done: int = 0
) -> store.Job | None:
    job = await store.get_job(lethe_db, job_id)
    if job is None or job.done < done or (status is not None and job.status != status):
        return None
    return job


async def test_sigterm_mid_job_drains_one_replica_and_the_job_completes_exactly(
    stack: Stack,
    client: httpx.AsyncClient,
    org: Org,
    platform_db: asyncpg.Pool,
    lethe_db: asyncpg.Pool,
    s3: Any,
) -> None:
    await stack.ready(*ERASERS)
    seeded = await seed_sample(platform_db, s3, org.id, heavy=100)  # the subject owns ~10k rows
    subject = seeded.users[0]
    expected = seeded.rows_of(subject)
    job_id = await _submit(client, org, subject.email, window=7)
    await eventually(
        lambda: _job_with(lethe_db, job_id, done=2000), timeout=60, what="the first batches"
    )

    stopped = ERASERS[0]
    pid = stack.pids[stopped]
    started = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    code = infra.wait_exit(pid, GRACE + 5)
    took = time.monotonic() - started
    assert code == 0, stack.log(stopped)[-3000:]
    assert took < GRACE, f"exited after {took:.1f}s, grace {GRACE}s"
    log = stack.log(stopped)
    assert "drained: every message in hand finished and committed" in log, log[-3000:]
    done_at_stop = (await store.get_job(lethe_db, job_id)).done  # type: ignore[union-attr]
    assert done_at_stop < expected, "the job ended before the signal: nothing was tested"

    job = await eventually(
        lambda: _job_with(lethe_db, job_id, status="soft_deleted"), timeout=120, what="the job"
    )
    # Exact: every row of the subject removed once and held once in the restoration log.
    assert job.total == expected and job.done == expected
    assert job.needs_review == []
    async with platform_db.acquire() as conn:
        assert await store.restoration_rows(conn, job_id) == expected
    assert job.verification is not None and job.verification["ok"] is True
    workers = {
        r[0].rsplit(":", 1)[1]
        for r in await lethe_db.fetch(
            "SELECT DISTINCT done_by FROM lethe.erase_chunks WHERE job_id = $1", job_id
        )
    }
    assert str(pid) in workers  # the stopped replica did its share before it went
    assert {str(stack.pids[n]) for n in ERASERS[1:]} & workers


# --------------------------------------------------------------------------- metrics

_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$")


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m and not line.startswith("#"):
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            out.append((m.group(1), labels, float(m.group(3))))
    return out


def _sum(texts: list[str], name: str, **labels: str) -> float:
    return sum(
        v
        for text in texts
        for n, ls, v in _samples(text)
        if n == name and all(ls.get(k) == want for k, want in labels.items())
    )


async def _scrape(urls: list[str]) -> list[str]:
    async with httpx.AsyncClient(timeout=10) as c:
        return [(await c.get(f"{u}/metrics")).text for u in urls]


async def _publish(bootstrap: str, topic: str, value: bytes, key: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def test_metrics_move_during_a_job(
    stack: Stack,
    client: httpx.AsyncClient,
    org: Org,
    platform_db: asyncpg.Pool,
    lethe_db: asyncpg.Pool,
    s3: Any,
) -> None:
    erasers = [n for n in ERASERS if infra.process_alive(n, stack.state_dir)]
    await stack.ready(*erasers, "ops-notifier")
    eraser_urls = [stack.ops[n] for n in erasers]
    urls = [*eraser_urls, stack.ops["ops-notifier"], stack.url]
    before = await _scrape(urls)
    seeded = await seed_sample(platform_db, s3, org.id, heavy=4)
    subject = seeded.users[0]
    expected = seeded.rows_of(subject)
    job_id = await _submit(client, org, subject.email, window=0)  # purged at once: completed
    # A poison command (dead-lettered by an eraser) and an email nobody can render (given up).
    await _publish(stack.ep.kafka_bootstrap_servers, JOBS_ERASE, b"not an event", b"poison")
    bad = make_event(
        SendEmail(template="no_such_template", to="x@example.com", context={}),
        actor=Actor(kind="test", id="ops"),
        job_id=uuid.uuid4(),
        org_id=org.id,
    )
    await _publish(
        stack.ep.kafka_bootstrap_servers, NOTIFICATIONS, bad.model_dump_json().encode(), bad.key()
    )

    async def moved() -> list[str] | None:
        after = await _scrape(urls)
        done = (
            _sum(after, "lethe_rows_erased_total") - _sum(before, "lethe_rows_erased_total")
            >= expected
            and _sum(after, "lethe_dlq_messages_total", source_topic=JOBS_ERASE)
            > _sum(before, "lethe_dlq_messages_total", source_topic=JOBS_ERASE)
            and _sum(after, "lethe_notifications_total", outcome="failed")
            > _sum(before, "lethe_notifications_total", outcome="failed")
            and _sum(after, "lethe_jobs", type="erasure", status="completed")
            > _sum(before, "lethe_jobs", type="erasure", status="completed")
            # The requester's completion email, after the job completed.
            and _sum(after, "lethe_notifications_total", channel="email", outcome="sent")
            > _sum(before, "lethe_notifications_total", channel="email", outcome="sent")
        )
        return after if done else None

    after = await eventually(moved, timeout=90, what="the counters to move")
    assert (
        _sum(after, "lethe_rows_erased_total") - _sum(before, "lethe_rows_erased_total") == expected
    )
    batches = "lethe_message_duration_seconds_count"
    assert _sum(after, batches, topic="lethe.erase.tasks.v1") > _sum(
        before, batches, topic="lethe.erase.tasks.v1"
    )
    # Lag is reported per assigned partition of every group the process consumes: this
    # module's groups (its LETHE_KAFKA_GROUP_PREFIX), never the production names.
    prefix = stack.services.group_prefix
    assert prefix.startswith("test-")
    lag = [
        ls
        for text in after[: len(eraser_urls)]
        for n, ls, _ in _samples(text)
        if n == "lethe_consumer_lag"
    ]
    assert {ls["group"] for ls in lag} == {
        f"{prefix}lethe-eraser",
        f"{prefix}lethe-eraser-tasks",
        f"{prefix}lethe-eraser-cancels",
    }
    tasks_group = f"{prefix}lethe-eraser-tasks"
    assert _sum(after[: len(eraser_urls)], "lethe_consumer_partitions", group=tasks_group) == 12
    job = await store.get_job(lethe_db, job_id)
    assert job is not None and job.done == expected
