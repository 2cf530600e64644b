"""The approval step and duplicate requests through the real stack (five services as
processes on real Kafka/Postgres/S3/SMTP), as people see them: over the API, the web UI, the
CLI, by email and in the audit trail; and the job's state rebuilt from its events."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from deploy.local import infra
from deploy.local.sample.seed import SeededOrg
from deploy.local.stack import REPO_ROOT
from services.intake import store
from services.intake.service.rebuild import rebuild
from tests.conftest import Org
from tests.helpers import eventually, job_in, mails_to
from tests.seeding import seed_sample

pytestmark = pytest.mark.e2e
BUCKET = "lethe-platform"
DONE = ("completed", "failed", "not_found")


@pytest.fixture
async def seeded(org: Org, platform_db: asyncpg.Pool, s3: Any) -> SeededOrg:
    return await seed_sample(
        platform_db,
        s3,
        org.id,
        bucket=BUCKET,
        conversations_per_user=1,
        messages_per_conversation=5,
    )


async def _key(db: asyncpg.Pool, org: Org, role: str) -> dict[str, str]:
    key = await store.create_api_key(db, org.id, role, f"{role} key")
    return {"Authorization": f"Bearer {key}"}


async def _approval_on(client: httpx.AsyncClient, org: Org, channels: list[str]) -> None:
    r = await client.put(
        f"/v1/orgs/{org.id}/approvals", json={"channels": channels}, headers=org.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["channels"] == channels


def _erasure(email: str, requester: str, **more: Any) -> dict[str, Any]:
    return {
        "type": "erasure",
        "subject": {"email": email},
        "notify_email": requester,
        "recovery_window_days": 0,
        "request_id": f"req-{uuid.uuid4()}",
        **more,
    }


async def _user_rows(platform_db: asyncpg.Pool, user_id: int) -> int:
    n: int = await platform_db.fetchval("SELECT count(*) FROM users WHERE id = $1", user_id)
    return n


async def _mail(mail_dir: Path, to: str, subject_has: str) -> str:
    async def found() -> str | None:
        for m in mails_to(mail_dir, to):
            if subject_has in str(m["Subject"]):
                return m.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        return None

    return await eventually(found, timeout=60, what=f"a mail to {to} saying {subject_has!r}")


async def _timeline(lethe_db: asyncpg.Pool, job_id: str) -> int:
    n: int = await lethe_db.fetchval(
        "SELECT count(*) FROM lethe.job_events WHERE job_id = $1", uuid.UUID(job_id)
    )
    return n


async def _audited(lethe_db: asyncpg.Pool, job_id: str, action: str) -> dict[str, Any]:
    async def row() -> dict[str, Any] | None:
        r = await lethe_db.fetchrow(
            "SELECT actor, details FROM lethe.audit_log WHERE job_id = $1 AND action = $2",
            uuid.UUID(job_id),
            action,
        )
        return dict(r) if r else None

    return await eventually(row, timeout=30, what=f"{action} in the audit trail")


async def _rebuilt_same(lethe_db: asyncpg.Pool, job_id: str, status: str) -> None:
    """`lethe jobs rebuild`: the state folded from the job's events is the row's."""
    result = await rebuild(lethe_db, uuid.UUID(job_id))
    assert result.state["status"] == status
    assert result.consistent, result.changes


async def _cli(api_url: str, key: str, state_dir: Path, *args: str) -> str:
    env = {
        **os.environ,
        "LETHE_API_URL": api_url,
        "LETHE_API_KEY": key,
        "LETHE_ENV_FILE": str(state_dir / "no-env-file"),
        "COLUMNS": "200",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        *args,
        env=env,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def _sign_in(client: httpx.AsyncClient, key: str) -> None:
    login = await client.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
    assert csrf, login.text
    r = await client.post("/ui/login", data={"csrf": csrf.group(1), "api_key": key})
    assert r.status_code == 303, r.text


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def test_a_held_erasure_waits_then_runs_to_completion_once_approved(
    client: httpx.AsyncClient,
    org: Org,
    seeded: SeededOrg,
    platform_db: asyncpg.Pool,
    lethe_db: asyncpg.Pool,
    prepared: infra.Endpoints,
) -> None:
    subject = seeded.users[0]
    requester = f"dpo-{uuid.uuid4().hex[:8]}@{org.id}.test"
    await _approval_on(client, org, ["api"])
    r = await client.post(
        "/v1/requests", json=_erasure(subject.email, requester), headers=org.headers
    )
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "awaiting_approval" and job["due_at"] and job["days_left"] >= 27
    job_id = job["id"]

    # Nothing reaches the eraser: the subject's data stays while the job waits.
    await asyncio.sleep(3)
    now = (await client.get(f"/v1/jobs/{job_id}", headers=org.headers)).json()
    assert now["status"] == "awaiting_approval" and now["total"] is None
    assert await _user_rows(platform_db, subject.id) == 1
    waiting = (await client.get("/v1/approvals", headers=org.headers)).json()["jobs"]
    assert [(j["id"], j["due_at"]) for j in waiting] == [(job_id, job["due_at"])]

    # A viewer may not decide: 403 naming the rule, nothing written.
    viewer = await _key(lethe_db, org, "viewer")
    before = await _timeline(lethe_db, job_id)
    r = await client.post(f"/v1/jobs/{job_id}/approve", json={}, headers=viewer)
    assert r.status_code == 403 and "admin" in r.json()["detail"], r.text
    assert await _timeline(lethe_db, job_id) == before

    admin = await _key(lethe_db, org, "admin")
    r = await client.post(
        f"/v1/jobs/{job_id}/approve", json={"reason": "identity checked"}, headers=admin
    )
    assert r.status_code == 200 and r.json()["status"] == "pending", r.text
    done = await job_in(client, org, job_id, DONE)
    assert done["status"] == "completed", done
    assert await _user_rows(platform_db, subject.id) == 0
    body = await _mail(prepared.mail_dir, requester, "was approved")
    assert "identity checked" in body and job_id in body

    # Approving again: 409 naming the state, nothing written.
    before = await _timeline(lethe_db, job_id)
    r = await client.post(f"/v1/jobs/{job_id}/approve", json={}, headers=admin)
    assert r.status_code == 409 and "completed" in r.json()["detail"], r.text
    assert await _timeline(lethe_db, job_id) == before

    approved = await _audited(lethe_db, job_id, "RequestApproved")
    admin_id = await lethe_db.fetchval(
        "SELECT id FROM lethe.api_keys WHERE org_id = $1 AND role = 'admin'", org.id
    )
    assert approved["actor"] == f"api_key:{admin_id}"  # who
    assert approved["details"]["reason"] == "identity checked"  # why
    await _audited(lethe_db, job_id, "ApprovalRequired")
    await _rebuilt_same(lethe_db, job_id, "completed")


async def test_a_denied_request_ends_denied_and_its_requester_is_told_why(
    client: httpx.AsyncClient,
    api_url: str,
    org: Org,
    seeded: SeededOrg,
    platform_db: asyncpg.Pool,
    lethe_db: asyncpg.Pool,
    prepared: infra.Endpoints,
    state_dir: Path,
) -> None:
    subject = seeded.users[1]
    requester = f"dpo-{uuid.uuid4().hex[:8]}@{org.id}.test"
    await _approval_on(client, org, ["api", "kafka"])
    job_id = (
        await client.post(
            "/v1/requests", json=_erasure(subject.email, requester), headers=org.headers
        )
    ).json()["id"]
    admin_key = await store.create_api_key(lethe_db, org.id, "admin", "approver")
    listed = await _cli(api_url, admin_key, state_dir, "jobs", "awaiting")
    assert job_id in listed
    out = await _cli(
        api_url, admin_key, state_dir, "jobs", "deny", job_id, "--reason", "not our customer"
    )
    assert "denied" in out
    job = (await client.get(f"/v1/jobs/{job_id}", headers=org.headers)).json()
    assert job["status"] == "denied" and job["outcome"] == "Denied by an approver: nothing done"
    assert job["error"] == "not our customer"
    body = await _mail(prepared.mail_dir, requester, "was denied")
    assert "not our customer" in body
    denied = await _audited(lethe_db, job_id, "RequestDenied")
    assert denied["details"]["reason"] == "not our customer"
    await asyncio.sleep(2)  # nothing reached the eraser
    assert await _user_rows(platform_db, subject.id) == 1
    # Denying without a reason is refused; a denied job takes no decision any more.
    r = await client.post(f"/v1/jobs/{job_id}/deny", json={"reason": "again"}, headers=org.headers)
    assert r.status_code == 409 and "denied" in r.json()["detail"]
    await _rebuilt_same(lethe_db, job_id, "denied")


async def test_the_setting_is_per_channel_and_the_web_ui_decides(
    client: httpx.AsyncClient,
    org: Org,
    seeded: SeededOrg,
    lethe_db: asyncpg.Pool,
) -> None:
    await _approval_on(client, org, ["web"])
    # Over the API: not held.
    r = await client.post(
        "/v1/requests",
        json=_erasure(seeded.users[2].email, "a@example.com", type="export"),
        headers=org.headers,
    )
    assert r.status_code == 202 and r.json()["status"] != "awaiting_approval", r.text
    # Through the web form: held, listed on the Approvals page with its deadline.
    await _sign_in(client, org.owner_key)
    form = await client.get("/ui/submit")
    r = await client.post(
        "/ui/submit",
        data={
            "csrf": _csrf(form.text),
            "type": "erasure",
            "scope": "subject",
            "email": seeded.users[2].email,
            "regulation": "gdpr",
            "recovery_window_days": "0",
            "request_id": f"web-{uuid.uuid4()}",
        },
    )
    assert r.status_code == 303, r.text
    job_id = r.headers["location"].split("/jobs/")[1].split("?")[0]
    page = await client.get("/ui/approvals")
    assert page.status_code == 200 and job_id[:8] in page.text
    job = (await client.get(f"/v1/jobs/{job_id}", headers=org.headers)).json()
    assert job["status"] == "awaiting_approval"
    job_page = await client.get(f"/ui/jobs/{job_id}")
    assert "Approve request" in job_page.text and "Deny request" in job_page.text
    r = await client.post(
        f"/ui/jobs/{job_id}/approve", data={"csrf": _csrf(job_page.text), "reason": ""}
    )
    assert r.status_code == 303 and "done=approved" in r.headers["location"]
    await job_in(client, org, job_id, DONE)
    await _rebuilt_same(lethe_db, job_id, "completed")


async def test_a_duplicate_request_is_linked_and_both_requesters_are_told(
    client: httpx.AsyncClient,
    org: Org,
    seeded: SeededOrg,
    platform_db: asyncpg.Pool,
    lethe_db: asyncpg.Pool,
    prepared: infra.Endpoints,
) -> None:
    subject = seeded.users[0]
    first, second = (f"dpo{i}-{uuid.uuid4().hex[:8]}@{org.id}.test" for i in (1, 2))
    await _approval_on(client, org, ["api"])  # holds the first job open for the test
    r = await client.post("/v1/requests", json=_erasure(subject.email, first), headers=org.headers)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]

    again = _erasure(subject.email, second)
    r = await client.post("/v1/requests", json=again, headers=org.headers)
    assert r.status_code == 200, r.text
    linked = r.json()
    assert linked["duplicate_of"] == job_id == linked["id"]
    assert linked["status"] == "awaiting_approval" and "not started" in linked["note"]
    # Its idempotency key answers the same link again.
    replay = await client.post("/v1/requests", json=again, headers=org.headers)
    assert replay.status_code == 200
    assert replay.json()["linked_request_id"] == linked["linked_request_id"]
    assert (
        await lethe_db.fetchval(
            "SELECT count(*) FROM lethe.jobs WHERE org_id = $1 AND subject_hash = $2",
            org.id,
            linked["subject_hash"],
        )
        == 1
    )
    audited = await _audited(lethe_db, job_id, "RequestLinked")
    assert audited["details"]["link_id"] == linked["linked_request_id"]

    r = await client.post(f"/v1/jobs/{job_id}/approve", json={}, headers=org.headers)
    assert r.status_code == 200, r.text
    assert (await job_in(client, org, job_id, DONE))["status"] == "completed"
    await _mail(prepared.mail_dir, first, "complete")
    body = await _mail(prepared.mail_dir, second, "which yours was linked to")
    assert job_id in body
    told = await lethe_db.fetchrow(
        "SELECT notified_at, requester_email FROM lethe.job_links WHERE id = $1",
        uuid.UUID(linked["linked_request_id"]),
    )
    assert told["notified_at"] is not None and told["requester_email"] is None
    # Once the job is done, a new request for the subject is a job of its own again.
    r = await client.post("/v1/requests", json=_erasure(subject.email, second), headers=org.headers)
    assert r.status_code == 202 and r.json()["id"] != job_id


async def _bulk(client: httpx.AsyncClient, org: Org, emails: list[str]) -> dict[str, Any]:
    """A bulk erasure of these subjects, accepted; with its rows (row order kept)."""
    body = {
        "type": "erasure",
        "subjects": [{"email": e} for e in emails],
        "recovery_window_days": 0,
        "notify_email": f"dpo-{uuid.uuid4().hex[:8]}@{org.id}.test",
    }
    r = await client.post("/v1/bulk-requests", json=body, headers=org.headers)
    assert r.status_code == 202, r.text
    return r.json()


async def _bulk_rows(client: httpx.AsyncClient, org: Org, bulk_id: str) -> list[dict[str, Any]]:
    r = await client.get(
        f"/v1/bulk-requests/{bulk_id}/subjects", params={"limit": 100}, headers=org.headers
    )
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["subjects"]
    return rows


async def _outcome(client: httpx.AsyncClient, org: Org, bulk_id: str, row: int, want: str) -> None:
    async def decided() -> bool:
        rows = await _bulk_rows(client, org, bulk_id)
        return rows[row - 1]["outcome"] == want

    await eventually(decided, timeout=90, what=f"bulk row {row} to be {want}")


async def test_a_bulk_request_waits_for_approval_when_its_org_asks_for_it_on_bulk(
    client: httpx.AsyncClient,
    org: Org,
    seeded: SeededOrg,
    platform_db: asyncpg.Pool,
    lethe_db: asyncpg.Pool,
) -> None:
    users = seeded.users[:3]
    await _approval_on(client, org, ["bulk"])
    bulk = await _bulk(client, org, [u.email for u in users])
    assert bulk["counts"]["pending"] == 3, bulk
    rows = await _bulk_rows(client, org, bulk["id"])
    job_ids = [row["job_id"] for row in rows]
    assert len(set(job_ids)) == 3 and None not in job_ids, rows

    # Every member waits, its request event kept; nothing reaches the eraser.
    await asyncio.sleep(3)
    for job_id in job_ids:
        job = (await client.get(f"/v1/jobs/{job_id}", headers=org.headers)).json()
        assert job["status"] == "awaiting_approval" and job["total"] is None, job
        await _audited(lethe_db, job_id, "ApprovalRequired")
    assert [await _user_rows(platform_db, u.id) for u in users] == [1, 1, 1]
    held = await lethe_db.fetchval(
        "SELECT count(*) FROM lethe.held_requests WHERE job_id = ANY($1::uuid[])",
        [uuid.UUID(j) for j in job_ids],
    )
    assert held == 3
    waiting = (await client.get("/v1/approvals", headers=org.headers)).json()["jobs"]
    assert {j["id"] for j in waiting} == set(job_ids)

    # Approving one runs it, and the bulk outcome of that subject follows.
    r = await client.post(f"/v1/jobs/{job_ids[0]}/approve", json={}, headers=org.headers)
    assert r.status_code == 200 and r.json()["status"] == "pending", r.text
    assert (await job_in(client, org, job_ids[0], DONE))["status"] == "completed"
    await _outcome(client, org, bulk["id"], 1, "erased")
    assert await _user_rows(platform_db, users[0].id) == 0
    rows = await _bulk_rows(client, org, bulk["id"])
    assert [row["outcome"] for row in rows] == ["erased", "pending", "pending"], rows
    assert [await _user_rows(platform_db, u.id) for u in users[1:]] == [1, 1]
    shown = (await client.get(f"/v1/bulk-requests/{bulk['id']}", headers=org.headers)).json()
    assert shown["counts"]["pending"] == 2 and shown["finished_at"] is None, shown


async def test_a_bulk_member_whose_subject_has_an_open_job_is_linked_to_it(
    client: httpx.AsyncClient,
    org: Org,
    seeded: SeededOrg,
    platform_db: asyncpg.Pool,
    lethe_db: asyncpg.Pool,
) -> None:
    known, new = seeded.users[0], seeded.users[1]
    await _approval_on(client, org, ["api"])  # holds the single job open for the test
    r = await client.post(
        "/v1/requests", json=_erasure(known.email, "a@x.test"), headers=org.headers
    )
    assert r.status_code == 202 and r.json()["status"] == "awaiting_approval", r.text
    open_id = r.json()["id"]

    # The known subject, a new one, and the new one again in the same list.
    bulk = await _bulk(client, org, [known.email, new.email, new.email])
    rows = await _bulk_rows(client, org, bulk["id"])
    assert rows[0]["job_id"] == open_id and rows[0]["job_status"] == "awaiting_approval", rows
    new_id = rows[1]["job_id"]
    assert new_id not in (None, open_id) and rows[2]["job_id"] == new_id, rows
    jobs = await lethe_db.fetch("SELECT id FROM lethe.jobs WHERE org_id = $1", org.id)
    assert {str(j["id"]) for j in jobs} == {open_id, new_id}  # one new job only
    links = await lethe_db.fetch(
        "SELECT job_id, channel FROM lethe.job_links WHERE org_id = $1", org.id
    )
    assert sorted((str(x["job_id"]), x["channel"]) for x in links) == sorted(
        [(open_id, "bulk"), (new_id, "bulk")]
    )
    audited = await _audited(lethe_db, open_id, "RequestLinked")
    assert audited["details"]["channel"] == "bulk"

    # The new subject's job runs (bulk is not held): both its rows follow it.
    assert (await job_in(client, org, new_id, DONE))["status"] == "completed"
    await _outcome(client, org, bulk["id"], 3, "erased")
    rows = await _bulk_rows(client, org, bulk["id"])
    assert [row["outcome"] for row in rows] == ["pending", "erased", "erased"], rows
    assert await _user_rows(platform_db, known.id) == 1

    # The linked row follows the open job: approved, erased, the bulk is done.
    r = await client.post(f"/v1/jobs/{open_id}/approve", json={}, headers=org.headers)
    assert r.status_code == 200, r.text
    await _outcome(client, org, bulk["id"], 1, "erased")
    done = (await client.get(f"/v1/bulk-requests/{bulk['id']}", headers=org.headers)).json()
    assert done["counts"]["erased"] == 3 and done["counts"]["pending"] == 0, done
    assert await _user_rows(platform_db, known.id) == 0
