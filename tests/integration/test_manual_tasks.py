"""Manual connectors (issue 17, item 5) on the real stack: intake (relay, API), eraser and
notifier in this process, on real Postgres, Kafka, S3 and the SMTP sink.

An erasure of a platform whose map names two systems erased by hand opens a task for each:
each assignee is mailed (with the subject to erase) and reminded; the job, purged, waits in
`awaiting_tasks` until both are closed (one done, one waived with its reason); the closes are
on the job's timeline, and its state rebuilt from its events is the one it shows. Nobody is
told "completed" before it is: while the tasks are open the requester gets no completion mail
(real SMTP) and the webhook is not called with "completed"; after the last close, exactly one
of each.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from deploy.local import infra
from deploy.local.sample.seed import SeededOrg, seed_org
from services.eraser.app import create_app as create_eraser
from services.eraser.settings import EraserSettings
from services.intake import store as intake_store
from services.intake.app import create_http
from services.intake.scheduler import Scheduler
from services.intake.service import rebuild
from services.intake.settings import IntakeSettings
from services.notifier import store as notifier_store
from services.notifier.app import create_app as create_notifier
from services.notifier.settings import NotifierSettings
from shared import lifecycle
from shared.datamap import load_datamap
from tests.conftest import Org
from tests.helpers import eventually, mails_to

pytestmark = pytest.mark.integration
SAMPLE = Path(__file__).resolve().parents[2] / "deploy/local/sample/datamap.yaml"
RUN = uuid.uuid4().hex[:8]
ARCHIVE = f"archive-{RUN}@ops.test"
LEDGER = f"ledger-{RUN}@finance.test"
REQUESTER = f"requester-{RUN}@people.test"
COMPLETE = "is complete"  # the subject of job_completed and job_completed_review


@pytest.fixture(scope="module")
def datamap_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("map") / "datamap.yaml"
    path.write_text(
        SAMPLE.read_text()
        + "connectors:\n"
        + f"  archive: {{type: manual, assignee: {ARCHIVE}, instructions: the paper archive}}\n"
        + f"  ledger: {{type: manual, assignee: {LEDGER}}}\n"
    )
    return path


@pytest.fixture(scope="module")
async def api(
    base_settings: dict[str, Any], datamap_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    settings = {**base_settings, "datamap_path": datamap_path}
    http = create_http(IntakeSettings(**settings, submit_burst=1000))
    eraser = create_eraser(
        EraserSettings(**settings, erase_purge_interval_seconds=0.5, verify_scan_seconds=5)
    )
    notifier = create_notifier(NotifierSettings(**settings, notify_backoff_seconds=0.5))
    async with eraser, notifier, http.router.lifespan_context(http):
        transport = httpx.ASGITransport(app=http)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            yield client


@pytest.fixture
async def seeded(org: Org, platform_db: asyncpg.Pool, s3: Any) -> SeededOrg:
    async with platform_db.acquire() as conn:
        return await seed_org(
            conn,
            s3,
            "lethe-platform",
            org.id,
            users=1,
            conversations_per_user=1,
            messages_per_conversation=2,
            media_every=0,
        )


async def _job(api: httpx.AsyncClient, org: Org, job_id: str, *states: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        job: dict[str, Any] = (await api.get(f"/v1/jobs/{job_id}", headers=org.headers)).json()
        return job if job["status"] in states else None

    return await eventually(probe, timeout=120, what=f"job {job_id} in {states}")


async def _mail(ep: infra.Endpoints, to: str, job_id: str, subject_has: str) -> EmailMessage:
    async def arrived() -> list[EmailMessage]:
        return [
            m
            for m in mails_to(ep.mail_dir, to)
            if job_id in str(m["Subject"]) and subject_has in str(m["Subject"])
        ]

    (msg,) = await eventually(arrived, timeout=120, what=f"'{subject_has}' mail to {to}")
    return msg


def _completion_mails(ep: infra.Endpoints, job_id: str) -> int:
    return sum(
        job_id in str(m["Subject"]) and COMPLETE in str(m["Subject"])
        for m in mails_to(ep.mail_dir, REQUESTER)
    )


async def _webhook_statuses(db: asyncpg.Pool, job_id: str) -> list[str]:
    """What the notifier sends the organisation's webhook about the job (its recorded bodies),
    in the order of the events."""
    rows = await db.fetch(
        "SELECT body FROM lethe.deliveries WHERE channel = 'webhook' AND job_id = $1 "
        "ORDER BY created_at",
        uuid.UUID(job_id),
    )
    bodies = [json.loads(bytes(r["body"])) for r in rows]
    return [b["status"] for b in sorted(bodies, key=lambda b: b["occurred_at"])]


async def _webhook_told(db: asyncpg.Pool, job_id: str, status: str) -> None:
    async def told() -> bool:
        return status in await _webhook_statuses(db, job_id)

    await eventually(told, timeout=60, what=f"the webhook told of {status}")


def _text(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


async def test_manual_tasks_are_mailed_reminded_and_hold_the_job_until_closed(
    api: httpx.AsyncClient,
    org: Org,
    seeded: SeededOrg,
    prepared: infra.Endpoints,
    lethe_db: asyncpg.Pool,
    datamap_path: Path,
) -> None:
    subject = seeded.users[0]
    # The organisation's webhook: what it would be called with is recorded per event.
    await notifier_store.add_webhook(lethe_db, org.id, "https://hooks.example.test/lethe")
    r = await api.post(
        "/v1/requests",
        headers=org.headers,
        json={
            "type": "erasure",
            "subject": {"email": subject.email},
            "recovery_window_days": 0,
            "notify_email": REQUESTER,
        },
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]

    # Each assignee is told which system and whom to erase there.
    first = _text(await _mail(prepared, ARCHIVE, job_id, "please erase the subject from archive"))
    assert subject.email in first and "the paper archive" in first
    assert subject.email in _text(await _mail(prepared, LEDGER, job_id, "from ledger"))

    # Purged and verified, the job waits for its tasks.
    job = await _job(api, org, job_id, "awaiting_tasks", "completed", "completed_with_errors")
    assert job["status"] == "awaiting_tasks" and job["phase"] == "manual_tasks"
    assert {t["task"]: t["status"] for t in job["tasks"]} == {"archive": "open", "ledger": "open"}

    # The scheduler reminds each open task's assignee (here: a day later), by mail.
    scheduler = Scheduler(
        lethe_db,
        load_datamap(datamap_path),
        cron="0 3 * * *",
        poll_seconds=60,
        reminder_days=7,
        public_mode=False,
        public_days=7,
        name=f"tasks-{RUN}",
        orgs=[org.id],
        task_reminder_every=timedelta(hours=12),
    )
    tick = await scheduler.tick(datetime.now(UTC) + timedelta(days=1))
    assert tick.reminders == 2
    reminder = _text(await _mail(prepared, ARCHIVE, job_id, "reminder 1"))
    assert "waiting since" in reminder and subject.email not in reminder
    assert (await scheduler.tick(datetime.now(UTC) + timedelta(days=1))).reminders == 0

    # Purged, tasks open: nobody is told "completed" (the eraser's purge report went through
    # the notifier before the reminders, which came after it on the job's partition).
    await _webhook_told(lethe_db, job_id, lifecycle.AWAITING_TASKS)
    open_mails, open_hooks = (
        _completion_mails(prepared, job_id),
        await _webhook_statuses(lethe_db, job_id),
    )
    print(f"tasks open: completion mails {open_mails} (want 0), webhook statuses {open_hooks}")
    assert open_mails == 0 and "completed" not in open_hooks

    # Confirmed done: one task still open, the job still waits.
    path = f"/v1/jobs/{job_id}/tasks"
    r = await api.post(f"{path}/archive/done", headers=org.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "awaiting_tasks"
    assert (await api.post(f"{path}/archive/done", headers=org.headers)).status_code == 409
    assert (await api.post(f"{path}/nope/done", headers=org.headers)).status_code == 404
    # A waiver needs its reason.
    refused = await api.post(f"{path}/ledger/waive", headers=org.headers, json={})
    assert refused.status_code in (400, 422)
    # The other one waived on the job page, as an admin signed in to the web UI would.
    who = await intake_store.caller_for_key(lethe_db, org.owner_key)
    assert who is not None
    token, csrf = await intake_store.open_session(lethe_db, who.key_id, timedelta(hours=1))
    api.cookies.set("lethe_session", token)
    try:
        page = await api.get(f"/ui/jobs/{job_id}")
        assert page.status_code == 200 and 'data-task="ledger"' in page.text
        assert f"/ui/jobs/{job_id}/tasks/ledger/waive" in page.text
        form = {"csrf": csrf, "reason": "no ledger entry"}
        r = await api.post(f"/ui/jobs/{job_id}/tasks/ledger/waive", data=form)
        assert r.status_code == 303, r.text
    finally:
        api.cookies.clear()
    done = await _job(api, org, job_id, "completed", "completed_with_errors")
    assert done["status"] == "completed" and done["phase"] == "completed"
    closed = {t["task"]: (t["status"], t["reason"]) for t in done["tasks"]}
    assert closed == {"archive": ("done", None), "ledger": ("waived", "no ledger entry")}

    # Now, and once: the requester's completion mail, with the purge's counts, and the webhook.
    mail = _text(await _mail(prepared, REQUESTER, job_id, COMPLETE))
    assert "Rows purged: " in mail and "Rows restored on request before the purge: 0" in mail
    await _webhook_told(lethe_db, job_id, "completed")
    await asyncio.sleep(2)  # a second "completed" would have been recorded by now
    mails, hooks = _completion_mails(prepared, job_id), await _webhook_statuses(lethe_db, job_id)
    print(f"tasks closed: completion mails {mails} (want 1), webhook statuses {hooks}")
    assert mails == 1 and hooks.count("completed") == 1 and hooks[-1] == "completed"

    events = (await api.get(f"/v1/jobs/{job_id}/events", headers=org.headers)).json()["events"]
    closes = [e["details"] for e in events if e["type"] == "ManualTaskClosed"]
    assert {(c["task"], c["outcome"]) for c in closes} == {
        ("archive", "done"),
        ("ledger", "waived"),
    }
    # The job's state is what its events say.
    rebuilt = await rebuild.rebuild(lethe_db, uuid.UUID(job_id))
    assert rebuilt.state["status"] == "completed" and rebuilt.changes == {}
