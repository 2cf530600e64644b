"""OpenDSR against real Postgres and Kafka: intake's `/opendsr` routes and the notifier's
callback sender run in this process; a controller's callback endpoint listens on 127.0.0.1
and checks each signature with the key the processor publishes (spec section 8.8).

Most tests publish the job's progress themselves, as the eraser reports it, so they are about
OpenDSR, not about erasing; the last one runs the real eraser on a seeded subject."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import uuid
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from faststream import FastStream

from deploy.local.sample.seed import seed_org
from services.eraser.app import create_app as create_eraser
from services.eraser.settings import EraserSettings
from services.exporter.app import create_app as create_exporter
from services.exporter.settings import ExporterSettings
from services.intake import opendsr
from services.intake import store as intake_store
from services.intake.app import create_http
from services.intake.settings import IntakeSettings
from services.notifier import opendsr as callbacks
from services.notifier.settings import NotifierSettings
from shared import netguard
from shared.db import create_pool
from shared.events import Actor, Envelope, Payload, make_event
from shared.events.progress import (
    BatchErased,
    ErasurePlanned,
    ErasureSoftDeleted,
    JobCancelled,
    JobCompleted,
    JobFailed,
    PurgeStarted,
)
from shared.events.topics import AUDIT, JOBS_EXPORT, PROGRESS
from shared.kafka import create_broker
from tests.conftest import Org
from tests.helpers import eventually, find_record

pytestmark = pytest.mark.integration
DOMAIN = "example-processor.com"  # the processor of the specification's examples
WORKER = Actor(kind="service", id="eraser")

# Section 7.2's example request, byte for byte apart from the callback URL (the test's own
# receiver) and the id (fresh per test). Its trailing comma after "property_id" is kept.
EXAMPLE = """{
  "subject_request_id": "a7551968-d5d6-44b2-9831-815ac9017798",
  "subject_request_type": "erasure",
  "submitted_time": "2018-10-02T15:00:00Z",
  "subject_identities": [
    {
      "identity_type": "email",
      "identity_value": "johndoe@example.com",
      "identity_format": "raw"
    }
  ],
  "api_version": "2.0",
  "status_callback_urls": [
    "https://examplecontroller.com/opendsr/callbacks"
  ],
  "extensions": {
    "example-processor.com": {
      "foo-processor-custom-id":123456,
      "property_id": "123456",
    },
    "example-other-processor.com": {
      "foo-other-processor-custom-id":654321
    }
  }
}"""


def example(callback_url: str, request_id: str | None = None) -> bytes:
    text = EXAMPLE.replace("https://examplecontroller.com/opendsr/callbacks", callback_url)
    if request_id:
        text = text.replace("a7551968-d5d6-44b2-9831-815ac9017798", request_id)
    return text.encode()


# --- a controller's callback endpoint -------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    valid: bool

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class Receiver:
    """A minimal HTTP/1.1 endpoint. It verifies the signature over the raw body before
    reading it (section 8.8: 403 when it does not verify), and answers 503 to the first
    `fail_first` valid callbacks so the processor has to retry."""

    public_key: rsa.RSAPublicKey
    fail_first: int = 0
    received: list[Received] = field(default_factory=list)
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/opendsr/callbacks"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            lines = head.split("\r\n")
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            valid = (
                opendsr.verify(self.public_key, body, headers.get("x-opendsr-signature", ""))
                and headers.get("x-opendsr-processor-domain") == DOMAIN
            )
            self.received.append(Received(headers, body, valid))
            status = "403 Forbidden" if not valid else "200 OK"
            if valid and self.fail_first > 0:
                self.fail_first -= 1
                status = "503 Service Unavailable"
            writer.write(f"HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n".encode())
            await writer.drain()
        finally:
            writer.close()

    def statuses(self, request_id: str) -> list[str]:
        return [
            r.json["request_status"]
            for r in self.received
            if r.valid and r.json["subject_request_id"] == request_id
        ]


# --- the processor: intake and the callback sender, in this process ---------------------------


@pytest.fixture(scope="module")
def key_file(state_dir: Path) -> Path:
    """A dev key generated into the test's own state directory (never committed)."""
    path = state_dir / "opendsr-signing-key.pem"
    if not path.exists():
        path.write_bytes(opendsr.new_signing_key_pem())
        path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
async def intake(base_settings: dict[str, Any], key_file: Path) -> AsyncIterator[FastAPI]:
    settings = IntakeSettings(
        **base_settings,
        submit_burst=1000,
        opendsr_processor_domain=DOMAIN,
        opendsr_signing_key_file=key_file,
        opendsr_allow_insecure_callbacks=True,  # the receiver is http://127.0.0.1
    )
    http = create_http(settings)
    async with http.router.lifespan_context(http):
        yield http


@pytest.fixture(scope="module")
async def api(intake: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=intake)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        yield client


class SenderRuntime:
    pool: asyncpg.Pool

    def __init__(self, settings: NotifierSettings) -> None:
        self.settings = settings

    async def open(self) -> None:
        self.pool = await create_pool(self.settings.database_url)

    async def close(self) -> None:
        await self.pool.close()


@pytest.fixture(scope="module")
async def sender(
    base_settings: dict[str, Any], key_file: Path
) -> AsyncIterator[callbacks.Dispatcher]:
    settings = NotifierSettings(
        **base_settings,
        opendsr_processor_domain=DOMAIN,
        opendsr_signing_key_file=key_file,
        # Short: later tests' jobs outlive earlier tests' receivers.
        opendsr_callback_retries=3,
        opendsr_callback_backoff_seconds=0.1,
        opendsr_callback_timeout_seconds=3,  # a hung endpoint holds an attempt this long
        callback_allowed_networks=["127.0.0.0/8"],  # the receivers are on 127.0.0.1
    )
    rt = SenderRuntime(settings)
    broker = create_broker(settings.kafka_bootstrap_servers, service="notifier-opendsr-test")
    dispatcher = callbacks.register(broker, rt)
    app = FastStream(
        broker,
        on_startup=[rt.open],
        after_startup=[dispatcher.start],
        on_shutdown=[dispatcher.stop],
        after_shutdown=[rt.close],
    )
    async with app:
        yield dispatcher


