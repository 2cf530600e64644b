"""Every notice of a job, once, on the real stack: intake (with its outbox relay), eraser,
exporter and notifier in this process, on real Postgres, Kafka, S3 and the SMTP sink.

The soft-delete notice says what is hidden, until when it can be restored and when it becomes
final, with the data subject's status link; a job without a requester address has its
failure mailed to the org's owner contacts; the "recovery window ends tomorrow" notice goes
once to the owners, even when the eraser sends it again after a crash; the completion says
how many rows were purged and how many restored.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from deploy.local import infra
from deploy.local.sample.seed import SeededOrg, seed_org
from services.eraser.app import create_app as create_eraser
from services.eraser.settings import EraserSettings
from services.exporter.app import create_app as create_exporter
from services.exporter.settings import ExporterSettings
from services.intake.app import create_http
from services.intake.settings import IntakeSettings
from services.notifier import store as notifier_store
from services.notifier.app import create_app as create_notifier
from services.notifier.settings import NotifierSettings
from shared.events import Actor, make_event
from shared.events.retention import RetentionRequested
from shared.events.topics import JOBS_ERASE
from tests.conftest import Org
from tests.helpers import eventually, mails_to

pytestmark = pytest.mark.integration
BUCKET = "lethe-platform"
STATUS_LINK = re.compile(r"http://intake(/status/[0-9a-f-]{36}/[A-Za-z0-9_=-]+)")


@pytest.fixture(scope="module")
async def api(base_settings: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    http = create_http(
        IntakeSettings(**base_settings, submit_burst=1000, public_api_url="http://intake")
    )
    eraser = create_eraser(
        EraserSettings(**base_settings, erase_purge_interval_seconds=0.5, verify_scan_seconds=5)
    )
    exporter = create_exporter(
        ExporterSettings(**base_settings, public_api_url="http://intake", dlq_retries=2)
    )
    notifier = create_notifier(NotifierSettings(**base_settings, notify_backoff_seconds=0.5))
    async with eraser, exporter, notifier, http.router.lifespan_context(http):
        transport = httpx.ASGITransport(app=http)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            yield client


@pytest.fixture
async def seeded(org: Org, platform_db: asyncpg.Pool, s3: Any) -> SeededOrg:
    async with platform_db.acquire() as conn:
        return await seed_org(
            conn,
            s3,
            BUCKET,
            org.id,
            users=2,
            conversations_per_user=2,
            messages_per_conversation=4,
            media_every=3,
        )


async def _submit(api: httpx.AsyncClient, org: Org, body: dict[str, Any]) -> dict[str, Any]:
    r = await api.post("/v1/requests", headers=org.headers, json=body)
    assert r.status_code == 202, r.text
    job: dict[str, Any] = r.json()
    return job


async def _job_in(api: httpx.AsyncClient, org: Org, job_id: str, *states: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        job: dict[str, Any] = (await api.get(f"/v1/jobs/{job_id}", headers=org.headers)).json()
        return job if job["status"] in states else None

    return await eventually(probe, timeout=120, what=f"job {job_id} in {states}")


async def _mails(
    ep: infra.Endpoints, to: str, job_id: str, subject_has: str, timeout: float = 120
) -> list[EmailMessage]:
    async def arrived() -> list[EmailMessage]:
        return [
            m
            for m in mails_to(ep.mail_dir, to)
            if job_id in str(m["Subject"]) and subject_has in str(m["Subject"])
        ]

    return await eventually(arrived, timeout=timeout, what=f"'{subject_has}' mail to {to}")


def _text(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    content: str = part.get_content()
    return content


async def test_the_soft_delete_notice_says_until_when_with_the_status_link(
    api: httpx.AsyncClient, org: Org, seeded: SeededOrg, prepared: infra.Endpoints
) -> None:
    requester = f"dpo-{uuid.uuid4().hex[:8]}@{org.id}.test"
    subject = seeded.users[0]
    job = await _submit(
        api,
        org,
        {
            "type": "erasure",
            "subject": {"email": subject.email},
            "notify_email": requester,
            "recovery_window_days": 7,
        },
    )
    hidden = await _job_in(api, org, job["id"], "soft_deleted")
    purge_after = datetime.fromisoformat(hidden["purge_after"])

    (msg,) = await _mails(prepared, requester, job["id"], "the data is hidden")
    text = _text(msg)
    assert purge_after.date().isoformat() in str(msg["Subject"])  # final on which date
    assert f"restored until {purge_after.strftime('%Y-%m-%d %H:%M')} UTC" in text
    assert f"becomes final on {purge_after.date().isoformat()}" in text
    assert f"{seeded.rows_of(subject)} rows (" in text and "users: 1" in text
    # The subject's status link opens the subject's status page; a forged one does not.
    match = STATUS_LINK.search(text)
    assert match is not None, text
    page = await api.get(match.group(1))
    assert page.status_code == 200 and job["id"] in page.text
    assert (await api.get(match.group(1)[:-4] + "AAAA")).status_code == 404
    html = msg.get_body(preferencelist=("html",))
    assert html is not None and f'href="http://intake{match.group(1)}"' in html.get_content()
    # Nobody but the requester: the owners have no contact here; the requester has the
    # receipt and this notice, once each.
    subjects = [str(m["Subject"]) for m in mails_to(prepared.mail_dir, requester)]
    assert len(subjects) == 2, subjects
    assert sum("received" in s for s in subjects) == sum("hidden" in s for s in subjects) == 1


async def test_a_failed_export_without_requester_is_mailed_to_the_owner_contacts(
    api: httpx.AsyncClient,
    org: Org,
    seeded: SeededOrg,
    s3: Any,
    lethe_db: asyncpg.Pool,
    prepared: infra.Endpoints,
) -> None:
    owner = f"owner-{uuid.uuid4().hex[:8]}@{org.id}.test"
    await notifier_store.add_contact(lethe_db, org.id, owner)
    subject = seeded.users[0]
    assert subject.object_keys
    for key in subject.object_keys:  # the media the export must include is gone
        await s3.delete_object(Bucket=BUCKET, Key=key)
    job = await _submit(
        api,
        org,
        {"type": "export", "subject": {"email": subject.email}, "include_media": True},
    )
    failed = await _job_in(api, org, job["id"], "failed", "ready")
    assert failed["status"] == "failed"

    (msg,) = await _mails(prepared, owner, job["id"], "failed")
    assert f"export request {job['id']} failed" in str(msg["Subject"])
    assert "Reason: export failed:" in _text(msg)
    assert STATUS_LINK.search(_text(msg))  # the job's status page, for whoever follows it


async def test_the_recovery_window_notice_goes_to_the_owners_once(
    api: httpx.AsyncClient,
    org: Org,
    seeded: SeededOrg,
    lethe_db: asyncpg.Pool,
    prepared: infra.Endpoints,
) -> None:
    owner = f"owner-{uuid.uuid4().hex[:8]}@{org.id}.test"
    await notifier_store.add_contact(lethe_db, org.id, owner)
    # A window of one day ends within 24 hours as soon as the data is hidden.
    job = await _submit(
        api,
        org,
        {
            "type": "erasure",
            "subject": {"email": seeded.users[1].email},
            "recovery_window_days": 1,
        },
    )
    hidden = await _job_in(api, org, job["id"], "soft_deleted")
    (msg,) = await _mails(prepared, owner, job["id"], "becomes final tomorrow")
    purge_after = datetime.fromisoformat(hidden["purge_after"])
    assert purge_after.strftime("%Y-%m-%d %H:%M UTC") in _text(msg)
    # Without a requester address, the data-hidden notice went to the owner as well.
    await _mails(prepared, owner, job["id"], "the data is hidden")

    job_id = uuid.UUID(job["id"])

    async def recorded() -> datetime | None:
        at: datetime | None = await lethe_db.fetchval(
            "SELECT recovery_notice_at FROM lethe.erase_tasks WHERE job_id = $1", job_id
        )
        return at

    first = await eventually(recorded, what="the notice recorded on the job")
    # A crash after sending, before recording: the next sweep sends the same notice again.
    await lethe_db.execute(
        "UPDATE lethe.erase_tasks SET recovery_notice_at = NULL WHERE job_id = $1", job_id
    )
    again = await eventually(recorded, what="the notice recorded again")
    assert again > first

    await _wait_for_sweeps(lethe_db, job_id, again)
    rows = await lethe_db.fetch(
        "SELECT recipient, status, attempts FROM lethe.deliveries "
        "WHERE job_id = $1 AND template = 'recovery_ends'",
        job_id,
    )
    assert [(r["status"], r["attempts"]) for r in rows] == [("sent", 1)]
    final_mails = [
        m for m in mails_to(prepared.mail_dir, owner) if "becomes final" in str(m["Subject"])
    ]
    assert len(final_mails) == 1


async def _wait_for_sweeps(lethe_db: asyncpg.Pool, job_id: uuid.UUID, since: datetime) -> None:
    """A few more sweeps (every 0.5 s) and the notifier's time to read what they sent."""
    await asyncio.sleep(4)
    at = await lethe_db.fetchval(
        "SELECT recovery_notice_at FROM lethe.erase_tasks WHERE job_id = $1", job_id
    )
    assert at == since  # recorded: no later sweep sent it again


