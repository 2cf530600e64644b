"""Outcomes that are results, not errors, through the real stack (five services as processes
on real Kafka/Postgres/S3/SMTP), as a user sees them: over the API, in the web UI, from
`lethe jobs show`, by email and over OpenDSR. And hashed identities: a sha256 of the email
erases exactly what the email would."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from deploy.local import infra
from deploy.local.stack import REPO_ROOT
from shared.datamap import check_against_database, load_datamap
from shared.events.topics import REQUESTS
from shared.resolver import Resolver, Scope
from tests.conftest import REPO, Org
from tests.helpers import eventually, job_in, mails_to, submit
from tests.seeding import OverlapSeed, fingerprint, seed_overlap, seed_sample

pytestmark = pytest.mark.e2e
NOT_FOUND_WORDS = "No data held on this subject"
AMBIGUOUS_WORDS = "Identities belong to more than one person: nothing done"
FINAL = ("completed", "failed", "not_found", "ambiguous", "ready", "completed_with_errors")


@pytest.fixture
async def client(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=15) as c:
        yield c


@pytest.fixture
async def overlap(org: Org, platform_db: asyncpg.Pool, s3: Any) -> OverlapSeed:
    async with platform_db.acquire() as conn:
        return await seed_overlap(conn, org.id, f"{org.id}-other", s3=s3)


async def _final(client: httpx.AsyncClient, org: Org, job_id: str) -> dict[str, Any]:
    return await job_in(client, org, job_id, FINAL)


async def _mail(mail_dir: Path, to: str, job_id: str, subject_has: str) -> str:
    """The mail about the job whose subject line says `subject_has` (the requester also
    gets a receipt for the same job)."""

    async def found() -> str | None:
        for m in mails_to(mail_dir, to):
            if job_id in str(m["Subject"]) and subject_has in str(m["Subject"]):
                return m.as_string()
        return None

    return await eventually(found, timeout=60, what=f"the {subject_has!r} mail to {to}")


async def _cli_show(api_url: str, org: Org, job_id: str, state_dir: Path) -> str:
    env = {
        **os.environ,
        "LETHE_API_URL": api_url,
        "LETHE_API_KEY": org.owner_key,
        "LETHE_ENV_FILE": str(state_dir / "no-env-file"),
        "COLUMNS": "200",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "jobs",
        "show",
        job_id,
        env=env,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def _web_page(client: httpx.AsyncClient, org: Org, job_id: str) -> str:
    login = await client.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
    assert csrf, login.text
    r = await client.post("/ui/login", data={"csrf": csrf.group(1), "api_key": org.owner_key})
    assert r.status_code == 303, r.text
    page = await client.get(f"/ui/jobs/{job_id}")
    assert page.status_code == 200, page.text
    return page.text


def _words(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def test_an_erasure_of_an_unknown_email_ends_not_found_and_says_so(
    client: httpx.AsyncClient,
    api_url: str,
    org: Org,
    overlap: OverlapSeed,
    platform_db: asyncpg.Pool,
    prepared: infra.Endpoints,
    state_dir: Path,
) -> None:
    requester = f"dpo-{uuid.uuid4().hex[:8]}@{org.id}.test"
    async with platform_db.acquire() as conn:
        before = await fingerprint(conn)
    job_id = await submit(
        client,
        org,
        {
            "type": "erasure",
            "subject": {"email": f"nobody-{uuid.uuid4().hex[:8]}@overlap.example"},
            "notify_email": requester,
            "recovery_window_days": 0,
        },
    )
    job = await _final(client, org, job_id)
    assert job["status"] == "not_found", job
    assert job["outcome"] == NOT_FOUND_WORDS
    assert job["result"] == {"outcome": "not_found"} and job["error"] is None
    mail = await _mail(prepared.mail_dir, requester, job_id, "no data held")
    assert "no data held" in mail.lower(), mail
    async with platform_db.acquire() as conn:
        assert await fingerprint(conn) == before

    shown = await _cli_show(api_url, org, job_id, state_dir)
    assert f"not_found: {NOT_FOUND_WORDS}" in shown and "0 rows" not in shown
    page = _words(await _web_page(client, org, job_id))
    assert NOT_FOUND_WORDS in page and "0 of" not in page and "0 rows" not in page


async def test_an_export_of_an_unknown_subject_ends_not_found(
    client: httpx.AsyncClient, org: Org, overlap: OverlapSeed, prepared: infra.Endpoints
) -> None:
    requester = f"dpo-{uuid.uuid4().hex[:8]}@{org.id}.test"
    job_id = await submit(
        client,
        org,
        {"type": "export", "subject": {"external_id": "ext-nobody"}, "notify_email": requester},
    )
    job = await _final(client, org, job_id)
    assert (job["status"], job["outcome"]) == ("not_found", NOT_FOUND_WORDS), job
    assert job["result"] == {"outcome": "not_found"}
    mail = await _mail(prepared.mail_dir, requester, job_id, "no data held")
    assert "no data held" in mail.lower(), mail


async def test_identities_of_two_people_end_ambiguous_and_nothing_is_erased(
    client: httpx.AsyncClient,
    api_url: str,
    org: Org,
    overlap: OverlapSeed,
    platform_db: asyncpg.Pool,
    prepared: infra.Endpoints,
    state_dir: Path,
) -> None:
    bob_phone = await platform_db.fetchval(
        "SELECT phone FROM users WHERE id = $1", overlap.users["bob"]
    )
    requester = f"dpo-{uuid.uuid4().hex[:8]}@{org.id}.test"
    async with platform_db.acquire() as conn:
        before = await fingerprint(conn)
    for kind in ("erasure", "export"):
        job_id = await submit(
            client,
            org,
            {
                "type": kind,
                "subject": {"email": overlap.email, "phone": bob_phone},
                "notify_email": requester,
                **({"recovery_window_days": 0} if kind == "erasure" else {}),
            },
        )
        job = await _final(client, org, job_id)
        assert (job["status"], job["outcome"]) == ("ambiguous", AMBIGUOUS_WORDS), job
        assert "email" in job["error"] and "phone" in job["error"]
        assert overlap.email not in job["error"] and bob_phone not in job["error"]
        assert job["result"] == {"outcome": "ambiguous"}
        mail = await _mail(prepared.mail_dir, requester, job_id, "not carried out")
        assert "not carried out" in mail and "email and phone" in mail, mail
    async with platform_db.acquire() as conn:
        assert await fingerprint(conn) == before  # Ann's and Bob's rows all still there
    shown = await _cli_show(api_url, org, job_id, state_dir)
    assert AMBIGUOUS_WORDS in shown and "0 rows" not in shown
    page = _words(await _web_page(client, org, job_id))
    assert AMBIGUOUS_WORDS in page and "email and phone" in page and "0 of" not in page


async def _planned(platform_db: asyncpg.Pool, org_id: str, email: str) -> dict[str, set[str]]:
    """What the plain email resolves to: table -> keys (the resolver the eraser uses)."""
    dm = load_datamap(REPO / "deploy/local/sample/datamap.yaml")
    async with platform_db.acquire() as conn:
        live = await check_against_database(dm, conn)
        resolver = Resolver(dm, live)
        subject = await resolver.resolve(conn, Scope(org_id, {"email": email}))
        out = {}
        for table in resolver.tables(subject.scope):
            sql, args = resolver.key_text_sql(table, subject)
            out[table] = {r[0] for r in await conn.fetch(sql, *args)}
    return {t: keys for t, keys in out.items() if keys}


async def test_a_sha256_of_the_email_erases_the_same_rows_as_the_email(
    client: httpx.AsyncClient, org: Org, overlap: OverlapSeed, platform_db: asyncpg.Pool
) -> None:
    planned = await _planned(platform_db, org.id, overlap.email)
    assert planned["users"] == {str(overlap.users["ann"])}
    digest = hashlib.sha256(f"  {overlap.email.upper()} ".strip().lower().encode()).hexdigest()
    job_id = await submit(
        client,
        org,
        {
            "type": "erasure",
            "subject": {"email_sha256": digest.upper()},
            "recovery_window_days": 0,
        },
    )
    job = await _final(client, org, job_id)
    assert job["status"] == "completed", job
    events = (await client.get(f"/v1/jobs/{job_id}/events", headers=org.headers)).json()
    plan = next(e for e in events["events"] if e["type"] == "ErasurePlanned")
    erased = {t: n for t, n in plan["details"]["per_table"].items() if n and "(" not in t}
    assert erased == {t: len(k) for t, k in planned.items()}
    dm = load_datamap(REPO / "deploy/local/sample/datamap.yaml")
    for table, keys in planned.items():  # those rows are gone (or masked, where kept)
        if dm.tables[table].action != "delete":
            continue
        left = await platform_db.fetchval(
            f'SELECT count(*) FROM "{table}" WHERE id::text = ANY($1::text[])', list(keys)
        )
        assert left == 0, table
    # Ann is gone; Ann2 (the same email in the other org) and Bob are not.
    left = await platform_db.fetch(
        "SELECT id FROM users WHERE id = ANY($1::bigint[])", list(overlap.users.values())
    )
    assert {r["id"] for r in left} == set(overlap.users.values()) - {overlap.users["ann"]}


async def test_hashed_identities_pass_through_the_kafka_request_topic(
    client: httpx.AsyncClient,
    org: Org,
    overlap: OverlapSeed,
    lethe_db: asyncpg.Pool,
    prepared: infra.Endpoints,
) -> None:
    md5 = hashlib.md5(overlap.email.encode()).hexdigest()
    producer = AIOKafkaProducer(bootstrap_servers=prepared.kafka_bootstrap_servers)
    await producer.start()
    try:
        msg = {
            "org_id": org.id,
            "source": "accounts-service",
            "request": {"type": "export", "subject": {"email_md5": md5}, "request_id": "md5-1"},
        }
        await producer.send_and_wait(REQUESTS, json.dumps(msg).encode(), key=org.id.encode())
    finally:
        await producer.stop()

    async def job_id() -> str | None:
        row = await lethe_db.fetchval(
            "SELECT id::text FROM lethe.jobs WHERE org_id = $1 AND request_id = 'md5-1'", org.id
        )
        return str(row) if row else None

    job = await _final(client, org, await eventually(job_id, what="the job from Kafka"))
    assert job["status"] == "ready", job  # Ann's data found by the hash of her email
    assert job["result"]["rows_per_table"]["users"] == 1


# --- OpenDSR ---------------------------------------------------------------------------------


def _opendsr_request(rid: str, kind: str, *identities: dict[str, str]) -> dict[str, Any]:
    return {
        "subject_request_id": rid,
        "subject_request_type": kind,
        "submitted_time": "2018-10-02T15:00:00Z",
        "subject_identities": list(identities),
        "api_version": "2.0",
    }


async def _opendsr_final(client: httpx.AsyncClient, org: Org, rid: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        r = await client.get(f"/opendsr/requests/{rid}", headers=org.headers)
        body: dict[str, Any] = r.json()
        return body if body.get("processor_status") in FINAL else None

    return await eventually(done, timeout=90, what=f"OpenDSR request {rid} to end")


async def test_opendsr_states_not_found_and_ambiguous_as_final(
    client: httpx.AsyncClient, org: Org, overlap: OverlapSeed, platform_db: asyncpg.Pool
) -> None:
    bob_phone_free = f"nobody-{uuid.uuid4().hex[:6]}@overlap.example"
    unknown = str(uuid.uuid4())
    r = await client.post(
        "/opendsr/requests",
        json=_opendsr_request(
            unknown,
            "erasure",
            {"identity_type": "email", "identity_value": bob_phone_free, "identity_format": "raw"},
        ),
        headers=org.headers,
    )
    assert r.status_code == 201, r.text
    body = await _opendsr_final(client, org, unknown)
    assert (body["request_status"], body["processor_status"]) == ("completed", "not_found")

    # The raw email of Ann and the sha256 of Bob's: two people, nothing done.
    bob_email = await platform_db.fetchval(
        "SELECT email FROM users WHERE id = $1", overlap.users["bob"]
    )
    two = str(uuid.uuid4())
    r = await client.post(
        "/opendsr/requests",
        json=_opendsr_request(
            two,
            "access",
            {"identity_type": "email", "identity_value": overlap.email, "identity_format": "raw"},
            {
                "identity_type": "email",
                "identity_value": hashlib.sha256(bob_email.encode()).hexdigest(),
                "identity_format": "sha256",
            },
        ),
        headers=org.headers,
    )
    assert r.status_code == 201, r.text
    body = await _opendsr_final(client, org, two)
    assert (body["request_status"], body["processor_status"]) == ("cancelled", "ambiguous")


async def test_an_erasure_that_leaves_a_trace_ends_completed_with_errors_and_says_so(
    client: httpx.AsyncClient,
    org: Org,
    platform_db: asyncpg.Pool,
    s3: Any,
    prepared: infra.Endpoints,
) -> None:
    seeded = await seed_sample(platform_db, s3, org.id, users=2, conversations_per_user=1)
    subject = seeded.users[0]
    # The subject's email in a row the data map does not tie to them (a log entry holding
    # the address): the erasure cannot take it, the map-independent scan finds it.
    log_id = await platform_db.fetchval(
        "INSERT INTO activity_logs (org_id, event) VALUES ($1, $2) RETURNING id",
        org.id,
        subject.email,
    )
    requester = f"dpo-{uuid.uuid4().hex[:8]}@{org.id}.test"
    job_id = await submit(
        client,
        org,
        {
            "type": "erasure",
            "subject": {"email": subject.email},
            "notify_email": requester,
            "recovery_window_days": 0,
        },
    )
    job = await _final(client, org, job_id)
    assert job["status"] == "completed_with_errors", job
    assert job["done"] == seeded.rows_of(subject)  # the mapped rows went all the same
    traces = [i for i in job["needs_review"] if i["kind"] == "trace"]
    assert [(i["table"].rsplit(".", 1)[-1], i["column"], i["key"]) for i in traces] == [
        ("activity_logs", "event", str(log_id))
    ], job["needs_review"]
    assert subject.email not in json.dumps(job)  # where, never the value
    mail = await _mail(prepared.mail_dir, requester, job_id, "need review")
    assert f"{len(job['needs_review'])} items could not be processed automatically" in mail, mail
    page = _words(await _web_page(client, org, job_id))
    assert "activity_logs" in page and subject.email not in page
    # The trace is still there: the job said so instead of claiming a clean erasure.
    assert await platform_db.fetchval("SELECT 1 FROM activity_logs WHERE id = $1", log_id)