@pytest.fixture
async def public_key(api: httpx.AsyncClient) -> rsa.RSAPublicKey:
    """What a controller does (section 8.8 step 3): discovery, then the published key."""
    found = (await api.get("/opendsr/discovery")).json()
    pem = (await api.get(found["processor_certificate"])).content
    cert = x509.load_pem_x509_certificate(pem)  # section 4.1: an X.509 certificate
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert DOMAIN in names.get_values_for_type(x509.DNSName)
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


@pytest.fixture
async def receiver(public_key: rsa.RSAPublicKey) -> AsyncIterator[Receiver]:
    r = Receiver(public_key)
    await r.start()
    yield r
    await r.stop()


@pytest.fixture(scope="module")
async def producer(prepared: Any) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=prepared.kafka_bootstrap_servers)
    await p.start()
    yield p
    await p.stop()


async def report(
    producer: AIOKafkaProducer, job_id: uuid.UUID, org_id: str, *payloads: Payload
) -> None:
    """Publish progress as the eraser does (keyed by job: one partition, in order)."""
    for payload in payloads:
        env = make_event(payload, actor=WORKER, job_id=job_id, org_id=org_id)
        await producer.send_and_wait(PROGRESS, env.model_dump_json().encode(), key=env.key())


def json_headers(org: Org | None = None) -> dict[str, str]:
    return {"Content-Type": "application/json", **(org.headers if org else {})}


def signed_by(key: rsa.RSAPublicKey, r: httpx.Response) -> bool:
    return r.headers.get("x-opendsr-processor-domain") == DOMAIN and opendsr.verify(
        key, r.content, r.headers.get("x-opendsr-signature", "")
    )


async def job_of(db: asyncpg.Pool, org: Org, request_id: str) -> uuid.UUID | None:
    """The job, once its request has left the outbox (None before)."""
    row = await db.fetchrow(
        "SELECT j.id, (SELECT count(*) FROM lethe.outbox o WHERE o.event->>'job_id' = "
        "j.id::text) AS waiting FROM lethe.jobs j WHERE j.org_id = $1 AND j.request_id = $2",
        org.id,
        request_id,
    )
    if row is None or row["waiting"]:
        return None
    job_id: uuid.UUID = row["id"]
    return job_id


# --- acceptance ------------------------------------------------------------------------------


async def test_the_specifications_example_completes_with_signed_callbacks(
    api: httpx.AsyncClient,
    sender: None,
    receiver: Receiver,
    public_key: rsa.RSAPublicKey,
    producer: AIOKafkaProducer,
    org: Org,
    lethe_db: asyncpg.Pool,
) -> None:
    receiver.fail_first = 1  # the first callback fails once: it must be retried
    rid = "a7551968-d5d6-44b2-9831-815ac9017798"  # the example's own id (orgs never repeat)
    body = example(receiver.url)
    headers = {**org.headers, "Accept": "application/json", "Content-Type": "application/json"}

    r = await api.post("/opendsr/opengdpr_requests", content=body, headers=headers)
    assert r.status_code == 201, r.text
    assert signed_by(public_key, r)
    receipt = r.json()
    assert receipt["controller_id"] == org.id
    assert receipt["subject_request_id"] == rid
    assert base64.b64decode(receipt["encoded_request"]) == body
    assert {"expected_completion_time", "received_time"} <= set(receipt)
    unsigned = opendsr.dumps({k: v for k, v in receipt.items() if k != "processor_signature"})
    assert opendsr.verify(public_key, unsigned, receipt["processor_signature"])

    status = await api.get(f"/opendsr/opengdpr_requests/{rid}", headers=org.headers)
    assert status.status_code == 200 and signed_by(public_key, status)
    assert status.json()["request_status"] == "pending"
    assert status.json()["expected_completion_time"] == receipt["expected_completion_time"]

    job_id = await eventually(lambda: job_of(lethe_db, org, rid), what="the job to leave")
    await report(
        producer,
        job_id,
        org.id,
        ErasurePlanned(total=3, per_table={"users": 1, "messages": 2}),
        BatchErased(
            table="messages",
            rows=3,
            objects=0,
            done=3,
            total=3,
            rows_per_second=100.0,
            eta_seconds=0,
        ),
        ErasureSoftDeleted(
            done=3, total=3, verification={"remaining": 0}, purge_after="2000-01-01T00:00:00Z"
        ),
        PurgeStarted(),
        JobCompleted(done=3, total=3, verification={"remaining": 0}),
    )

    async def completed() -> dict[str, Any] | None:
        s = await api.get(f"/opendsr/requests/{rid}", headers=org.headers)
        return s.json() if s.json()["request_status"] == "completed" else None

    final = await eventually(completed, timeout=60, what="the request to complete")
    assert final["controller_id"] == org.id and final["results_count"] == 3

    async def all_callbacks() -> list[str] | None:
        got = receiver.statuses(rid)
        return got if got and got[-1] == "completed" else None

    got = await eventually(all_callbacks, timeout=60, what="the completed callback")
    # One on receipt (pending), then one per state change (planned, soft-deleted, purging,
    # completed), in order; the first was refused once and sent again.
    assert got == ["pending", "pending", "in_progress", "in_progress", "in_progress", "completed"]
    last = next(x for x in reversed(receiver.received) if x.valid)
    assert last.json["status_callback_url"] == receiver.url
    assert last.json["controller_id"] == org.id
    assert last.headers["x-opengdpr-signature"] == last.headers["x-opendsr-signature"]
    assert all(x.valid for x in receiver.received)

    async def recorded() -> list[tuple[str, int]] | None:
        # The receiver may see the last callback before the notifier records it as sent.
        rows = await lethe_db.fetch(
            "SELECT status, attempts FROM lethe.opendsr_callbacks WHERE job_id = $1", job_id
        )
        out = sorted((r["status"], r["attempts"]) for r in rows)
        return out if all(st != "sending" for st, _ in out) else None

    sent = await eventually(recorded, timeout=30, what="every callback recorded")
    assert sent == [("sent", 1)] * 4 + [("sent", 2)]


