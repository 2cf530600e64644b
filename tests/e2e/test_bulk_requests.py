"""Bulk requests through the real stack (five services as processes on real Kafka, Postgres,
S3 and SMTP): a list of subjects in one request over the API, the request topic and the web
UI's CSV form; each subject's outcome (erased, not found, rejected) as the API shows it, the
list paged, one summary mail to the requester and none per subject; a list past 5,000 is
refused whole with nothing written."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from deploy.local import infra
from shared.events.topics import REQUESTS, REQUESTS_REJECTED
from tests.conftest import Org
from tests.helpers import eventually, find_record, json_record, mails_to
from tests.seeding import OverlapSeed, seed_overlap

pytestmark = pytest.mark.e2e


@pytest.fixture
async def client(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as c:
        yield c


@pytest.fixture
async def overlap(org: Org, platform_db: asyncpg.Pool, s3: Any) -> OverlapSeed:
    async with platform_db.acquire() as conn:
        return await seed_overlap(conn, org.id, f"{org.id}-other", s3=s3)


async def _owner_contact(lethe_db: asyncpg.Pool, org: Org) -> str:
    """An owner contact: per-subject mails, were any sent, would reach it."""
    owner = f"owner-{uuid.uuid4().hex[:8]}@{org.id}.test"
    await lethe_db.execute(
        "INSERT INTO lethe.org_contacts (org_id, email) VALUES ($1, $2)", org.id, owner
    )
    return owner


def _nobody(tag: str = "") -> dict[str, str]:
    return {"email": f"nobody-{tag}{uuid.uuid4().hex[:8]}@overlap.example"}


async def _finished(client: httpx.AsyncClient, org: Org, bulk_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        r = await client.get(f"/v1/bulk-requests/{bulk_id}", headers=org.headers)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body if body["finished_at"] else None

    return await eventually(done, timeout=120, what=f"bulk request {bulk_id} to finish")


async def _all_subjects(client: httpx.AsyncClient, org: Org, bulk_id: str, limit: int) -> list[Any]:
    """Every subject, page by page (keyset cursor)."""
    out: list[Any] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        r = await client.get(
            f"/v1/bulk-requests/{bulk_id}/subjects", params=params, headers=org.headers
        )
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["subjects"]) <= limit
        out += page["subjects"]
        cursor = page["next_cursor"]
        if cursor is None:
            return out


async def test_a_bulk_erasure_reports_each_subject_and_mails_one_summary(
    client: httpx.AsyncClient,
    org: Org,
    overlap: OverlapSeed,
    lethe_db: asyncpg.Pool,
    prepared: infra.Endpoints,
) -> None:
    owner = await _owner_contact(lethe_db, org)
    requester = f"dpo-{uuid.uuid4().hex[:8]}@{org.id}.test"
    subjects = [
        {"email": overlap.email},  # Ann: held, erased
        _nobody(),  # nothing held
        {"email": "not an address"},  # a bad row
        {"shoe_size": "9"},  # not an identity
        {"external_id": f"ext-nobody-{uuid.uuid4().hex[:6]}"},
    ]
    body = {
        "type": "erasure",
        "subjects": subjects,
        "recovery_window_days": 0,
        "notify_email": requester,
        "request_id": f"bulk-{uuid.uuid4()}",
    }
    r = await client.post("/v1/bulk-requests", json=body, headers=org.headers)
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["total"] == 5 and accepted["counts"]["rejected"] == 2
    assert accepted["counts"]["pending"] == 3 and accepted["finished_at"] is None
    again = await client.post("/v1/bulk-requests", json=body, headers=org.headers)
    assert again.status_code == 200 and again.json()["id"] == accepted["id"], again.text

    done = await _finished(client, org, accepted["id"])
    assert done["counts"] == {
        **dict.fromkeys(done["counts"], 0),
        "erased": 1,
        "not_found": 2,
        "rejected": 2,
    }, done
    assert done["decided"] == 5 and done["percent"] == 100.0

    rows = await _all_subjects(client, org, accepted["id"], limit=2)
    assert [s["row"] for s in rows] == [1, 2, 3, 4, 5]
    assert [s["outcome"] for s in rows] == [
        "erased",
        "not_found",
        "rejected",
        "rejected",
        "not_found",
    ]
    assert "email" in rows[2]["reason"] and "shoe_size" in rows[3]["reason"]
    assert rows[2]["job_id"] is None and "not an address" not in json.dumps(rows)
    member_jobs = {s["job_id"] for s in rows if s["job_id"]}
    for job_id in member_jobs:  # each subject is a job of its own, with its own timeline
        events = await client.get(f"/v1/jobs/{job_id}/events", headers=org.headers)
        assert events.status_code == 200 and events.json()["events"], events.text
    erased = await client.get(f"/v1/jobs/{rows[0]['job_id']}", headers=org.headers)
    assert erased.json()["status"] in ("soft_deleted", "purging", "completed")

    async def summary() -> list[Any] | None:
        return [m for m in mails_to(prepared.mail_dir, requester) if "bulk" in str(m["Subject"])]

    mails = await eventually(summary, timeout=60, what="the summary mail")
    text = mails[0].get_body(("plain",)).get_content()
    assert accepted["id"] in str(mails[0]["Subject"]) and "erased: 1" in text
    assert "no data held (not found): 2" in text and "rejected (not a valid subject): 2" in text
    # Give a stray per-subject mail time to arrive: a purge notice follows the erasure.
    await eventually(
        lambda: _job_completed(client, org, rows[0]["job_id"]), timeout=90, what="the purge"
    )
    assert len(await summary() or []) == 1
    about_members = [
        m
        for addr in (requester, owner)
        for m in mails_to(prepared.mail_dir, addr)
        if m["X-Lethe-Job"] in member_jobs
    ]
    assert about_members == [], [m["Subject"] for m in about_members]
    # The compliance report counts the members under the bulk channel, not as API requests.
    report = await client.get("/v1/reports/compliance", headers=org.headers)
    assert report.status_code == 200, report.text
    channels = report.json()["total"]["by_channel"]
    assert channels["bulk"] == len(member_jobs) and channels["http"] == 0, channels


async def _job_completed(client: httpx.AsyncClient, org: Org, job_id: str) -> bool:
    job = (await client.get(f"/v1/jobs/{job_id}", headers=org.headers)).json()
    return bool(job["status"] == "completed")


async def test_a_reused_request_id_with_another_list_is_a_conflict(
    client: httpx.AsyncClient, org: Org
) -> None:
    body = {"type": "export", "subjects": [_nobody()], "request_id": f"r-{uuid.uuid4()}"}
    assert (
        await client.post("/v1/bulk-requests", json=body, headers=org.headers)
    ).status_code == 202
    other = {**body, "subjects": [_nobody()]}
    r = await client.post("/v1/bulk-requests", json=other, headers=org.headers)
    assert r.status_code == 409 and "request_id" in r.json()["detail"], r.text


async def test_a_list_of_only_bad_rows_is_answered_at_once_with_its_summary(
    client: httpx.AsyncClient, org: Org, prepared: infra.Endpoints
) -> None:
    requester = f"dpo-{uuid.uuid4().hex[:8]}@{org.id}.test"
    body = {"type": "erasure", "subjects": [{"email": "x"}, {}], "notify_email": requester}
    r = await client.post("/v1/bulk-requests", json=body, headers=org.headers)
    assert r.status_code == 202, r.text
    assert r.json()["counts"]["rejected"] == 2 and r.json()["finished_at"], r.text

    async def summary() -> list[Any] | None:
        return mails_to(prepared.mail_dir, requester) or None

    mails = await eventually(summary, timeout=60, what="the summary mail")
    assert len(mails) == 1 and r.json()["id"] in str(mails[0]["Subject"])


async def test_a_bulk_request_on_the_request_topic(
    client: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool, prepared: infra.Endpoints
) -> None:
    request_id = f"kafka-bulk-{uuid.uuid4()}"
    message: dict[str, Any] = {
        "org_id": org.id,
        "source": "accounts",
        "request": {
            "type": "erasure",
            "subjects": [_nobody(), {"phone": "1" * 60}],
            "request_id": request_id,
            "recovery_window_days": 0,
        },
    }
    big_id = f"big-{uuid.uuid4()}"
    big = {
        "type": "erasure",
        "request_id": big_id,
        "subjects": [{"user_id": str(i)} for i in range(5001)],
    }
    too_many = {**message, "request": big}
    producer = AIOKafkaProducer(
        bootstrap_servers=prepared.kafka_bootstrap_servers, max_request_size=4_000_000
    )
    await producer.start()
    try:
        for m in (message, too_many):
            await producer.send_and_wait(REQUESTS, json.dumps(m).encode(), key=org.id.encode())
    finally:
        await producer.stop()

    async def bulk_row() -> Any:
        return await lethe_db.fetchrow(
            "SELECT id, channel FROM lethe.bulk_jobs WHERE org_id = $1 AND request_id = $2",
            org.id,
            request_id,
        )

    row = await eventually(bulk_row, timeout=60, what="the bulk job from the topic")
    assert row["channel"] == "kafka"
    done = await _finished(client, org, str(row["id"]))
    assert (done["counts"]["not_found"], done["counts"]["rejected"]) == (1, 1), done

    async def rejection() -> bytes | None:
        try:
            return await find_record(
                prepared.kafka_bootstrap_servers,
                REQUESTS_REJECTED,
                lambda rec: (
                    (json_record(rec.value) or {}).get("payload", {}).get("request_id") == big_id
                ),
            )
        except AssertionError:  # not published yet
            return None

    refused = await eventually(rejection, timeout=60, what="the rejection of 5,001 subjects")
    assert "5,000" in json.loads(refused)["payload"]["reason"]
    assert (
        await lethe_db.fetchval("SELECT count(*) FROM lethe.bulk_jobs WHERE org_id = $1", org.id)
        == 1
    )


async def _signed_in(client: httpx.AsyncClient, org: Org) -> None:
    login = await client.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
    assert csrf, login.text
    r = await client.post("/ui/login", data={"csrf": csrf.group(1), "api_key": org.owner_key})
    assert r.status_code == 303, r.text


async def test_a_csv_uploaded_in_the_web_ui_becomes_a_bulk_request(
    client: httpx.AsyncClient, org: Org, overlap: OverlapSeed
) -> None:
    await _signed_in(client, org)
    page = await client.get("/ui/bulk")
    assert page.status_code == 200 and "CSV" in page.text, page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    csv_text = f"email,user_id\n{overlap.email},\nnot-an-email,\n,u-{uuid.uuid4().hex[:6]}\n"
    form = {"csrf": csrf.group(1), "type": "export", "regulation": "gdpr", "csv": csv_text}
    r = await client.post("/ui/bulk", data=form)
    assert r.status_code == 303, r.text
    bulk_id = r.headers["location"].rsplit("/", 1)[1]
    done = await _finished(client, org, bulk_id)
    assert (done["counts"]["exported"], done["counts"]["not_found"]) == (1, 1), done
    assert done["counts"]["rejected"] == 1
    shown = await client.get(f"/ui/bulk/{bulk_id}")
    assert shown.status_code == 200 and 'data-outcome="exported">1<' in shown.text
    rows = await _all_subjects(client, org, bulk_id, limit=100)
    link = rows[0]["download_url"]
    assert rows[0]["outcome"] == "exported" and link, rows
    download = await client.get(link)
    assert download.status_code == 200 and download.content[:2] == b"PK"

    too_many = "user_id\n" + "\n".join(str(i) for i in range(5001))
    r = await client.post("/ui/bulk", data={**form, "csv": too_many})
    assert r.status_code == 413 and "5,000" in r.text


# The 5,000 accepted subjects are held for approval (the org asks for it on `bulk`): their
# jobs never reach the eraser, so they do not load this stack, nor a later module's (whose
# intake relay would publish whatever outbox rows this one left).
async def test_more_than_5000_subjects_is_refused_whole_with_the_limit_named(
    client: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool
) -> None:
    body = {"type": "erasure", "subjects": [{"user_id": str(i)} for i in range(5001)]}
    r = await client.post("/v1/bulk-requests", json=body, headers=org.headers)
    assert r.status_code == 413, r.text
    assert "5,000" in r.json()["detail"]
    jobs = await lethe_db.fetchval("SELECT count(*) FROM lethe.jobs WHERE org_id = $1", org.id)
    bulks = await lethe_db.fetchval(
        "SELECT count(*) FROM lethe.bulk_jobs WHERE org_id = $1", org.id
    )
    assert (jobs, bulks) == (0, 0)
    on = await client.put(
        f"/v1/orgs/{org.id}/approvals", json={"channels": ["bulk"]}, headers=org.headers
    )
    assert on.status_code == 200, on.text
    ok = await client.post(
        "/v1/bulk-requests", json={**body, "subjects": body["subjects"][:5000]}, headers=org.headers
    )
    assert ok.status_code == 202 and ok.json()["total"] == 5000, ok.text
    held = await lethe_db.fetchval(
        "SELECT count(*) FROM lethe.jobs WHERE org_id = $1 AND status = 'awaiting_approval'",
        org.id,
    )
    assert held == 5000
