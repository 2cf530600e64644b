"""Intake's public face against real Postgres and Kafka: validation, roles, idempotency,
lifecycle, deadlines. Intake runs in this process (one app for the module)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.intake import store
from services.intake.app import create_http
from services.intake.deadlines import add_months
from services.intake.settings import IntakeSettings
from shared.events import Actor, make_event
from shared.events.progress import ErasurePlanned, JobCancelled, JobCompleted
from shared.events.topics import AUDIT, REQUESTS, REQUESTS_REJECTED
from tests.conftest import Org
from tests.helpers import eventually, find_record

pytestmark = pytest.mark.integration
EMAIL = {"email": "ann@example.com"}


def _someone() -> dict[str, str]:
    """A subject of its own: a second request for a subject with an open job of the same type
    is linked to that job, not started (tests/e2e/test_approvals.py)."""
    return {"email": f"ann-{uuid.uuid4().hex[:8]}@example.com"}


@pytest.fixture(scope="module")
async def api(base_settings: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    http = create_http(IntakeSettings(**base_settings, submit_burst=1000))
    async with http.router.lifespan_context(http):
        transport = httpx.ASGITransport(app=http)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            yield client


async def _key(db: asyncpg.Pool, org: Org, role: str) -> dict[str, str]:
    key = await store.create_api_key(db, org.id, role, f"{role} key")
    return {"Authorization": f"Bearer {key}"}


async def _written(db: asyncpg.Pool, org_id: str) -> tuple[int, int]:
    jobs = await db.fetchval("SELECT count(*) FROM lethe.jobs WHERE org_id = $1", org_id)
    outbox = await db.fetchval(
        "SELECT count(*) FROM lethe.outbox WHERE event->>'org_id' = $1", org_id
    )
    return jobs, outbox


# (body or raw text, content type, expected status, words the reason must contain)
HTTP_CASES: list[tuple[Any, str, int, str]] = [
    ({"type": "erasure"}, "json", 422, "subject"),
    ({"type": "erasure", "subject": {}}, "json", 422, "identity"),
    ({"type": "erasure", "subject": {"email": ""}}, "json", 422, "email"),
    ({"type": "erasure", "subject": {"email": "nope"}}, "json", 422, "email"),
    ({"type": "erasure", "subject": {"email": "a@b"}}, "json", 422, "email"),
    ({"type": "erasure", "subject": {"email": "a" * 330 + "@b.co"}}, "json", 422, "email"),
    ({"type": "erasure", "subject": {"phone": "1" * 51}}, "json", 422, "phone"),
    ({"type": "erasure", "subject": {"user_id": "x" * 201}}, "json", 422, "user_id"),
    ({"type": "erasure", "subject": {"shoe_size": "9"}}, "json", 422, "shoe_size"),
    ({"type": "erasure", "subject": {"email": 5}}, "json", 422, "email"),
    ({"type": "erasure", "subject": "ann@example.com"}, "json", 422, "subject"),
    ({"type": "shred", "subject": EMAIL}, "json", 422, "type"),
    ({"subject": EMAIL}, "json", 422, "type"),
    ({"type": None, "subject": EMAIL}, "json", 422, "type"),
    ({"type": "erasure", "subject": EMAIL, "scope": "galaxy"}, "json", 422, "scope"),
    ({"type": "erasure", "scope": "organisation", "subject": EMAIL}, "json", 422, "subject"),
    ({"type": "erasure", "scope": "organisation"}, "json", 422, "confirm_org_name"),
    (
        {"type": "erasure", "scope": "organisation", "confirm_org_name": "Nope"},
        "json",
        422,
        "confirm_org_name",
    ),
    ({"type": "export", "scope": "organisation"}, "json", 422, "confirm_org_name"),
    (
        {"type": "export", "scope": "organisation", "confirm_org_name": "Nope"},
        "json",
        422,
        "confirm_org_name",
    ),
    (
        {"type": "erasure", "subject": EMAIL, "recovery_window_days": 31},
        "json",
        422,
        "recovery_window_days",
    ),
    (
        {"type": "erasure", "subject": EMAIL, "recovery_window_days": -1},
        "json",
        422,
        "recovery_window_days",
    ),
    (
        {"type": "erasure", "subject": EMAIL, "recovery_window_days": "seven"},
        "json",
        422,
        "recovery_window_days",
    ),
    ({"type": "erasure", "subject": EMAIL, "regulation": "hipaa"}, "json", 422, "regulation"),
    ({"type": "erasure", "subject": EMAIL, "regulation": "custom"}, "json", 422, "due_in_days"),
    ({"type": "erasure", "subject": EMAIL, "due_in_days": 10}, "json", 422, "due_in_days"),
    (
        {"type": "erasure", "subject": EMAIL, "regulation": "custom", "due_in_days": 91},
        "json",
        422,
        "due_in_days",
    ),
    ({"type": "erasure", "subject": EMAIL, "request_id": ""}, "json", 422, "request_id"),
    ({"type": "erasure", "subject": EMAIL, "request_id": "r" * 201}, "json", 422, "request_id"),
    ({"type": "erasure", "subject": EMAIL, "notify_email": "dpo"}, "json", 422, "notify_email"),
    ({"type": "erasure", "subject": EMAIL, "reason": "x" * 2001}, "json", 422, "reason"),
    ({"type": "export", "subject": EMAIL, "format": "xml"}, "json", 422, "format"),
    ({"type": "erasure", "subject": EMAIL, "colour": "blue"}, "json", 422, "colour"),
    ([{"type": "erasure"}], "json", 422, "body"),
    ("{not json", "json", 422, "JSON"),
    ("", "json", 422, "body"),
    ({"type": "erasure", "subject": EMAIL}, "text/plain", 415, "content-type"),
    ({"type": "erasure", "subject": EMAIL}, "form", 415, "content-type"),
    ({"type": "erasure", "subject": EMAIL, "reason": "x" * 70_000}, "json", 413, "larger"),
]


@pytest.mark.parametrize("body, ctype, status, words", HTTP_CASES)
async def test_malformed_http_requests_are_refused_with_the_field_named(
    api: httpx.AsyncClient,
    org: Org,
    lethe_db: asyncpg.Pool,
    body: Any,
    ctype: str,
    status: int,
    words: str,
) -> None:
    raw = body if isinstance(body, str) else json.dumps(body)
    content_type = {"json": "application/json", "form": "application/x-www-form-urlencoded"}.get(
        ctype, ctype
    )
    r = await api.post(
        "/v1/requests", content=raw.encode(), headers={**org.headers, "content-type": content_type}
    )
    assert r.status_code == status, r.text
    assert words.lower() in r.text.lower(), r.text
    assert await _written(lethe_db, org.id) == (0, 0)


KAFKA_CASES: list[tuple[bytes, str]] = [
    (b"{not json", "invalid"),
    (b"", "invalid"),
    (b"[]", "invalid"),
    (json.dumps({"source": "shop", "request": {}}).encode(), "org_id"),
    (json.dumps({"org_id": "ORG", "request": {"type": "erasure"}}).encode(), "source"),
    (json.dumps({"org_id": "ORG", "source": "shop"}).encode(), "request"),
    (
        json.dumps({"org_id": "ORG", "source": "shop", "request": {"type": "erasure"}}).encode(),
        "request.subject",
    ),
    (
        json.dumps(
            {
                "org_id": "ORG",
                "source": "shop",
                "request": {"type": "erasure", "subject": {"email": "x"}},
            }
        ).encode(),
        "request.subject.email",
    ),
    (
        json.dumps(
            {
                "org_id": "ORG",
                "source": "shop",
                "extra": 1,
                "request": {"type": "erasure", "subject": EMAIL},
            }
        ).encode(),
        "extra",
    ),
    (
        json.dumps(
            {
                "org_id": "no-such-org",
                "source": "shop",
                "request": {"type": "erasure", "subject": EMAIL},
            }
        ).encode(),
        "org_id",
    ),
    (
        json.dumps(
            {
                "org_id": "ORG",
                "source": "shop",
                "request": {
                    "type": "erasure",
                    "scope": "organisation",
                    "confirm_org_name": "wrong",
                },
            }
        ).encode(),
        "confirm_org_name",
    ),
]


async def test_malformed_kafka_requests_get_a_rejection_event(
    api: httpx.AsyncClient,
    org: Org,
    lethe_db: asyncpg.Pool,
    prepared: Any,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=prepared.kafka_bootstrap_servers)
    await producer.start()
    keys = []
    try:
        for i, (raw, _) in enumerate(KAFKA_CASES):
            key = f"{org.id}-bad-{i}".encode()
            keys.append(key)
            await producer.send_and_wait(REQUESTS, raw.replace(b"ORG", org.id.encode()), key=key)
    finally:
        await producer.stop()
    for key, (_, words) in zip(keys, KAFKA_CASES, strict=True):
        raw = await eventually(
            lambda key=key: _rejection(prepared.kafka_bootstrap_servers, key),  # type: ignore[misc]
            what=f"RequestRejected for {key!r}",
            timeout=30,
        )
        payload = json.loads(raw)["payload"]
        assert words in payload["reason"], payload
    assert await _written(lethe_db, org.id) == (0, 0)


async def _rejection(bootstrap: str, key: bytes) -> bytes | None:
    try:
        return await find_record(
            bootstrap,
            REQUESTS_REJECTED,
            lambda r: json.loads(r.value)["payload"].get("original_key") == key.decode(),
        )
    except AssertionError:
        return None


async def test_a_valid_kafka_request_becomes_a_job(
    api: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool, prepared: Any
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=prepared.kafka_bootstrap_servers)
    await producer.start()
    try:
        msg = {
            "org_id": org.id,
            "source": "accounts-service",
            "request": {"type": "erasure", "subject": EMAIL, "request_id": "closed-1"},
        }
        await producer.send_and_wait(REQUESTS, json.dumps(msg).encode(), key=org.id.encode())
        await producer.send_and_wait(REQUESTS, json.dumps(msg).encode(), key=org.id.encode())
    finally:
        await producer.stop()

    async def job() -> asyncpg.Record | None:
        return await lethe_db.fetchrow(
            "SELECT channel, actor, request_id FROM lethe.jobs WHERE org_id = $1", org.id
        )

    row = await eventually(job, what="the job from Kafka")
    assert row["channel"] == "kafka" and row["actor"] == "upstream:accounts-service"
    await eventually(lambda: _no_outbox(lethe_db, org.id), what="the relay to publish")
    assert (await _written(lethe_db, org.id))[0] == 1  # the repeat made no second job


async def _no_outbox(db: asyncpg.Pool, org_id: str) -> bool:
    return (await _written(db, org_id))[1] == 0


async def test_roles_and_orgs(
    api: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool, base_settings: dict[str, Any]
) -> None:
    viewer, admin = await _key(lethe_db, org, "viewer"), await _key(lethe_db, org, "admin")
    owner = org.headers
    other = Org(f"org-{uuid.uuid4().hex[:12]}", "Other", "")
    await store.create_org(lethe_db, other.id, other.name)
    stranger = await _key(lethe_db, other, "owner")
    erase = {"type": "erasure", "subject": EMAIL}
    org_erase = {"type": "erasure", "scope": "organisation", "confirm_org_name": org.name}

    assert (await api.post("/v1/requests", json=erase, headers=viewer)).status_code == 403
    # Erasure and export requests are owner-only unless the org delegates (issue 13).
    refused = await api.post("/v1/requests", json=erase, headers=admin)
    assert refused.status_code == 403 and "owner-only" in refused.text
    job = (await api.post("/v1/requests", json=erase, headers=owner)).json()
    assert (await api.post("/v1/requests", json=org_erase, headers=admin)).status_code == 403
    jid = job["id"]
    matrix = [
        # (method, path, body, {headers: expected status})
        ("GET", "/v1/jobs", None, {"v": 200, "a": 200, "o": 200, "s": 200}),
        ("GET", f"/v1/jobs/{jid}", None, {"v": 200, "a": 200, "o": 200, "s": 404}),
        ("GET", f"/v1/jobs/{jid}/events", None, {"v": 200, "a": 200, "o": 200, "s": 404}),
        (
            "POST",
            f"/v1/jobs/{jid}/extend",
            {"days": 10, "reason": "complex request"},
            {"v": 403, "s": 404, "a": 200},
        ),
        ("POST", f"/v1/jobs/{jid}/restore", None, {"v": 403, "a": 403, "s": 404, "o": 409}),
        ("POST", f"/v1/jobs/{jid}/cancel", None, {"v": 403, "s": 404, "a": 202}),
    ]
    who = {"v": viewer, "a": admin, "o": owner, "s": stranger}
    for method, path, body, expected in matrix:
        for k, status in expected.items():
            r = await api.request(method, path, json=body, headers=who[k])
            assert r.status_code == status, (method, path, k, r.text)
    # Our list has our job; the stranger's org has no job, and the stranger sees none of ours.
    ours = (await api.get("/v1/jobs", headers=owner)).json()["jobs"]
    assert jid in [j["id"] for j in ours]
    assert (await api.get("/v1/jobs", headers=stranger)).json()["jobs"] == []
    assert (await api.get("/v1/jobs", headers={"Authorization": "Bearer nope"})).status_code == 401
    # The viewer's refused cancel is in the audit trail, under our org.
    refused_cancel = f"/v1/jobs/{jid}/cancel"

    async def refusal() -> bytes | None:
        def match(rec: Any) -> bool:
            if b"AuthFailed" not in rec.value:
                return False
            env = json.loads(rec.value)
            return (
                env.get("type") == "AuthFailed"
                and env.get("org_id") == org.id
                and env["payload"].get("path") == refused_cancel
            )

        try:
            return await find_record(base_settings["kafka_bootstrap_servers"], AUDIT, match)
        except AssertionError:
            return None

    audited = json.loads(await eventually(refusal, what="AuthFailed on the audit topic"))
    assert audited["payload"]["method"] == "POST" and "viewer" in audited["payload"]["reason"]
    published = await lethe_db.fetchval(
        "SELECT count(*) FROM lethe.job_events WHERE job_id = $1", uuid.UUID(jid)
    )
    assert published >= 1


async def test_idempotency_keys(api: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool) -> None:
    body = {"type": "erasure", "subject": EMAIL, "request_id": "ticket-7"}
    first = await api.post("/v1/requests", json=body, headers=org.headers)
    again = await api.post("/v1/requests", json=body, headers=org.headers)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = await api.post(
        "/v1/requests", json={**body, "subject": {"email": "bob@example.com"}}, headers=org.headers
    )
    assert other.status_code == 409 and "ticket-7" in other.text
    assert (await _written(lethe_db, org.id))[0] == 1


async def test_illegal_transitions_name_the_state(
    api: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool
) -> None:
    job = (
        await api.post(
            "/v1/requests", json={"type": "erasure", "subject": EMAIL}, headers=org.headers
        )
    ).json()
    r = await api.post(f"/v1/jobs/{job['id']}/restore", headers=org.headers)
    assert r.status_code == 409 and "pending" in r.text
    done = make_event(
        JobCompleted(done=1, total=1, verification={"ok": True}),
        actor=Actor(kind="service", id="eraser"),
        job_id=uuid.UUID(job["id"]),
        org_id=org.id,
    )
    assert await store.apply_progress(lethe_db, done)
    assert not await store.apply_progress(lethe_db, done)  # a redelivery changes nothing
    r = await api.post(f"/v1/jobs/{job['id']}/cancel", headers=org.headers)
    assert r.status_code == 409 and "completed" in r.text
    r = await api.post(
        f"/v1/jobs/{job['id']}/extend", headers=org.headers, json={"days": 5, "reason": "too late"}
    )
    assert r.status_code == 409 and "completed" in r.text
    events = (await api.get(f"/v1/jobs/{job['id']}/events", headers=org.headers)).json()
    assert [e["type"] for e in events["events"]] == ["ErasureRequested", "JobCompleted"]


async def test_deadlines_extensions_and_overdue(
    api: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool
) -> None:
    def submit(**kw: Any) -> Any:
        return api.post(
            "/v1/requests",
            headers=org.headers,
            json={"type": "erasure", "subject": _someone(), **kw},
        )

    gdpr, ccpa = (await submit()).json(), (await submit(regulation="ccpa")).json()
    custom = (await submit(regulation="custom", due_in_days=10)).json()
    # GDPR Art. 12(3): one calendar month (end-of-month rule); CCPA: 45 days; custom: as asked.
    received = datetime.fromisoformat(gdpr["received_at"])
    assert datetime.fromisoformat(gdpr["due_at"]) == add_months(received, 1)
    for job, days in ((ccpa, 45), (custom, 10)):
        received = datetime.fromisoformat(job["received_at"])
        assert datetime.fromisoformat(job["due_at"]) - received == timedelta(days=days)
    gdpr_due = datetime.fromisoformat(gdpr["due_at"])
    most = (add_months(gdpr_due, 2) - gdpr_due).days  # two further calendar months
    too_long = await api.post(
        f"/v1/jobs/{gdpr['id']}/extend",
        headers=org.headers,
        json={"days": most + 1, "reason": "complex"},
    )
    assert too_long.status_code == 422 and "GDPR Art. 12(3)" in too_long.text, too_long.text
    assert "two further calendar months" in too_long.text
    no_reason = await api.post(
        f"/v1/jobs/{gdpr['id']}/extend", headers=org.headers, json={"days": 30}
    )
    assert no_reason.status_code == 422 and "reason" in no_reason.text
    assert "GDPR Art. 12(3)" in no_reason.text
    ccpa_long = await api.post(
        f"/v1/jobs/{ccpa['id']}/extend", headers=org.headers, json={"days": 46, "reason": "complex"}
    )
    assert ccpa_long.status_code == 422 and "45" in ccpa_long.text
    assert "11 CCR 7021" in ccpa_long.text
    ext = await api.post(
        f"/v1/jobs/{gdpr['id']}/extend",
        headers=org.headers,
        json={"months": 2, "reason": "many systems involved"},
    )
    assert ext.status_code == 200, ext.text
    assert datetime.fromisoformat(ext.json()["extended_due_at"]) == add_months(gdpr_due, 2)
    assert ext.json()["extension_notified_at"] is not None
    twice = await api.post(
        f"/v1/jobs/{gdpr['id']}/extend", headers=org.headers, json={"days": 1, "reason": "again"}
    )
    assert twice.status_code == 409 and "already" in twice.text
    # Custom deadlines cannot be extended; past deadlines show as overdue.
    assert (
        await api.post(
            f"/v1/jobs/{custom['id']}/extend",
            headers=org.headers,
            json={"days": 1, "reason": "x y z"},
        )
    ).status_code == 409
    await lethe_db.execute(
        "UPDATE lethe.jobs SET due_at = now() - interval '1 day' WHERE id = $1",
        uuid.UUID(ccpa["id"]),
    )
    overdue = (await api.get("/v1/jobs?overdue=true", headers=org.headers)).json()["jobs"]
    assert [j["id"] for j in overdue] == [ccpa["id"]] and overdue[0]["overdue"] is True
    soon = datetime.now(UTC) + timedelta(days=20)
    due_soon = (
        await api.get("/v1/jobs", params={"due_before": soon.isoformat()}, headers=org.headers)
    ).json()["jobs"]
    assert {j["id"] for j in due_soon} == {ccpa["id"], custom["id"]}
    # Past the first due date, an extension can no longer be notified.
    late = await api.post(
        f"/v1/jobs/{ccpa['id']}/extend", headers=org.headers, json={"days": 5, "reason": "late"}
    )
    assert late.status_code == 409 and "11 CCR 7021" in late.text and "passed" in late.text


async def test_cursor_pagination_walks_every_job_once(api: httpx.AsyncClient, org: Org) -> None:
    ids = set()
    for _ in range(5):
        r = await api.post(
            "/v1/requests", headers=org.headers, json={"type": "export", "subject": _someone()}
        )
        ids.add(r.json()["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/v1/jobs", params=params, headers=org.headers)).json()
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 5 and set(seen) == ids
    bad = await api.get("/v1/jobs", params={"cursor": "garbage"}, headers=org.headers)
    assert bad.status_code == 400 and "cursor" in bad.text


async def test_privacy_requests_are_owner_only_unless_delegated(
    api: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool, base_settings: dict[str, Any]
) -> None:
    admin = await _key(lethe_db, org, "admin")
    erase = {"type": "erasure", "subject": EMAIL}
    export = {"type": "export", "subject": EMAIL}
    for body in (erase, export):
        r = await api.post("/v1/requests", json=body, headers=admin)
        assert r.status_code == 403 and "owner-only" in r.text and "delegat" in r.text, r.text
    assert (await _written(lethe_db, org.id))[0] == 0
    # Only owners may delegate, and the change is audited with old and new value.
    path = f"/v1/orgs/{org.id}/delegation"
    on = {"admins_submit_subject_requests": True}
    assert (await api.put(path, json=on, headers=admin)).status_code == 403
    assert (await api.get(path, headers=org.headers)).json()[
        "admins_submit_subject_requests"
    ] is False
    r = await api.put(path, json=on, headers=org.headers)
    assert r.status_code == 200 and r.json()["admins_submit_subject_requests"] is True

    async def published() -> bytes | None:
        try:
            return await find_record(
                base_settings["kafka_bootstrap_servers"],
                AUDIT,
                lambda rec: b"OrgDelegationChanged" in rec.value and org.id.encode() in rec.value,
            )
        except AssertionError:
            return None

    raw = await eventually(published, what="OrgDelegationChanged on the audit topic", timeout=30)
    audited = json.loads(raw)
    assert audited["actor"]["kind"] == "api_key" and audited["org_id"] == org.id
    assert audited["payload"]["old"] is False and audited["payload"]["new"] is True
    for body in (erase, export):
        assert (await api.post("/v1/requests", json=body, headers=admin)).status_code == 202
    # Subject-level only: a whole-organisation export stays the owners'.
    whole = await api.post(
        "/v1/requests", json={"type": "export", "scope": "organisation"}, headers=admin
    )
    assert whole.status_code == 403 and "only an owner" in whole.text
    # Delegated or not, an admin cannot shorten the recovery window below the org default.
    short = await api.post("/v1/requests", json={**erase, "recovery_window_days": 0}, headers=admin)
    assert short.status_code == 403, short.text
    assert "only an owner may shorten the recovery window" in short.text
    assert "default of 7 days" in short.text
    longer = await api.post(
        "/v1/requests",
        json={**erase, "subject": _someone(), "recovery_window_days": 10},
        headers=admin,
    )
    assert longer.status_code == 202
    owner_short = await api.post(
        "/v1/requests",
        json={**erase, "subject": _someone(), "recovery_window_days": 0},
        headers=org.headers,
    )
    assert owner_short.status_code == 202
    # Taking it back refuses admins again.
    await api.put(path, json={"admins_submit_subject_requests": False}, headers=org.headers)
    assert (await api.post("/v1/requests", json=erase, headers=admin)).status_code == 403


async def test_an_org_export_is_the_owners_with_the_org_name_confirmed(
    api: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool
) -> None:
    """Like an org erasure: every person's data of the org leaves, so only an owner may ask,
    and only by typing the org's name; delegation to admins covers subject requests only."""
    admin = await _key(lethe_db, org, "admin")
    confirmed = {"type": "export", "scope": "organisation", "confirm_org_name": org.name}
    path = f"/v1/orgs/{org.id}/delegation"
    for delegated in (False, True):
        r = await api.put(
            path, json={"admins_submit_subject_requests": delegated}, headers=org.headers
        )
        assert r.status_code == 200, r.text
        refused = await api.post("/v1/requests", json=confirmed, headers=admin)
        assert refused.status_code == 403, (delegated, refused.text)
        assert "owner" in refused.text, refused.text
    for confirm in (None, "", org.name.upper(), "Another org"):
        body = {"type": "export", "scope": "organisation"}
        if confirm is not None:
            body["confirm_org_name"] = confirm
        r = await api.post("/v1/requests", json=body, headers=org.headers)
        assert r.status_code == 422, (confirm, r.text)
        assert "confirm_org_name" in r.text and "export" in r.text, r.text
    assert (await _written(lethe_db, org.id))[0] == 0, "a refused request makes no job"
    accepted = await api.post("/v1/requests", json=confirmed, headers=org.headers)
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()
    assert job["type"] == "export" and job["scope"] == "organisation"
    jobs = await lethe_db.fetch(
        "SELECT type, scope, subject_hash FROM lethe.jobs WHERE org_id = $1", org.id
    )
    assert [tuple(j) for j in jobs] == [("export", "organisation", None)]


