"""Notices the law asks for, end to end on real Postgres, Kafka and the SMTP sink: intake
(in this process, with its outbox relay) writes them, the notifier (in this process) mails
them. A CCPA request's receipt confirmation (11 CCR 7021(a)); an extension's notice with its
reason (GDPR Art. 12(3), 11 CCR 7021(b)); to the requester, or to the org's owner contacts
when the job has no requester address."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import asyncpg
import httpx
import pytest

from deploy.local import infra
from services.intake.app import create_http
from services.intake.deadlines import add_business_days, add_months
from services.intake.settings import IntakeSettings
from services.notifier import store as notifier_store
from services.notifier.app import create_app
from services.notifier.settings import NotifierSettings
from tests.conftest import Org
from tests.helpers import eventually, mails_to

pytestmark = pytest.mark.integration
SUBJECT = {"email": "ann@example.com"}
TODAY = date.today()
HOLIDAYS = [TODAY + timedelta(days=d) for d in (1, 2, 3)]  # whatever weekday they are


@pytest.fixture(scope="module")
async def api(base_settings: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    settings = IntakeSettings(**base_settings, submit_burst=1000, business_holidays=HOLIDAYS)
    http = create_http(settings)
    async with create_app(NotifierSettings(**base_settings, notify_backoff_seconds=0.5)):
        async with http.router.lifespan_context(http):
            transport = httpx.ASGITransport(app=http)
            async with httpx.AsyncClient(transport=transport, base_url="http://intake") as c:
                yield c


async def _mail(ep: infra.Endpoints, to: str, job_id: str, subject_has: str = "") -> EmailMessage:
    async def arrived() -> list[EmailMessage]:
        return [
            m
            for m in mails_to(ep.mail_dir, to)
            if job_id in str(m["Subject"]) and subject_has in str(m["Subject"])
        ]

    found = await eventually(arrived, what=f"a mail about {job_id}", timeout=120)
    assert len(found) == 1, [m["Subject"] for m in found]
    return found[0]


def _text(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    content: str = part.get_content()
    return content


async def _delivered(db: asyncpg.Pool, job_id: str, template: str) -> list[str]:
    rows = await db.fetch(
        "SELECT recipient FROM lethe.deliveries WHERE job_id = $1 AND template = $2 "
        "AND status = 'sent'",
        uuid.UUID(job_id),
        template,
    )
    return [r[0] for r in rows]


async def test_a_ccpa_request_is_confirmed_on_receipt_and_recorded(
    api: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool, prepared: infra.Endpoints
) -> None:
    requester = f"privacy-{uuid.uuid4().hex[:8]}@{org.id}.test"
    r = await api.post(
        "/v1/requests",
        headers=org.headers,
        json={
            "type": "erasure",
            "subject": SUBJECT,
            "regulation": "ccpa",
            "notify_email": requester,
        },
    )
    assert r.status_code == 202, r.text
    job = r.json()
    received = datetime.fromisoformat(job["received_at"])
    assert datetime.fromisoformat(job["due_at"]) == received + timedelta(days=45)
    # Due within 10 business days: weekends and the configured holidays do not count.
    receipt = job["receipt_confirmation"]
    due_by = datetime.fromisoformat(receipt["due_by"])
    assert due_by == add_business_days(received, 10, HOLIDAYS)
    assert due_by > add_business_days(received, 10)  # the holidays moved it
    assert datetime.fromisoformat(receipt["sent_at"]) == received  # issued on receipt

    msg = await _mail(prepared, requester, job["id"])
    assert "received" in str(msg["Subject"]) and msg["X-Lethe-Job"] == job["id"]
    text = _text(msg)
    assert job["due_at"][:10] in text and "45 calendar days" in text
    assert (received + timedelta(days=90)).date().isoformat() in text  # the latest, extended
    await eventually(
        lambda: _delivered(lethe_db, job["id"], "ccpa_receipt"), what="the delivery record"
    )
    events = (await api.get(f"/v1/jobs/{job['id']}/events", headers=org.headers)).json()
    assert "SendEmail" in [e["type"] for e in events["events"]]


async def test_without_a_requester_the_owner_contacts_get_the_ccpa_receipt(
    api: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool, prepared: infra.Endpoints
) -> None:
    owner = f"owner-{uuid.uuid4().hex[:8]}@{org.id}.test"
    await notifier_store.add_contact(lethe_db, org.id, owner)
    r = await api.post(
        "/v1/requests",
        headers=org.headers,
        json={"type": "export", "subject": SUBJECT, "regulation": "ccpa"},
    )
    assert r.status_code == 202, r.text
    msg = await _mail(prepared, owner, r.json()["id"])
    assert "export request" in str(msg["Subject"])


async def test_an_extension_notice_reaches_the_requester_with_its_reason(
    api: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool, prepared: infra.Endpoints
) -> None:
    requester = f"dpo-{uuid.uuid4().hex[:8]}@{org.id}.test"
    job = (
        await api.post(
            "/v1/requests",
            headers=org.headers,
            json={"type": "erasure", "subject": SUBJECT, "notify_email": requester},
        )
    ).json()
    due = datetime.fromisoformat(job["due_at"])
    assert due == add_months(datetime.fromisoformat(job["received_at"]), 1)
    reason = "records sit in <three> archives & a tape backup"
    r = await api.post(
        f"/v1/jobs/{job['id']}/extend",
        headers=org.headers,
        json={"months": 2, "reason": reason},
    )
    assert r.status_code == 200, r.text
    extended = datetime.fromisoformat(r.json()["extended_due_at"])
    assert extended == add_months(due, 2)

    # (The receipt came first: every requester gets one.)
    msg = await _mail(prepared, requester, job["id"], "extended")
    assert "extended" in str(msg["Subject"]) and extended.date().isoformat() in str(msg["Subject"])
    text = _text(msg)
    assert f"Reason: {reason}" in text and "GDPR Art. 12(3)" in text
    assert due.date().isoformat() in text
    html = msg.get_body(preferencelist=("html",))
    assert html is not None and "&lt;three&gt; archives &amp; a tape" in html.get_content()
    assert await eventually(
        lambda: _delivered(lethe_db, job["id"], "deadline_extended"), what="the delivery record"
    ) == ["requester"]


async def test_an_extension_without_requester_goes_to_the_owner_contacts(
    api: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool, prepared: infra.Endpoints
) -> None:
    owner = f"owner-{uuid.uuid4().hex[:8]}@{org.id}.test"
    await notifier_store.add_contact(lethe_db, org.id, owner)
    job = (
        await api.post(
            "/v1/requests",
            headers=org.headers,
            json={"type": "export", "subject": SUBJECT, "regulation": "ccpa"},
        )
    ).json()
    await _mail(prepared, owner, job["id"])  # the receipt confirmation first
    r = await api.post(
        f"/v1/jobs/{job['id']}/extend",
        headers=org.headers,
        json={"days": 45, "reason": "the request covers four years of records"},
    )
    assert r.status_code == 200, r.text

    async def notice() -> list[EmailMessage]:
        return [
            m
            for m in mails_to(prepared.mail_dir, owner)
            if job["id"] in str(m["Subject"]) and "extended" in str(m["Subject"])
        ]

    (msg,) = await eventually(notice, what="the extension notice to the owner", timeout=120)
    assert "11 CCR 7021" in _text(msg) and "four years of records" in _text(msg)