# --- the rest of the convention ------------------------------------------------------------


async def test_discovery_lists_what_this_processor_supports(
    api: httpx.AsyncClient, public_key: rsa.RSAPublicKey
) -> None:
    for path in ("/opendsr/discovery", "/opendsr/v2/discovery", "/opendsr/v1/discovery"):
        r = await api.get(path)  # public: controllers fetch it to check signatures
        assert r.status_code == 200 and signed_by(public_key, r), path
        d = r.json()
        assert d["api_version"] == "2.0"
        assert {"identity_type": "email", "identity_format": "raw"} in d["supported_identities"]
        assert set(d["supported_subject_request_types"]) == {"erasure", "access", "portability"}
        assert d["processor_certificate"].endswith("/opendsr/cert.pem")


async def test_cancel_only_while_pending(
    api: httpx.AsyncClient,
    sender: None,
    receiver: Receiver,
    public_key: rsa.RSAPublicKey,
    producer: AIOKafkaProducer,
    org: Org,
    lethe_db: asyncpg.Pool,
) -> None:
    rid = str(uuid.uuid4())
    r = await api.post(
        "/opendsr/requests", content=example(receiver.url, rid), headers=json_headers(org)
    )
    assert r.status_code == 201, r.text
    job_id = await eventually(lambda: job_of(lethe_db, org, rid), what="the job to leave")

    d = await api.delete(f"/opendsr/requests/{rid}", headers=org.headers)
    assert d.status_code == 202 and signed_by(public_key, d), d.text
    assert d.json()["subject_request_id"] == rid and d.json()["controller_id"] == org.id
    assert "received_time" in d.json() and "processor_signature" in d.json()
    queued = await lethe_db.fetchval(
        "SELECT count(*) FROM lethe.job_events WHERE job_id = $1 AND type = 'CancelErasure'",
        job_id,
    )
    assert queued == 1

    await report(producer, job_id, org.id, JobCancelled(done=0, total=0))

    async def cancelled() -> list[str] | None:
        got = receiver.statuses(rid)
        return got if "cancelled" in got else None

    assert await eventually(cancelled, what="the cancelled callback") == ["pending", "cancelled"]
    s = await api.get(f"/opendsr/requests/{rid}", headers=org.headers)
    assert s.json()["request_status"] == "cancelled"

    again = await api.delete(f"/opendsr/requests/{rid}", headers=org.headers)
    assert again.status_code == 400
    assert again.json()["error"]["code"] == 400
    assert "cancelled" in again.json()["error"]["message"]


async def test_cancelling_a_pending_access_request_cancels_it(
    intake: FastAPI,
    api: httpx.AsyncClient,
    sender: None,
    receiver: Receiver,
    public_key: rsa.RSAPublicKey,
    org: Org,
    lethe_db: asyncpg.Pool,
    prepared: Any,
) -> None:
    """Section 9: the example, as an access request, cancelled while pending (before the
    exporter has it): cancelled at once, nothing exported, a `cancelled` callback."""
    rid = str(uuid.uuid4())
    body = example(receiver.url, rid).replace(b'"erasure"', b'"access"')
    relay = intake.state.runtime.relay
    await relay.stop()  # hold the outbox: the request is still pending, not yet handed on
    try:
        r = await api.post("/opendsr/requests", content=body, headers=json_headers(org))
        assert r.status_code == 201, r.text
        d = await api.delete(f"/opendsr/requests/{rid}", headers=org.headers)
        assert d.status_code == 202 and signed_by(public_key, d), d.text
        assert d.json()["subject_request_id"] == rid
    finally:
        await relay.start()
    s = await api.get(f"/opendsr/requests/{rid}", headers=org.headers)
    assert (s.json()["request_status"], s.json()["processor_status"]) == (
        "cancelled",
        "cancelled",
    )

    async def cancelled() -> list[str] | None:
        got = receiver.statuses(rid)
        return got if "cancelled" in got else None

    assert await eventually(cancelled, what="the cancelled callback") == ["pending", "cancelled"]
    job_id = await eventually(lambda: job_of(lethe_db, org, rid), what="the outbox to empty")
    types = await lethe_db.fetchval(
        "SELECT array_agg(type) FROM lethe.job_events WHERE job_id = $1", job_id
    )
    assert "JobCancelled" in types
    # The exporter never had it: no request for this job on its topic.
    key = str(job_id).encode()
    with pytest.raises(AssertionError, match="no matching record"):
        await find_record(prepared.kafka_bootstrap_servers, JOBS_EXPORT, lambda x: x.key == key)
    again = await api.delete(f"/opendsr/requests/{rid}", headers=org.headers)
    assert again.status_code == 400 and "cancelled" in again.json()["error"]["message"]


async def test_an_access_request_the_exporter_has_is_not_cancelled_silently(
    api: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool
) -> None:
    rid = str(uuid.uuid4())
    body = example("https://c.example/cb", rid).replace(b'"erasure"', b'"portability"')
    r = await api.post("/opendsr/requests", content=body, headers=json_headers(org))
    assert r.status_code == 201, r.text
    await eventually(lambda: job_of(lethe_db, org, rid), what="the request to be handed on")
    d = await api.delete(f"/opendsr/requests/{rid}", headers=org.headers)
    assert d.status_code == 400, d.text
    assert "handed to the exporter" in d.json()["error"]["message"]