async def _web(api: httpx.AsyncClient, db: asyncpg.Pool, key_headers: dict[str, str]) -> str:
    """Sign the API client in to the web UI with this key; the session's CSRF token."""
    who = await store.caller_for_key(db, key_headers["Authorization"][7:])
    assert who is not None
    token, csrf = await store.open_session(db, who.key_id, timedelta(hours=1))
    api.cookies.set("lethe_session", token)
    return csrf


async def test_the_web_routes_apply_the_same_rules(
    api: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool
) -> None:
    admin = await _key(lethe_db, org, "admin")
    job = (
        await api.post(
            "/v1/requests", json={"type": "erasure", "subject": EMAIL}, headers=org.headers
        )
    ).json()
    try:
        csrf = await _web(api, lethe_db, admin)
        # An admin without delegation has no Submit menu and is refused the form, with the rule.
        jobs_page = await api.get("/ui/jobs")
        assert jobs_page.status_code == 200 and 'href="/ui/submit"' not in jobs_page.text
        page = await api.get("/ui/submit")
        assert page.status_code == 403 and "owner-only" in page.text
        form = {"csrf": csrf, "type": "erasure", "scope": "subject", "email": "a@b.co"}
        refused = await api.post("/ui/submit", data=form)
        assert refused.status_code == 403 and "owner-only" in refused.text
        # Extensions: the web form answers with the rule, as the API does.
        path = f"/ui/jobs/{job['id']}/extend"
        no_reason = await api.post(path, data={"csrf": csrf, "days": "5", "reason": ""})
        assert no_reason.status_code == 422 and "GDPR Art. 12(3)" in no_reason.text
        too_long = await api.post(path, data={"csrf": csrf, "days": "100", "reason": "many"})
        assert too_long.status_code == 422 and "two further calendar months" in too_long.text
        ok = await api.post(path, data={"csrf": csrf, "months": "1", "reason": "many systems"})
        assert ok.status_code == 303, ok.text
        again = await api.post(path, data={"csrf": csrf, "days": "1", "reason": "again"})
        assert again.status_code == 409 and "one extension only" in again.text
        await _web(api, lethe_db, org.headers)  # an owner has the menu and the form
        assert 'href="/ui/submit"' in (await api.get("/ui/jobs")).text
        assert (await api.get("/ui/submit")).status_code == 200
    finally:
        api.cookies.clear()
    view = (await api.get(f"/v1/jobs/{job['id']}", headers=org.headers)).json()
    assert datetime.fromisoformat(view["extended_due_at"]) == add_months(
        datetime.fromisoformat(view["due_at"]), 1
    )


