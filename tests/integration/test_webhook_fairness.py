"""Webhooks leave the notifier's consumer at once and are sent fairly: one organisation's slow
endpoint (a real HTTP server holding every request) delays only that organisation's webhooks,
and a recorded delivery survives a notifier restart. The notifier runs in this process
against the real Kafka and Postgres; the endpoints are real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from services.notifier import store as notifier_store
from services.notifier.app import assemble
from services.notifier.settings import NotifierSettings
from shared import signing
from shared.events import Actor, Envelope, make_event
from shared.events.progress import JobCompleted
from shared.events.topics import PROGRESS
from tests.helpers import eventually

pytestmark = pytest.mark.integration
ACTOR = Actor(kind="service", id="test")
HOLD = 10.0  # how long the slow endpoint holds each request
JOBS = 4  # state changes per organisation
PER_ORG = 2


class Endpoint:
    """A customer's webhook endpoint: verifies the signature, records when each delivery
    arrived and was answered; holds every request `hold` seconds, or answers 503 while
    `down`."""

    def __init__(self, hold: float = 0.0) -> None:
        self.hold, self.down, self.secret = hold, False, ""
        self.arrived: dict[str, float] = {}  # event id -> when the request came in
        self.answered: dict[str, float] = {}  # event id -> when it was answered 200
        self.refused = 0
        self.open = self.most_open = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status = outer.handle(dict(self.headers), body)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        if self.down:
            with self.lock:
                self.refused += 1
            return 503
        signing.verify(self.secret, headers.get(signing.HEADER), body)
        event_id = json.loads(body)["event_id"]
        with self.lock:
            self.arrived.setdefault(event_id, time.monotonic())
            self.open += 1
            self.most_open = max(self.most_open, self.open)
        time.sleep(self.hold)
        with self.lock:
            self.open -= 1
            self.answered[event_id] = time.monotonic()
        return 200


@pytest.fixture
def servers() -> Iterator[list[Endpoint]]:
    made: list[Endpoint] = []
    yield made
    for e in made:
        e.server.shutdown()


@pytest.fixture(scope="module")
def settings(base_settings: dict[str, Any]) -> NotifierSettings:
    return NotifierSettings(
        **base_settings,
        webhook_timeout_seconds=HOLD + 5,  # the slow endpoint answers, late
        webhook_per_org_concurrency=PER_ORG,
        notify_retries=50,
        notify_backoff_seconds=0.2,
        webhook_max_backoff_seconds=1,
        callback_allowed_networks=["127.0.0.0/8"],  # the endpoints are on 127.0.0.1
    )


@asynccontextmanager
async def notifier(settings: NotifierSettings) -> AsyncIterator[None]:
    app, _ = assemble(settings)
    async with app:
        yield


async def _hook(pool: asyncpg.Pool, org_id: str, endpoint: Endpoint) -> None:
    hook = await notifier_store.add_webhook(pool, org_id, endpoint.url)
    endpoint.secret = hook.secret


def _completed(org_id: str) -> Envelope:
    return make_event(
        JobCompleted(done=1, total=1, verification={"ok": True}),
        actor=ACTOR,
        org_id=org_id,
        job_id=uuid.uuid4(),
        subject_hash="f" * 64,
    )


async def _publish(bootstrap: str, events: list[Envelope]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for env in events:
            await producer.send_and_wait(PROGRESS, env.model_dump_json().encode(), key=env.key())
    finally:
        await producer.stop()


async def _statuses(pool: asyncpg.Pool, events: list[Envelope]) -> list[str]:
    rows = await pool.fetch(
        "SELECT status FROM lethe.deliveries WHERE command_event_id = ANY($1::uuid[])",
        [e.event_id for e in events],
    )
    return [r["status"] for r in rows]


async def test_a_slow_endpoint_delays_only_its_own_organisation(
    lethe_db: asyncpg.Pool,
    settings: NotifierSettings,
    servers: list[Endpoint],
    org_factory: Any,
) -> None:
    slow, fast = Endpoint(hold=HOLD), Endpoint()
    servers += [slow, fast]
    org_a, org_b = await org_factory(), await org_factory()
    await _hook(lethe_db, org_a, slow)
    await _hook(lethe_db, org_b, fast)
    a_events = [_completed(org_a) for _ in range(JOBS)]
    b_events = [_completed(org_b) for _ in range(JOBS)]
    async with notifier(settings):
        t0 = time.monotonic()
        # A's state changes first: with webhooks sent in the consumer, B's would queue
        # behind A's held requests (10 s each).
        await _publish(settings.kafka_bootstrap_servers, a_events + b_events)
        await eventually(
            lambda: _async(len(fast.answered) == JOBS), what="B's webhooks", timeout=60
        )
        b_done = max(fast.answered.values()) - t0
        await eventually(
            lambda: _async(len(slow.answered) == JOBS), what="A's webhooks", timeout=120
        )
        a_done = max(slow.answered.values()) - t0
        await eventually(
            lambda: _sent(lethe_db, a_events + b_events), what="all rows sent", timeout=30
        )
    a_first = min(slow.answered.values()) - t0
    print(
        f"\norg B (fast): {len(fast.answered)}/{JOBS} webhooks answered within {b_done:.2f} s"
        f"\norg A (slow, holds {HOLD:.0f} s): first answered at {a_first:.2f} s, "
        f"{len(slow.answered)}/{JOBS} within {a_done:.2f} s; at most {slow.most_open} open "
        f"at once (limit {PER_ORG})"
    )
    assert sorted(fast.answered) == sorted(str(e.event_id) for e in b_events)
    assert sorted(slow.answered) == sorted(str(e.event_id) for e in a_events)
    assert b_done < a_first  # every one of B's before the first of A's is answered
    assert b_done < HOLD / 2
    assert slow.most_open <= PER_ORG  # A holds at most its own slots
    assert a_done >= 2 * HOLD * 0.9  # A's four went two at a time, not all at once


async def test_a_recorded_webhook_survives_a_notifier_restart(
    lethe_db: asyncpg.Pool,
    settings: NotifierSettings,
    servers: list[Endpoint],
    org_factory: Any,
) -> None:
    down = Endpoint()
    down.down = True
    servers.append(down)
    org_c = await org_factory()
    await _hook(lethe_db, org_c, down)
    env = _completed(org_c)
    async with notifier(settings):
        await _publish(settings.kafka_bootstrap_servers, [env])
        await eventually(lambda: _async(down.refused >= 2), what="failed attempts", timeout=60)
    row = await lethe_db.fetchrow(
        "SELECT status, attempts, last_error FROM lethe.deliveries WHERE command_event_id = $1",
        env.event_id,
    )
    assert row is not None and row["status"] == "pending", row  # recorded, not given up
    assert "HTTPStatusError 503" in row["last_error"] and down.url not in row["last_error"]
    tried = row["attempts"]
    down.down = False
    async with notifier(settings):  # its consumer's offset is committed: only the row is left
        await eventually(lambda: _sent(lethe_db, [env]), what="the webhook sent", timeout=60)
    assert list(down.answered) == [str(env.event_id)]
    attempts = await lethe_db.fetchval(
        "SELECT attempts FROM lethe.deliveries WHERE command_event_id = $1", env.event_id
    )
    print(f"\nrestart: {tried} failed attempt(s) before the restart, sent at attempt {attempts}")
    assert attempts == tried + 1


async def _sent(pool: asyncpg.Pool, events: list[Envelope]) -> bool:
    statuses = await _statuses(pool, events)
    return len(statuses) == len(events) and set(statuses) == {"sent"}


async def _async(value: Any) -> Any:
    return value


@pytest.fixture
def org_factory(lethe_db: asyncpg.Pool) -> Any:
    from services.intake import store as intake_store

    async def make() -> str:
        org_id = f"org-{uuid.uuid4().hex[:12]}"
        await intake_store.create_org(lethe_db, org_id, f"Test Org {org_id}")
        return org_id

    return make
