"""The notifier against the real SMTP sink, Postgres and Kafka: every template, owners and
requesters, exactly-once per recipient, retries while SMTP is down, signed webhooks (sent by
the webhook dispatcher, off the consumer; fairness across organisations:
test_webhook_fairness.py)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller

from deploy.local import infra
from deploy.local.parts.common import free_port
from deploy.local.smtp_sink import SinkHandler
from services.notifier import bootstrap, domain, service, webhooks
from services.notifier import store as notifier_store
from services.notifier.app import assemble
from services.notifier.handlers import Senders
from services.notifier.settings import NotifierSettings
from shared import netguard, signing
from shared.events import Actor, Envelope, make_event
from shared.events.notifications import TEMPLATES, SendEmail
from shared.events.progress import BatchErased, JobCompleted
from shared.events.topics import NOTIFICATIONS, PROGRESS
from tests.conftest import Org
from tests.helpers import eventually, mails_to

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
ACTOR = Actor(kind="service", id="test")
CLI = "from services.cli import app; app()"
CONTEXT: dict[str, Any] = {
    "job_type": "erasure",
    "rows": 42,
    "review_count": 3,
    "reason": "verification found data left",
    "link": "https://lethe.example/v1/exports/dl?token=abc&x=1",
    "expires_at": "2030-01-02T00:00:00+00:00",
    "purge_after": "2030-01-03T00:00:00+00:00",
    "due_at": "2030-01-04T00:00:00+00:00",
    "days_left": 5,
    "regulation": "GDPR Art. 12(3)",
    "extended_due_at": "2030-03-04T00:00:00+00:00",
    "received_at": "2029-12-04T00:00:00+00:00",
    "max_due_at": "2030-03-04T00:00:00+00:00",
}


def _free_port() -> int:
    return free_port()  # this xdist worker's own block (deploy/local/parts/common.py)


class PrivateSink:
    """An SMTP sink of this module's own (the shared one is never taken down)."""

    def __init__(self, mail_dir: Path) -> None:
        self.mail_dir, self.port = mail_dir, _free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(
            SinkHandler(self.mail_dir), hostname="127.0.0.1", port=self.port
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateSink]:
    s = PrivateSink(tmp_path_factory.mktemp("mail"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def running() -> dict[str, Senders]:
    """The dispatchers of the module's notifier, while it runs."""
    return {}


@pytest.fixture(scope="module")
async def notifier(
    base_settings: dict[str, Any], sink: PrivateSink, running: dict[str, Senders]
) -> AsyncIterator[NotifierSettings]:
    """The notifier in this process, mailing through the private sink, retrying quickly."""
    settings = NotifierSettings(
        **{**base_settings, "smtp_port": sink.port},
        notify_retries=8,
        notify_backoff_seconds=0.5,
        smtp_timeout_seconds=2,
        callback_allowed_networks=["127.0.0.0/8"],  # the webhook receivers are on 127.0.0.1
    )
    app, running["senders"] = assemble(settings)
    sink.start()  # up while the notifier works through what earlier modules left
    try:
        async with app:
            await _drain_backlog(base_settings["kafka_bootstrap_servers"], sink)
            sink.stop()
            yield settings
    finally:
        running.pop("senders", None)
        sink.stop()


@pytest.fixture
async def own_webhooks(running: dict[str, Senders]) -> AsyncIterator[None]:
    """The test sends webhooks with a dispatcher of its own: the module's notifier (when it
    runs) sends none meanwhile."""
    senders = running.get("senders")
    if senders is not None:
        await senders.webhooks.stop()
    yield
    if senders is not None:
        await senders.webhooks.start()


async def _drain_backlog(bootstrap: str, sink: PrivateSink) -> None:
    """Earlier modules may leave commands on the topic for this consumer group; get through
    them while the sink is up (a marker per partition, each consumed after that backlog), so
    a test that stops the sink waits only on its own retries."""
    marker = f"warmup-{uuid.uuid4().hex[:8]}@lethe.test"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        partitions = await producer.partitions_for(NOTIFICATIONS)
        for p in partitions:
            env = make_event(
                SendEmail(
                    template="job_completed",
                    to=marker,
                    context={**CONTEXT, "job_id": str(uuid.uuid4())},
                ),
                actor=ACTOR,
                org_id="warmup",
                job_id=uuid.uuid4(),
            )
            await producer.send_and_wait(
                NOTIFICATIONS, env.model_dump_json().encode(), key=env.key(), partition=p
            )
    finally:
        await producer.stop()
    await eventually(
        lambda: _async(len(mails_to(sink.mail_dir, marker)) == len(partitions)),
        what="the notifier to get through earlier commands",
        timeout=120,
    )


def _deps(pool: asyncpg.Pool, ep: infra.Endpoints, sent: list[Envelope]) -> service.NotifierDeps:
    s = NotifierSettings(
        database_url=ep.database_url, smtp_host=ep.smtp_host, smtp_port=ep.smtp_port
    )

    async def emit(topic: str, env: Envelope) -> None:
        sent.append(env)

    return bootstrap.build_deps(s, pool=pool, emit=emit)


def _command(org: Org, template: str, to: str | None, **kw: Any) -> Envelope:
    job = uuid.uuid4()
    return make_event(
        SendEmail(template=template, to=to, context={**CONTEXT, "job_id": str(job)}, **kw),
        actor=ACTOR,
        org_id=org.id,
        job_id=job,
        subject_hash="f" * 64,
    )


async def _publish(bootstrap: str, topic: str, env: Envelope) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, env.model_dump_json().encode(), key=env.key())
    finally:
        await producer.stop()


def _body(msg: EmailMessage, subtype: str) -> str:
    part = msg.get_body(preferencelist=(subtype,))
    assert part is not None
    content: str = part.get_content()
    return content


async def test_every_template_reaches_the_right_people(
    org: Org, lethe_db: asyncpg.Pool, prepared: infra.Endpoints
) -> None:
    requester = f"dpo-{uuid.uuid4().hex[:8]}@{org.id}.test"
    owners = [f"owner{i}-{uuid.uuid4().hex[:6]}@{org.id}.test" for i in range(2)]
    for o in owners:
        await notifier_store.add_contact(lethe_db, org.id, o)
    defaults = NotifierSettings()
    sent: list[Envelope] = []
    deps = _deps(lethe_db, prepared, sent)
    commands = {t: _command(org, t, requester) for t in TEMPLATES}
    for env in commands.values():
        await service.send_email(env, deps)

    async def all_arrived() -> bool:
        expected = sum(t in defaults.notify_requester_templates for t in TEMPLATES)
        return len(mails_to(prepared.mail_dir, requester)) == expected and all(
            len(mails_to(prepared.mail_dir, o))
            == sum(t in defaults.notify_owner_templates for t in TEMPLATES)
            for o in owners
        )

    await eventually(all_arrived, what="every email", timeout=20)
    for template, env in commands.items():
        job_id = str(env.job_id)
        to_requester = [m for m in mails_to(prepared.mail_dir, requester) if job_id in m["Subject"]]
        assert len(to_requester) == (template in defaults.notify_requester_templates), template
        for o in owners:
            got = [m for m in mails_to(prepared.mail_dir, o) if job_id in m["Subject"]]
            assert len(got) == (template in defaults.notify_owner_templates), (template, o)
            for m in got:  # one owner per mail: owners never see each other or the requester
                assert m["To"] == o
        for m in to_requester:
            assert m["To"] == requester and m["X-Lethe-Job"] == job_id
            text, html = _body(m, "plain"), _body(m, "html")
            assert job_id in text and job_id in html
            if template == "export_ready":
                assert CONTEXT["link"] in text
                assert 'href="https://lethe.example/v1/exports/dl?token=abc&amp;x=1"' in html
    subjects = {
        t: mails_to(prepared.mail_dir, owners[0] if t.startswith("deadline") else requester)
        for t in ("job_completed_review", "deadline_passed", "recovery_ends", "export_ready")
    }
    assert any("3 items need review" in m["Subject"] for m in subjects["job_completed_review"])
    assert any("past its legal deadline" in m["Subject"] for m in subjects["deadline_passed"])
    assert any("final tomorrow" in m["Subject"] for m in subjects["recovery_ends"])
    assert any("ready to download" in m["Subject"] for m in subjects["export_ready"])
    # Each delivery is in the audit trail, by recipient kind or keyed hash, never an address.
    audit = " ".join(e.model_dump_json() for e in sent)
    assert {e.type for e in sent} == {"NotificationSent"}
    assert requester not in audit and not any(o in audit for o in owners)
    assert "owner:" in audit and '"recipient":"requester"' in audit


async def test_audience_overrides_the_configuration(
    org: Org, lethe_db: asyncpg.Pool, prepared: infra.Endpoints
) -> None:
    owner = f"owner-{uuid.uuid4().hex[:6]}@{org.id}.test"
    await notifier_store.add_contact(lethe_db, org.id, owner)
    requester = f"dpo-{uuid.uuid4().hex[:8]}@{org.id}.test"
    env = _command(org, "job_completed", requester, audience="owners")
    await service.send_email(env, _deps(lethe_db, prepared, []))
    got = await eventually(
        lambda: _async(mails_to(prepared.mail_dir, owner)), what="owner mail", timeout=10
    )
    assert str(env.job_id) in got[0]["Subject"]
    assert mails_to(prepared.mail_dir, requester) == []


async def test_a_redelivered_command_sends_one_email(
    org: Org, lethe_db: asyncpg.Pool, prepared: infra.Endpoints
) -> None:
    requester = f"dpo-{uuid.uuid4().hex[:8]}@{org.id}.test"
    env = _command(org, "job_completed", requester)
    deps = _deps(lethe_db, prepared, [])
    # Two consumers at once (a rebalance): one sends, the other is told to retry later.
    outcomes = await asyncio.gather(
        service.send_email(env, deps), service.send_email(env, deps), return_exceptions=True
    )
    assert sorted(type(o).__name__ for o in outcomes) in (
        ["DeliveryFailed", "NoneType"],
        ["NoneType", "NoneType"],
    )
    await service.send_email(env, deps)  # the retry: already sent, nothing happens
    await eventually(
        lambda: _async(mails_to(prepared.mail_dir, requester)), what="the email", timeout=10
    )
    await asyncio.sleep(0.5)
    assert len(mails_to(prepared.mail_dir, requester)) == 1


async def test_smtp_down_is_retried_and_delivered_when_back(
    org: Org,
    lethe_db: asyncpg.Pool,
    prepared: infra.Endpoints,
    notifier: NotifierSettings,
    sink: PrivateSink,
) -> None:
    sink.stop()
    requester = f"dpo-{uuid.uuid4().hex[:8]}@{org.id}.test"
    env = _command(org, "job_failed", requester)
    await _publish(prepared.kafka_bootstrap_servers, NOTIFICATIONS, env)

    async def failed_twice() -> bool:
        n = await lethe_db.fetchval(
            "SELECT attempts FROM lethe.deliveries WHERE command_event_id = $1 AND status = "
            "'failed'",
            env.event_id,
        )
        return bool(n and n >= 2)

    await eventually(failed_twice, what="two failed attempts while SMTP is down", timeout=60)
    error = await lethe_db.fetchval(
        "SELECT last_error FROM lethe.deliveries WHERE command_event_id = $1", env.event_id
    )
    assert requester not in error
    sink.start()
    mails = await eventually(
        lambda: _async(mails_to(sink.mail_dir, requester)), what="the email", timeout=60
    )
    assert str(env.job_id) in mails[0]["Subject"] and len(mails) == 1

    async def recorded() -> str | None:
        # The sink may hold the mail before the notifier records the delivery as sent.
        status: str | None = await lethe_db.fetchval(
            "SELECT status FROM lethe.deliveries WHERE command_event_id = $1", env.event_id
        )
        return status if status != "sending" else None

    assert await eventually(recorded, what="the delivery recorded", timeout=30) == "sent"
    # The same command again (a redelivery from Kafka): still one email.
    await _publish(prepared.kafka_bootstrap_servers, NOTIFICATIONS, env)
    marker = _command(org, "job_completed", requester)  # consumed after the redelivery
    await _publish(prepared.kafka_bootstrap_servers, NOTIFICATIONS, marker)
    await eventually(
        lambda: _async(len(mails_to(sink.mail_dir, requester)) == 2), what="marker", timeout=30
    )
    assert sum(str(env.job_id) in m["Subject"] for m in mails_to(sink.mail_dir, requester)) == 1


async def test_the_last_failure_is_audited(
    org: Org, lethe_db: asyncpg.Pool, prepared: infra.Endpoints
) -> None:
    requester = f"dpo-{uuid.uuid4().hex[:8]}@{org.id}.test"
    env = _command(org, "job_completed", requester)
    sent: list[Envelope] = []
    deps = _deps(lethe_db, prepared, sent)
    deps.smtp_port = _free_port()  # nobody listens
    with pytest.raises(domain.DeliveryFailed) as info:
        await service.send_email(env, deps)
    assert requester not in str(info.value)
    await service.give_up(env, deps, str(info.value), channel="email")
    [failed] = sent
    assert failed.type == "NotificationFailed" and failed.payload["recipient"] == "requester"
    assert requester not in failed.model_dump_json()
    assert (
        await lethe_db.fetchval(
            "SELECT status FROM lethe.deliveries WHERE command_event_id = $1", env.event_id
        )
        == "failed"
    )


# --- webhooks --------------------------------------------------------------------------


class Receiver:
    """A webhook receiver as a customer would write it: verify, reject replays, record."""

    def __init__(self, secret: str = "") -> None:
        self.secret = secret
        self.accepted: list[tuple[dict[str, str], bytes]] = []
        self.rejected: list[str] = []
        self.fail_next = 0
        self.seen: set[str] = set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status, reason = outer.handle(dict(self.headers), body)
                self.send_response(status)
                self.end_headers()
                self.wfile.write(reason.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/lethe-hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        if self.fail_next > 0:
            self.fail_next -= 1
            return 503, "busy"
        try:
            signing.verify(self.secret, headers.get(signing.HEADER), body)
        except signing.BadSignature as exc:
            self.rejected.append(str(exc))
            return 400, str(exc)
        event_id = headers.get(signing.EVENT_HEADER, "")
        if event_id in self.seen:
            self.rejected.append("replay")
            return 409, "already seen"
        self.seen.add(event_id)
        self.accepted.append((headers, body))
        return 200, "ok"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def _webhooks_add(ep: infra.Endpoints, org: str, url: str) -> str:
    r = _cli(ep, "webhooks", "add", "--org", org, "--url", url)
    return r.stdout.strip().splitlines()[-1]


def _cli(
    ep: infra.Endpoints, *args: str, extra_env: dict[str, str] | None = None, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": ep.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": ep.kafka_bootstrap_servers,
        "LETHE_ENV_FILE": "/nonexistent",
        "LETHE_CALLBACK_ALLOWED_NETWORKS": '["127.0.0.0/8"]',  # the receivers' network
        **(extra_env or {}),
    }
    env.pop("LETHE_DATABASE_URL", None)
    r = subprocess.run(
        [sys.executable, "-c", CLI, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (r.returncode == 0) is ok, r.stdout + r.stderr
    return r


async def test_state_changes_reach_a_webhook_signed_once(
    org: Org,
    lethe_db: asyncpg.Pool,
    prepared: infra.Endpoints,
    notifier: NotifierSettings,
    receiver: Receiver,
) -> None:
    receiver.secret = await asyncio.to_thread(_webhooks_add, prepared, org.id, receiver.url)
    assert receiver.secret.startswith("whsec_")
    receiver.fail_next = 1  # the first POST fails: retried
    job = uuid.uuid4()
    progress = make_event(
        BatchErased(
            table="t", rows=1, objects=0, done=1, total=2, rows_per_second=1, eta_seconds=1
        ),
        actor=ACTOR,
        org_id=org.id,
        job_id=job,
    )
    done = make_event(
        JobCompleted(done=2, total=2, verification={"ok": True}),
        actor=ACTOR,
        org_id=org.id,
        job_id=job,
        subject_hash="f" * 64,
    )
    for env in (progress, done):
        await _publish(prepared.kafka_bootstrap_servers, PROGRESS, env)
    await eventually(lambda: _async(receiver.accepted), what="the callback", timeout=60)
    [(headers, body)] = receiver.accepted  # batches are progress, not state changes
    payload = json.loads(body)
    assert payload["status"] == "completed" and payload["job_id"] == str(job)
    assert payload["event_id"] == str(done.event_id) == headers[signing.EVENT_HEADER]
    assert payload["details"]["verification"] == {"ok": True}

    # The receiver rejects a tampered body, a replay, and a stale timestamp.
    async with httpx.AsyncClient() as http:
        forged = body.replace(b'"completed"', b'"failed"')
        sig = {signing.HEADER: headers[signing.HEADER], signing.EVENT_HEADER: "x"}
        r = await http.post(receiver.url, content=forged, headers=sig)
        assert r.status_code == 400 and "does not match" in r.text
        replay = {signing.HEADER: headers[signing.HEADER], signing.EVENT_HEADER: str(done.event_id)}
        r = await http.post(receiver.url, content=body, headers=replay)
        assert r.status_code == 409
        stale = signing.sign(receiver.secret, body, int(time.time()) - 3600)
        r = await http.post(receiver.url, content=body, headers={signing.HEADER: stale})
        assert r.status_code == 400 and "tolerance" in r.text

    # A redelivered state change records nothing new and is not POSTed again.
    assert await webhooks.enqueue(done, _webhook_deps(lethe_db, [])) == 0
    await asyncio.sleep(1)  # the notifier's dispatcher polls every second
    assert len(receiver.accepted) == 1
    rows = await lethe_db.fetch(
        "SELECT status, attempts FROM lethe.deliveries WHERE command_event_id = $1", done.event_id
    )
    assert [(r["status"], r["attempts"]) for r in rows] == [("sent", 2)]

    [hook] = await notifier_store.webhooks(lethe_db, org.id)
    await asyncio.to_thread(_cli, prepared, "webhooks", "remove", str(hook.id))
    assert await notifier_store.webhooks(lethe_db, org.id) == []


def _webhook_deps(pool: asyncpg.Pool, audit: list[Envelope], **kw: Any) -> webhooks.WebhookDeps:
    async def emit(env: Envelope) -> None:
        audit.append(env)

    return webhooks.WebhookDeps(pool=pool, emit=emit, **kw)


async def _send_until_settled(deps: webhooks.WebhookDeps, env: Envelope) -> None:
    """Dispatch rounds of a dispatcher of the test's own until the event's webhooks are sent
    or given up."""
    dispatcher = webhooks.Dispatcher(lambda: deps)

    async def settled() -> bool | None:
        await asyncio.gather(*await dispatcher.dispatch())
        states = await deps.pool.fetch(
            "SELECT status FROM lethe.deliveries WHERE command_event_id = $1", env.event_id
        )
        return True if all(r["status"] in ("sent", "failed") for r in states) else None

    try:
        await eventually(settled, timeout=30, every=0.05, what="the webhooks to settle")
    finally:
        await dispatcher.stop()


async def _async(value: Any) -> Any:
    return value


PRODUCTION = {"LETHE_CALLBACK_ALLOWED_NETWORKS": "[]"}


@pytest.mark.parametrize(
    "url, rule",
    [
        ("https://localhost./hook", "internal host name"),
        ("https://127.1/hook", "loopback address"),
        ("https://2130706433/hook", "loopback address"),
        ("https://0x7f000001/hook", "loopback address"),
        ("https://100.64.0.1/hook", "carrier-grade NAT address"),
        ("https://169.254.169.254/latest", "cloud metadata address"),
        ("https://[::ffff:10.0.0.1]/hook", "IPv4-mapped IPv6 address embedding a private"),
        ("https://[64:ff9b::7f00:1]/hook", "NAT64 IPv6 address embedding a loopback"),
    ],
)
async def test_registration_refuses_internal_targets_naming_the_rule(
    org: Org, prepared: infra.Endpoints, url: str, rule: str
) -> None:
    args = ("webhooks", "add", "--org", org.id, "--url", url)
    code, stderr = await asyncio.to_thread(_cli_in_process, prepared, *args, extra_env=PRODUCTION)
    assert code != 0, stderr
    assert "refused" in stderr and rule in " ".join(stderr.split()), stderr


def _cli_in_process(ep: infra.Endpoints, *args: str, extra_env: dict[str, str]) -> tuple[int, str]:
    """`lethe ...` run in this process, with `_cli`'s environment: a refusal is decided
    before any I/O, and a new interpreter importing the CLI cost seconds per case (the
    entry point itself runs as a process in `_webhooks_add`)."""
    from typer.testing import CliRunner

    from services.cli import app

    env: dict[str, str | None] = {
        "DATABASE_URL": ep.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": ep.kafka_bootstrap_servers,
        "LETHE_ENV_FILE": "/nonexistent",
        "LETHE_DATABASE_URL": None,
        **extra_env,
    }
    r = CliRunner().invoke(app, list(args), env=env)
    return r.exit_code, r.stderr


async def test_a_webhook_that_points_inside_at_send_time_is_not_called(
    org: Org,
    lethe_db: asyncpg.Pool,
    prepared: infra.Endpoints,
    receiver: Receiver,
    own_webhooks: None,
) -> None:
    """Registered while allowed (or its name re-pointed since): the production notifier
    checks at send time, posts nothing and records the rule."""
    # Registered in the store (the CLI's registration is `test_state_changes_...`'s).
    receiver.secret = (await notifier_store.add_webhook(lethe_db, org.id, receiver.url)).secret
    done = make_event(
        JobCompleted(done=1, total=1, verification={"ok": True}),
        actor=ACTOR,
        org_id=org.id,
        job_id=uuid.uuid4(),
    )
    audit: list[Envelope] = []
    # Production: nothing inside may be reached; one attempt, then given up.
    deps = _webhook_deps(lethe_db, audit, policy=netguard.Policy(), max_attempts=1)
    assert await webhooks.enqueue(done, deps) == 1
    await _send_until_settled(deps, done)
    assert receiver.accepted == [] and receiver.rejected == []
    [row] = await lethe_db.fetch(
        "SELECT status, last_error FROM lethe.deliveries WHERE command_event_id = $1",
        done.event_id,
    )
    assert row["status"] == "failed"
    assert "CallbackRefused (loopback address)" in row["last_error"]
    assert receiver.url not in row["last_error"]
    [failed] = [e for e in audit if e.payload.get("command_event_id") == str(done.event_id)]
    assert failed.type == "NotificationFailed" and failed.payload["channel"] == "webhook"
    assert "loopback address" in failed.payload["error"]
    [hook] = await notifier_store.webhooks(lethe_db, org.id)
    await notifier_store.remove_webhook(lethe_db, hook.id)


async def test_a_hung_webhook_holds_only_its_own_delivery_for_the_deadline(
    org: Org,
    lethe_db: asyncpg.Pool,
    prepared: infra.Endpoints,
    receiver: Receiver,
    own_webhooks: None,
) -> None:
    """Two of the org's endpoints accept and never answer: recording the state change does
    not wait on them, the third is called at once, all are done within one deadline (not one
    per webhook), the hung ones are recorded as timed out."""
    hold = asyncio.Event()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await hold.wait()
        writer.close()

    hung = await asyncio.start_server(hang, "127.0.0.1", 0)
    hung_url = f"http://127.0.0.1:{hung.sockets[0].getsockname()[1]}/hook"
    try:
        # Registered in the store: three CLI processes cost seconds and test nothing here.
        for path in ("a", "b"):
            await notifier_store.add_webhook(lethe_db, org.id, f"{hung_url}/{path}")
        receiver.secret = (await notifier_store.add_webhook(lethe_db, org.id, receiver.url)).secret
        done = make_event(
            JobCompleted(done=1, total=1, verification={"ok": True}),
            actor=ACTOR,
            org_id=org.id,
            job_id=uuid.uuid4(),
        )
        allowed = netguard.Policy.from_list(["127.0.0.0/8"])
        deps = _webhook_deps(lethe_db, [], policy=allowed, timeout=1.0, max_attempts=1, per_org=3)
        started = time.monotonic()
        assert await webhooks.enqueue(done, deps) == 3
        assert time.monotonic() - started < 0.5  # the consumer's part: recorded, not sent
        await _send_until_settled(deps, done)
        assert time.monotonic() - started < 1.9  # in turn, it would take over 2 s
        [(_, body)] = receiver.accepted
        assert json.loads(body)["event_id"] == str(done.event_id)
        rows = await lethe_db.fetch(
            "SELECT status, last_error FROM lethe.deliveries WHERE command_event_id = $1",
            done.event_id,
        )
        errors = sorted(r["last_error"] or "" for r in rows if r["status"] == "failed")
        assert len(errors) == 2 and all("TimeoutError" in e for e in errors), errors
    finally:
        hold.set()
        hung.close()
        for hook in await notifier_store.webhooks(lethe_db, org.id):
            await notifier_store.remove_webhook(lethe_db, hook.id)