async def test_key_creation_and_revocation_are_audited_from_the_web_and_the_cli(
    api: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool, base_settings: dict[str, Any]
) -> None:
    """Each entry point goes through the same use case: an audit event with actor, key id and
    role, and never the key itself."""
    from tests.integration.test_audit_trail import lethe_cli

    csrf = await _web(api, lethe_db, org.headers)
    try:
        made = await api.post("/ui/keys", data={"csrf": csrf, "role": "viewer", "name": "web k"})
        assert made.status_code == 200, made.text
        web_id = await lethe_db.fetchval(
            "SELECT id FROM lethe.api_keys WHERE org_id = $1 AND name = 'web k'", org.id
        )
        shown = re.search(r'value="(lethe_[^"]+)" id="new-key"', made.text)
        assert shown is not None
        web_secret = shown.group(1)
        gone = await api.post(f"/ui/keys/{web_id}/revoke", data={"csrf": csrf})
        assert gone.status_code == 303, gone.text
    finally:
        api.cookies.clear()
    dsn = base_settings["database_url"]
    out = lethe_cli(
        "keys", "create", "--org", org.id, "--role", "admin", "--name", "cli k", dsn=dsn
    )
    assert out.returncode == 0, out.stdout + out.stderr
    cli_secret = out.stdout.split()[-1]
    cli_id = await lethe_db.fetchval(
        "SELECT id FROM lethe.api_keys WHERE org_id = $1 AND name = 'cli k'", org.id
    )
    out = lethe_cli("keys", "revoke", "--org", org.id, str(cli_id), dsn=dsn)
    assert out.returncode == 0, out.stdout + out.stderr

    async def audited(kind: str, key_id: uuid.UUID) -> bytes | None:
        try:
            return await find_record(
                base_settings["kafka_bootstrap_servers"],
                AUDIT,
                lambda rec: kind.encode() in rec.value and str(key_id).encode() in rec.value,
            )
        except AssertionError:
            return None

    expected = [
        ("ApiKeyCreated", web_id, "api_key", "viewer"),
        ("ApiKeyRevoked", web_id, "api_key", "viewer"),
        ("ApiKeyCreated", cli_id, "operator", "admin"),
        ("ApiKeyRevoked", cli_id, "operator", "admin"),
    ]
    for kind, key_id, actor, role in expected:
        raw = await eventually(partial(audited, kind, key_id), what=f"{kind} {key_id}", timeout=30)
        event = json.loads(raw)
        assert event["type"] == kind and event["org_id"] == org.id
        assert event["actor"]["kind"] == actor
        assert event["payload"]["key_id"] == str(key_id) and event["payload"]["role"] == role
        assert web_secret.encode() not in raw and cli_secret.encode() not in raw