async def test_a_failed_request_reaches_a_final_status_for_the_controller(
    api: httpx.AsyncClient,
    sender: None,
    receiver: Receiver,
    producer: AIOKafkaProducer,
    org: Org,
    lethe_db: asyncpg.Pool,
) -> None:
    """A failed job will not go on by itself: the controller is told `cancelled` (the only
    final status of section 8 for a request not fulfilled), `processor_status` says why."""
    rid = str(uuid.uuid4())
    r = await api.post(
        "/opendsr/requests", content=example(receiver.url, rid), headers=json_headers(org)
    )
    assert r.status_code == 201, r.text
    job_id = await eventually(lambda: job_of(lethe_db, org, rid), what="the job to leave")
    await report(
        producer,
        job_id,
        org.id,
        ErasurePlanned(total=1, per_table={"users": 1}),
        JobFailed(reason="the platform database refused the delete"),
    )

    async def final() -> list[str] | None:
        got = receiver.statuses(rid)
        return got if got and got[-1] == "cancelled" else None

    assert await eventually(final, what="the final callback") == [
        "pending",
        "in_progress",
        "cancelled",
    ]
    s = (await api.get(f"/opendsr/requests/{rid}", headers=org.headers)).json()
    assert (s["request_status"], s["processor_status"]) == ("cancelled", "failed")
    last = next(x for x in reversed(receiver.received) if x.valid)
    assert last.json["processor_status"] == "failed"


async def test_cancel_refused_once_in_progress(
    api: httpx.AsyncClient,
    receiver: Receiver,
    producer: AIOKafkaProducer,
    org: Org,
    lethe_db: asyncpg.Pool,
) -> None:
    rid = str(uuid.uuid4())
    r = await api.post(
        "/opendsr/requests", content=example(receiver.url, rid), headers=json_headers(org)
    )
    assert r.status_code == 201, r.text
    job_id = await eventually(lambda: job_of(lethe_db, org, rid), what="the job to leave")
    await report(producer, job_id, org.id, ErasurePlanned(total=1, per_table={"users": 1}))

    async def running() -> bool:
        s = await api.get(f"/opendsr/requests/{rid}", headers=org.headers)
        return bool(s.json()["request_status"] == "in_progress")

    await eventually(running, what="the request to be in progress")
    d = await api.delete(f"/opendsr/v2/opengdpr_requests/{rid}", headers=org.headers)
    assert d.status_code == 400
    assert "in_progress" in d.json()["error"]["message"]


async def test_idempotency_same_id(
    api: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool
) -> None:
    rid = str(uuid.uuid4())
    body = example("https://controller.example/cb", rid)
    first = await api.post("/opendsr/requests", content=body, headers=json_headers(org))
    again = await api.post("/opendsr/opengdpr_requests", content=body, headers=json_headers(org))
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    other = body.replace(b"johndoe@example.com", b"janedoe@example.com")
    c = await api.post("/opendsr/requests", content=other, headers=json_headers(org))
    assert c.status_code == 409 and c.json()["error"]["code"] == 409
    other_cb = body.replace(b"controller.example/cb", b"controller.example/other")
    assert (
        await api.post("/opendsr/requests", content=other_cb, headers=json_headers(org))
    ).status_code == 409
    assert await intake_store.count_jobs(lethe_db, org.id) == 1


BAD: list[tuple[dict[str, Any], str]] = [
    ({"subject_request_id": None}, "subject_request_id"),
    ({"subject_request_id": "A7551968-D5D6-44B2-9831-815AC9017798"}, "subject_request_id"),
    ({"subject_request_id": "a7551968-d5d6-14b2-9831-815ac9017798"}, "subject_request_id"),
    ({"subject_request_type": "rectification"}, "subject_request_type"),
    ({"submitted_time": None}, "submitted_time"),
    ({"submitted_time": "2018-10-02T15:00:00"}, "submitted_time"),
    ({"subject_identities": []}, "subject_identities"),
    (
        {"subject_identities": [{"identity_type": "email", "identity_format": "raw"}]},
        "identity_value",
    ),
    (
        {
            "subject_identities": [
                {"identity_type": "shoe", "identity_value": "9", "identity_format": "raw"}
            ]
        },
        "identity_type",
    ),
    (
        {
            "subject_identities": [
                {"identity_type": "email", "identity_value": "x@y.z", "identity_format": "b64"}
            ]
        },
        "identity_format",
    ),
    (
        {
            "subject_identities": [
                {"identity_type": "email", "identity_value": "nope", "identity_format": "raw"}
            ]
        },
        "identity_value",
    ),
    (
        {
            "subject_identities": [
                {"identity_type": "ios_vendor_id", "identity_value": "x", "identity_format": "raw"}
            ]
        },
        "not supported",
    ),
    ({"regulation": "hipaa"}, "regulation"),
    ({"api_version": "3.0"}, "api_version"),
    ({"status_callback_urls": ["ftp://x.example/cb"]}, "status_callback_urls"),
]


@pytest.mark.parametrize("change, words", BAD)
async def test_bad_requests_get_the_error_object(
    api: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool, change: dict[str, Any], words: str
) -> None:
    body = opendsr.loads_lenient(example("https://c.example/cb", str(uuid.uuid4())))
    for k, v in change.items():
        if v is None:
            body.pop(k)
        else:
            body[k] = v
    r = await api.post("/opendsr/requests", json=body, headers=org.headers)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == 400 and words in err["message"]
    assert err["errors"] and {"domain", "reason", "message"} <= set(err["errors"][0])
    assert "johndoe" not in r.text  # never the identity (section 7.6)
    assert await intake_store.count_jobs(lethe_db, org.id) == 0


async def test_unknown_fields_null_optionals_and_extra_identities_are_accepted(
    api: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool
) -> None:
    """A controller's request as sent in practice: fields this processor does not know, `null`
    in optional fields, and identities it cannot use next to one it can (section 5)."""
    rid = str(uuid.uuid4())
    body = opendsr.loads_lenient(example("https://c.example/cb", rid))
    body.update(colour="blue", api_version=None, regulation=None, extensions=None)
    body["subject_identities"] += [
        {
            "identity_type": "ios_advertising_id",
            "identity_value": "6D92078A-8246-4BA4-AE5B-76104861E7DC",
            "identity_format": "raw",
        },
        {"identity_type": "email", "identity_value": "jd@example.org", "identity_format": "raw"},
    ]
    r = await api.post("/opendsr/requests", json=body, headers=org.headers)
    assert r.status_code == 201, r.text
    job = await lethe_db.fetchrow(
        "SELECT reason, regulation FROM lethe.jobs WHERE org_id = $1 AND request_id = $2",
        org.id,
        rid,
    )
    assert job["regulation"] == "gdpr"
    assert "identities ignored: ios_advertising_id/raw" in job["reason"]
    assert "6D92078A" not in job["reason"]