async def test_the_completion_reports_rows_purged_and_rows_restored(
    api: httpx.AsyncClient,
    org: Org,
    seeded: SeededOrg,
    lethe_db: asyncpg.Pool,
    prepared: infra.Endpoints,
) -> None:
    requester = f"dpo-{uuid.uuid4().hex[:8]}@{org.id}.test"
    subject = seeded.users[0]
    job = await _submit(
        api,
        org,
        {
            "type": "erasure",
            "subject": {"email": subject.email},
            "notify_email": requester,
            "recovery_window_days": 7,
        },
    )
    await _job_in(api, org, job["id"], "soft_deleted")
    r = await api.post(
        f"/v1/jobs/{job['id']}/restore",
        headers=org.headers,
        json={"items": [{"table": "users", "key": str(subject.id)}], "reason": "asked back"},
    )
    assert r.status_code == 202, r.text

    async def restored() -> bool:
        events = (await api.get(f"/v1/jobs/{job['id']}/events", headers=org.headers)).json()
        return any(e["type"] == "JobRestored" for e in events["events"])

    await eventually(restored, what="the item restored")
    # The window ends now: the sweep purges the rest and reports both counts.
    await lethe_db.execute(
        "UPDATE lethe.erase_tasks SET purge_after = now() - interval '1 second' WHERE job_id = $1",
        uuid.UUID(job["id"]),
    )
    await _job_in(api, org, job["id"], "completed", "completed_with_errors")
    (msg,) = await _mails(prepared, requester, job["id"], "is complete")
    text = _text(msg)
    assert f"Rows purged: {seeded.rows_of(subject) - 1}." in text
    assert "Rows restored on request before the purge: 1." in text
    assert STATUS_LINK.search(text)


async def test_a_failed_retention_job_is_mailed_to_the_owner_contacts(
    api: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool, prepared: infra.Endpoints
) -> None:
    owner = f"owner-{uuid.uuid4().hex[:8]}@{org.id}.test"
    await notifier_store.add_contact(lethe_db, org.id, owner)
    # Anonymous data outside public mode: the eraser refuses the run, the job fails.
    env = make_event(
        RetentionRequested(category="anonymous", days=7, cutoff=datetime.now(UTC)),
        actor=Actor(kind="service", id="scheduler"),
        job_id=uuid.uuid4(),
        org_id=org.id,
    )
    producer = AIOKafkaProducer(bootstrap_servers=prepared.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(JOBS_ERASE, env.model_dump_json().encode(), key=env.key())
    finally:
        await producer.stop()
    (msg,) = await _mails(prepared, owner, str(env.job_id), "failed")
    assert f"retention request {env.job_id} failed" in str(msg["Subject"])
    assert "public mode is off" in _text(msg)