async def test_the_requester_address_is_forgotten_when_the_job_ends(
    api: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool
) -> None:
    """Kept while a reminder or an extension notice may need it; gone once the job is final,
    whichever way it got there (a worker's event, a cancel)."""
    requester = f"dpo-{uuid.uuid4().hex[:8]}@example.test"
    body = {"type": "erasure", "notify_email": requester}

    async def submit() -> uuid.UUID:
        r = await api.post(
            "/v1/requests", json={**body, "subject": _someone()}, headers=org.headers
        )
        assert r.status_code == 202, r.text
        return uuid.UUID(r.json()["id"])

    async def kept(job_id: uuid.UUID) -> str | None:
        email: str | None = await lethe_db.fetchval(
            "SELECT requester_email FROM lethe.jobs WHERE id = $1", job_id
        )
        return email

    finished, cancelled = await submit(), await submit()
    assert await kept(finished) == requester and await kept(cancelled) == requester
    worker = Actor(kind="service", id="eraser")
    planned = make_event(
        ErasurePlanned(total=1, per_table={"users": 1}),
        actor=worker,
        job_id=finished,
        org_id=org.id,
    )
    assert await store.apply_progress(lethe_db, planned)
    assert await kept(finished) == requester  # running: a reminder may still be due
    done = make_event(
        JobCompleted(done=1, total=1, verification={"ok": True}),
        actor=worker,
        job_id=finished,
        org_id=org.id,
    )
    assert await store.apply_progress(lethe_db, done)
    r = await api.post(f"/v1/jobs/{cancelled}/cancel", headers=org.headers)
    assert r.status_code == 202, r.text
    assert await kept(cancelled) == requester  # asked, not yet done by the eraser
    stopped = make_event(
        JobCancelled(done=0, total=1), actor=worker, job_id=cancelled, org_id=org.id
    )
    assert await store.apply_progress(lethe_db, stopped)
    for job_id in (finished, cancelled):
        row = await lethe_db.fetchrow(
            "SELECT status, requester_email, to_jsonb(j)::text AS whole FROM lethe.jobs j "
            "WHERE id = $1",
            job_id,
        )
        assert row["status"] in ("completed", "cancelled") and row["requester_email"] is None
        assert requester not in row["whole"]