async def test_auth_and_unknown_ids_use_the_error_object(api: httpx.AsyncClient, org: Org) -> None:
    r = await api.post(
        "/opendsr/requests", content=example("https://c.example/cb"), headers=json_headers()
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == 401
    rid = str(uuid.uuid4())
    g = await api.get(f"/opendsr/requests/{rid}", headers=org.headers)
    assert g.status_code == 404 and g.json()["error"]["code"] == 404
    g = await api.get("/opendsr/requests/not-a-uuid", headers=org.headers)
    assert g.status_code == 400


async def test_a_refused_submission_is_in_the_audit_trail(
    api: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool, base_settings: dict[str, Any]
) -> None:
    """An admin of an org that did not delegate subject requests is refused (403), and the
    refusal is audited as on /v1 and in the web UI."""
    admin = await intake_store.create_api_key(lethe_db, org.id, "admin", "admin")
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {admin}"}
    body = example("https://c.example/cb", str(uuid.uuid4()))
    r = await api.post("/opendsr/v2/requests", content=body, headers=headers)
    assert r.status_code == 403 and r.json()["error"]["code"] == 403, r.text
    assert await intake_store.count_jobs(lethe_db, org.id) == 0

    def refusal(rec: Any) -> bool:
        env = json.loads(rec.value)
        return env.get("type") == "AuthFailed" and env.get("org_id") == org.id

    async def audited_refusal() -> bytes | None:
        try:
            return await find_record(base_settings["kafka_bootstrap_servers"], AUDIT, refusal)
        except AssertionError:
            return None

    audited = json.loads(await eventually(audited_refusal, what="AuthFailed on the audit topic"))
    assert audited["payload"]["path"] == "/opendsr/v2/requests"
    assert audited["payload"]["method"] == "POST" and "owner" in audited["payload"]["reason"]
    assert audited["actor"]["kind"] == "api_key"


# --- the sender on its own: exactly one POST per (event, URL), failures recorded -----------


async def test_a_redelivered_event_posts_once_and_failures_are_recorded(
    api: httpx.AsyncClient,
    sender: callbacks.Dispatcher,
    key_file: Path,
    org: Org,
    lethe_db: asyncpg.Pool,
) -> None:
    rid = str(uuid.uuid4())
    good, bad = "https://good.example/cb", "https://bad.example/cb"
    body = example(good, rid).replace(f'"{good}"'.encode(), f'"{good}", "{bad}"'.encode())
    r = await api.post("/opendsr/requests", content=body, headers=json_headers(org))
    assert r.status_code == 201, r.text
    job_id = await eventually(lambda: job_of(lethe_db, org, rid), what="the job to leave")

    posted: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["request_status"] == "in_progress":  # not the receipt
            posted.append(str(request.url))
        return httpx.Response(200 if request.url.host == "good.example" else 500)

    audit: list[Envelope] = []

    async def emit(env: Envelope) -> None:
        audit.append(env)

    key = opendsr.load_signing_key(None, key_file)
    deps = callbacks.CallbackDeps(
        pool=lethe_db,
        key=lambda: key,
        domain=DOMAIN,
        emit=emit,
        timeout=5,
        max_attempts=2,
        backoff=0.001,
        transport=httpx.MockTransport(answer),
    )
    dispatcher = callbacks.Dispatcher(lambda: deps)
    env = make_event(
        ErasurePlanned(total=1, per_table={"users": 1}), actor=WORKER, job_id=job_id, org_id=org.id
    )
    await sender.stop()  # the module's own dispatcher would take these rows too
    try:
        assert await callbacks.enqueue(env, deps) == 2
        assert await callbacks.enqueue(env, deps) == 0  # redelivered: nothing new

        async def settled() -> bool | None:
            # Dispatch rounds until both rows are final: a retry posts only the URL that
            # failed (a fixed number of rounds raced the machine's load).
            await asyncio.gather(*await dispatcher.dispatch())
            states = await lethe_db.fetch(
                "SELECT status FROM lethe.opendsr_callbacks WHERE event_id = $1", env.event_id
            )
            return True if all(r["status"] in ("sent", "failed") for r in states) else None

        await eventually(settled, timeout=30, every=0.05, what="both callbacks to settle")
    finally:
        await dispatcher.stop()
        await sender.start()
    ours = [u for u in posted if u in (good, bad)]  # not other tests' leftover callbacks
    assert sorted(ours) == [bad, bad, good]
    rows = await lethe_db.fetch(
        "SELECT url, status, attempts, last_error FROM lethe.opendsr_callbacks WHERE event_id = $1",
        env.event_id,
    )
    assert {(r["url"], r["status"], r["attempts"]) for r in rows} == {
        (good, "sent", 1),
        (bad, "failed", 2),
    }
    error = next(r["last_error"] for r in rows if r["url"] == bad)
    assert "bad.example" in error and "500" in error and bad not in error  # host, never URL
    kinds = [e.type for e in audit if e.payload["progress_event_id"] == str(env.event_id)]
    assert kinds.count("OpenDSRCallbackSent") == 1 and kinds.count("OpenDSRCallbackFailed") == 1
    assert all(bad not in e.model_dump_json() for e in audit)


async def test_a_callback_left_unsent_before_the_queue_is_sent_on_redelivery(
    api: httpx.AsyncClient,
    sender: callbacks.Dispatcher,
    key_file: Path,
    org: Org,
    lethe_db: asyncpg.Pool,
) -> None:
    """A row the inline sender had claimed (no body) when the notifier was upgraded: the
    event's redelivery takes it over and it is sent."""
    rid, url = str(uuid.uuid4()), "https://upgrade.example/cb"
    r = await api.post("/opendsr/requests", content=example(url, rid), headers=json_headers(org))
    assert r.status_code == 201, r.text
    job_id = await eventually(lambda: job_of(lethe_db, org, rid), what="the job to leave")
    env = make_event(
        ErasurePlanned(total=1, per_table={"users": 1}), actor=WORKER, job_id=job_id, org_id=org.id
    )
    await lethe_db.execute(
        "INSERT INTO lethe.opendsr_callbacks (event_id, url, job_id, request_status, status, "
        "attempts) VALUES ($1, $2, $3, 'in_progress', 'sending', 1)",
        env.event_id,
        url,
        job_id,
    )
    posted: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        posted.append(json.loads(request.content))
        return httpx.Response(200)

    key = opendsr.load_signing_key(None, key_file)

    async def emit(env: Envelope) -> None:
        pass

    deps = callbacks.CallbackDeps(
        pool=lethe_db,
        key=lambda: key,
        domain=DOMAIN,
        emit=emit,
        transport=httpx.MockTransport(answer),
    )
    dispatcher = callbacks.Dispatcher(lambda: deps)
    await sender.stop()
    try:
        assert await callbacks.enqueue(env, deps) == 1

        async def sent() -> bool | None:
            # Dispatch rounds until the row is sent (a fixed number of rounds raced the
            # machine's load).
            await asyncio.gather(*await dispatcher.dispatch())
            status = await lethe_db.fetchval(
                "SELECT status FROM lethe.opendsr_callbacks WHERE event_id = $1", env.event_id
            )
            return True if status == "sent" else None

        await eventually(sent, timeout=30, what="the taken-over callback to be sent")
    finally:
        await dispatcher.stop()
        await sender.start()
    ours = [b for b in posted if b["subject_request_id"] == rid]
    assert [b["request_status"] for b in ours][-1] == "in_progress"
    row = await lethe_db.fetchrow(
        "SELECT status, attempts FROM lethe.opendsr_callbacks WHERE event_id = $1", env.event_id
    )
    assert (row["status"], row["attempts"]) == ("sent", 2)


# --- a dead controller delays only its own callbacks ------------------------------------------


@dataclass
class Hung:
    """A controller endpoint that takes the connection and never answers."""

    server: asyncio.Server | None = None
    connections: int = 0

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/opendsr/callbacks"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await reader.read()  # until the sender gives up on the attempt and hangs up
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_a_dead_controller_delays_only_its_own_callbacks(
    api: httpx.AsyncClient,
    sender: None,
    receiver: Receiver,
    producer: AIOKafkaProducer,
    org: Org,
    lethe_db: asyncpg.Pool,
) -> None:
    """Controller A's endpoint hangs (and its second one refuses connections); controller B's
    callbacks still arrive at once, in order, while A's are being retried; every callback of
    both ends recorded: B's sent, A's failed with the reason, each after its attempts."""
    hung = Hung()
    await hung.start()
    closed = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    refusing = f"http://127.0.0.1:{closed.sockets[0].getsockname()[1]}/opendsr/callbacks"
    closed.close()
    await closed.wait_closed()  # nothing listens there any more: connection refused
    other = f"org-{uuid.uuid4().hex[:12]}"
    await intake_store.create_org(lethe_db, other, f"Test Org {other}")
    b = Org(other, other, await intake_store.create_api_key(lethe_db, other, "owner", "t"))
    try:
        # A: more requests than the endpoint's slots, each a pending callback to both URLs.
        a_ids = [str(uuid.uuid4()) for _ in range(6)]
        for rid in a_ids:
            body = example(hung.url, rid).replace(
                f'"{hung.url}"'.encode(), f'"{hung.url}", "{refusing}"'.encode()
            )
            r = await api.post("/opendsr/requests", content=body, headers=json_headers(org))
            assert r.status_code == 201, r.text

        async def a_hanging() -> bool:
            return hung.connections >= 4  # every slot of A's endpoint is held

        await eventually(a_hanging, what="A's callbacks to hang")

        # B, while A's endpoint holds its slots: the specification's example, to completion.
        loop = asyncio.get_running_loop()
        began = loop.time()
        r = await api.post(
            "/opendsr/requests", content=example(receiver.url), headers=json_headers(b)
        )
        assert r.status_code == 201, r.text
        job_id = await eventually(lambda: job_of(lethe_db, b, EXAMPLE_ID), what="B's job")
        await report(
            producer,
            job_id,
            b.id,
            ErasurePlanned(total=1, per_table={"users": 1}),
            ErasureSoftDeleted(
                done=1, total=1, verification={"remaining": 0}, purge_after="2000-01-01T00:00:00Z"
            ),
            PurgeStarted(),
            JobCompleted(done=1, total=1, verification={"remaining": 0}),
        )

        async def b_done() -> list[str] | None:
            got = receiver.statuses(EXAMPLE_ID)
            return got if got and got[-1] == "completed" else None

        got = await eventually(b_done, timeout=60, what="B's completed callback")
        took = loop.time() - began
        assert got == ["pending", "in_progress", "in_progress", "in_progress", "completed"]
        assert all(x.valid for x in receiver.received)
        a_unfinished = await lethe_db.fetchval(
            "SELECT count(*) FROM lethe.opendsr_callbacks c JOIN lethe.jobs j ON j.id = c.job_id "
            "WHERE j.org_id = $1 AND c.status IN ('pending', 'sending')",
            org.id,
        )
        # A hung attempt takes 3 s, and each of A's 6 callbacks there is tried 3 times, 4 at
        # a time: B was served while A's were still being tried.
        assert a_unfinished > 0, f"B took {took:.1f}s"
        assert took < 15, f"B's callbacks took {took:.1f}s behind a dead controller"

        async def recorded(org_id: str) -> list[asyncpg.Record] | None:
            rows = await lethe_db.fetch(
                "SELECT c.url, c.status, c.attempts, c.last_error FROM lethe.opendsr_callbacks c "
                "JOIN lethe.jobs j ON j.id = c.job_id WHERE j.org_id = $1",
                org_id,
            )
            done = rows and all(x["status"] in ("sent", "failed") for x in rows)
            return rows if done else None

        b_rows = await eventually(lambda: recorded(b.id), what="B's callbacks recorded")
        assert [(x["status"], x["attempts"]) for x in b_rows] == [("sent", 1)] * 5
        a_rows = await eventually(lambda: recorded(org.id), timeout=90, what="A's recorded")
        assert len(a_rows) == 2 * len(a_ids)
        assert {(x["status"], x["attempts"]) for x in a_rows} == {("failed", 3)}
        hung_errors = {x["last_error"] for x in a_rows if x["url"] == hung.url}
        refused_errors = {x["last_error"] for x in a_rows if x["url"] == refusing}
        assert all("Timeout" in e and "given up after 3 attempt(s)" in e for e in hung_errors)
        assert all("ConnectError" in e for e in refused_errors), refused_errors
    finally:
        await hung.stop()


@pytest.mark.parametrize(
    "url, allowed",
    [
        ("https://examplecontroller.com/opendsr/callbacks", True),
        ("http://examplecontroller.com/opendsr/callbacks", False),
        ("https://127.0.0.1/cb", False),
        ("https://10.1.2.3/cb", False),
        ("https://169.254.169.254/latest/meta-data", False),
        ("https://[::1]/cb", False),
        ("https://localhost:8080/cb", False),
        ("https://db.internal/cb", False),
        ("https://localhost./cb", False),
        ("https://127.1/cb", False),
        ("https://2130706433/cb", False),
        ("https://0x7f000001/cb", False),
        ("https://0177.0.0.1/cb", False),
        ("https://100.64.0.1/cb", False),
        ("https://[::ffff:127.0.0.1]/cb", False),
        ("https://[64:ff9b::a9fe:a9fe]/cb", False),
        ("https://[fd00::1]/cb", False),
    ],
)
def test_production_refuses_plain_http_and_internal_callbacks(url: str, allowed: bool) -> None:
    body = example(url)
    if allowed:
        assert opendsr.parse_request(body, DOMAIN).status_callback_urls == [url]
        return
    with pytest.raises(opendsr.Invalid, match=r"status_callback_urls\[0\]"):
        opendsr.parse_request(body, DOMAIN)
    assert opendsr.parse_request(body, DOMAIN, allow_insecure_callbacks=True)


async def test_production_refuses_names_that_resolve_inside() -> None:
    """At submission the names are resolved: one internal answer refuses the request; a
    name that does not resolve now passes (the notifier checks again when it sends)."""
    answers = {
        "public.example": ["93.184.216.34"],
        "inside.example": ["93.184.216.34", "10.0.0.5"],
        "meta.example": ["::ffff:169.254.169.254"],
    }

    async def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError("Name or service not known")
        return answers[host]

    urls = [f"https://{name}/cb" for name in [*answers, "gone.example"]]
    errors = await opendsr.check_callback_hosts(urls, netguard.Policy(resolver=resolve))
    assert errors == [
        "status_callback_urls[1]: must not point at an internal address "
        "(resolves to an internal address: private address (RFC 1918))",
        "status_callback_urls[2]: must not point at an internal address (resolves to an "
        "internal address: IPv4-mapped IPv6 address embedding a cloud metadata address)",
    ]


async def test_the_sender_refuses_a_name_that_resolves_inside_at_send_time(
    api: httpx.AsyncClient,
    sender: callbacks.Dispatcher,
    receiver: Receiver,
    key_file: Path,
    org: Org,
    lethe_db: asyncpg.Pool,
) -> None:
    """Accepted at submission (development intake), the name points at loopback when the
    production sender resolves it: nothing is sent, the rule is recorded."""
    rid = str(uuid.uuid4())
    url = receiver.url.replace("127.0.0.1", "rebound.example")
    r = await api.post("/opendsr/requests", content=example(url, rid), headers=json_headers(org))
    assert r.status_code == 201, r.text
    job_id = await eventually(lambda: job_of(lethe_db, org, rid), what="the job to leave")

    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    async def emit(env: Envelope) -> None:
        pass

    key = opendsr.load_signing_key(None, key_file)
    deps = callbacks.CallbackDeps(
        pool=lethe_db,
        key=lambda: key,
        domain=DOMAIN,
        emit=emit,
        max_attempts=1,
        policy=netguard.Policy(resolver=resolve),  # production: nothing allowed inside
    )
    dispatcher = callbacks.Dispatcher(lambda: deps)
    env = make_event(
        ErasurePlanned(total=1, per_table={"users": 1}), actor=WORKER, job_id=job_id, org_id=org.id
    )
    await sender.stop()
    try:
        assert await callbacks.enqueue(env, deps) == 1

        async def failed() -> asyncpg.Record | None:
            # Dispatch rounds until this one is recorded failed: the job's receipt callback
            # goes first (a fixed number of rounds raced the machine's load).
            await asyncio.gather(*await dispatcher.dispatch())
            found = await lethe_db.fetchrow(
                "SELECT status, last_error FROM lethe.opendsr_callbacks WHERE event_id = $1",
                env.event_id,
            )
            return found if found["status"] == "failed" else None

        row = await eventually(failed, timeout=30, every=0.05, what="the refused callback")
    finally:
        await dispatcher.stop()
        await sender.start()
    assert row["status"] == "failed"
    assert (
        "CallbackRefused (resolves to an internal address: loopback address)" in (row["last_error"])
    )
    assert receiver.received == []


def test_the_example_maps_onto_a_lethe_request() -> None:
    req = opendsr.parse_request(example("https://c.example/cb"), DOMAIN)
    assert req.property_id == "123456"  # from our own extension (section 7.1.2)
    lethe = opendsr.to_request_in(req)
    assert (lethe.type, lethe.regulation, lethe.request_id) == (
        "erasure",
        "gdpr",
        req.subject_request_id,
    )
    assert lethe.subject is not None and lethe.subject.email == "johndoe@example.com"
    access = json.loads(opendsr.dumps(req.model_dump(mode="json")))
    access.update(
        subject_request_type="portability",
        regulation="ccpa",
        subject_identities=[
            {
                "identity_type": "controller_customer_id",
                "identity_value": "c-42",
                "identity_format": "raw",
            }
        ],
    )
    mapped = opendsr.to_request_in(opendsr.parse_request(json.dumps(access).encode(), DOMAIN))
    assert (mapped.type, mapped.format, mapped.regulation) == ("export", "json", "ccpa")
    assert mapped.subject is not None and mapped.subject.external_id == "c-42"
    assert {opendsr.request_status(s) for s in ("running", "soft_deleted", "purging")} == {
        "in_progress"
    }


# --- with the real eraser --------------------------------------------------------------------

SUBJECT_EMAIL = "johndoe@example.com"  # the example's subject
EXAMPLE_ID = "a7551968-d5d6-44b2-9831-815ac9017798"  # and its id (every test has its own org)


async def test_the_example_request_erases_its_subject(
    api: httpx.AsyncClient,
    sender: None,
    receiver: Receiver,
    public_key: rsa.RSAPublicKey,
    base_settings: dict[str, Any],
    org: Org,
    lethe_db: asyncpg.Pool,
    platform_db: asyncpg.Pool,
    s3: Any,
) -> None:
    async with platform_db.acquire() as conn:
        seeded = await seed_org(
            conn,
            s3,
            "lethe-platform",
            org.id,
            users=2,
            conversations_per_user=1,
            messages_per_conversation=5,
            media_every=2,
        )
        subject = seeded.users[0]
        await conn.execute("UPDATE users SET email = $1 WHERE id = $2", SUBJECT_EMAIL, subject.id)
    # No recovery window: the request completes once the data is purged, not when hidden.
    await lethe_db.execute(
        "UPDATE lethe.organisations SET recovery_window_days = 0 WHERE id = $1", org.id
    )
    eraser = create_eraser(EraserSettings(**base_settings, erase_purge_interval_seconds=1))
    async with eraser:
        r = await api.post(
            "/opendsr/opengdpr_requests", content=example(receiver.url), headers=json_headers(org)
        )
        assert r.status_code == 201 and signed_by(public_key, r), r.text

        async def completed() -> dict[str, Any] | None:
            s = await api.get(f"/opendsr/opengdpr_requests/{EXAMPLE_ID}", headers=org.headers)
            body: dict[str, Any] = s.json()
            assert body["processor_status"] != "failed", body
            return (
                body if body["request_status"] == "completed" and signed_by(public_key, s) else None
            )

        final = await eventually(completed, timeout=120, what="the request to complete")
        assert final["results_count"] > 0

        async def completed_callback() -> list[str] | None:
            got = receiver.statuses(EXAMPLE_ID)
            return got if got and got[-1] == "completed" else None

        got = await eventually(completed_callback, timeout=60, what="the completed callback")
        assert got[0] == "pending" and set(got[1:-1]) <= {"in_progress"}
        assert all(x.valid for x in receiver.received)

    left = await platform_db.fetchval("SELECT count(*) FROM users WHERE id = $1", subject.id)
    assert left == 0
    others = await platform_db.fetchval("SELECT count(*) FROM users WHERE org_id = $1", org.id)
    assert others == len(seeded.users) - 1


async def test_an_access_request_completes_with_a_results_url(
    api: httpx.AsyncClient,
    sender: callbacks.Dispatcher,
    receiver: Receiver,
    public_key: rsa.RSAPublicKey,
    base_settings: dict[str, Any],
    org: Org,
    lethe_db: asyncpg.Pool,
    platform_db: asyncpg.Pool,
    s3: Any,
) -> None:
    """Sections 8.3 and 8.6: the example as an access request, exported by the real exporter.
    The status body and the `completed` callback carry a `results_url` the controller fetches
    with nothing else (no API key): the subject's archive, at most the link's downloads. The
    jobs API does not show the link."""
    async with platform_db.acquire() as conn:
        seeded = await seed_org(
            conn,
            s3,
            "lethe-platform",
            org.id,
            users=2,
            conversations_per_user=1,
            messages_per_conversation=3,
            media_every=0,
        )
        subject = seeded.users[0]
        await conn.execute("UPDATE users SET email = $1 WHERE id = $2", SUBJECT_EMAIL, subject.id)
    exporter = create_exporter(
        ExporterSettings(
            **base_settings, public_api_url="http://intake", export_link_max_downloads=2
        )
    )
    async with exporter:
        body = example(receiver.url).replace(b'"erasure"', b'"access"')
        r = await api.post("/opendsr/requests", content=body, headers=json_headers(org))
        assert r.status_code == 201 and signed_by(public_key, r), r.text

        async def completed() -> dict[str, Any] | None:
            s = await api.get(f"/opendsr/requests/{EXAMPLE_ID}", headers=org.headers)
            got: dict[str, Any] = s.json()
            assert got["processor_status"] not in ("failed", "not_found"), got
            done = got["request_status"] == "completed" and signed_by(public_key, s)
            return got if done else None

        final = await eventually(completed, timeout=120, what="the request to complete")
        assert final["processor_status"] == "ready" and final["results_count"] > 0
        url = final["results_url"]
        job_id = await eventually(lambda: job_of(lethe_db, org, EXAMPLE_ID), what="the job")
        assert url.startswith(f"http://intake/v1/exports/{job_id}/download?token=")

        async def completed_callback() -> Received | None:
            return next(
                (
                    x
                    for x in receiver.received
                    if x.valid and x.json["request_status"] == "completed"
                ),
                None,
            )

        callback = await eventually(completed_callback, what="the completed callback")
        assert callback.json["results_url"] == url
        assert callback.json["results_count"] == final["results_count"]
        assert receiver.statuses(EXAMPLE_ID)[0] == "pending"

    # What the controller does with it: a plain GET, no key. The subject's data, twice.
    for _ in range(2):
        got = await api.get(url)
        assert got.status_code == 200, got.text
        with zipfile.ZipFile(io.BytesIO(got.content)) as zf:
            assert "manifest.json" in zf.namelist()
            assert any(SUBJECT_EMAIL in zf.read(n).decode() for n in zf.namelist())
    used_up = await api.get(url)
    assert used_up.status_code == 410 and "used up" in used_up.text
    view = (await api.get(f"/v1/jobs/{job_id}", headers=org.headers)).json()
    assert view["status"] == "ready" and "token=" not in json.dumps(view)
