"""Exports against real Postgres, Kafka and S3: exporter, intake and auditor in this process."""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import re
import uuid
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from deploy.local.sample.seed import SeededOrg, seed_org
from services.auditor.app import create_app as create_auditor
from services.auditor.settings import AuditorSettings
from services.exporter import bootstrap
from services.exporter.app import create_app as create_exporter
from services.exporter.archive import csv_value, json_value
from services.exporter.service import sweep_expired
from services.exporter.settings import ExporterSettings
from services.intake import store as intake_store
from services.intake.app import create_http
from services.intake.settings import IntakeSettings
from services.intake.web.common import status_mac
from shared.datamap import LiveSchema, load_datamap
from shared.events.topics import NOTIFICATIONS
from shared.tokens import DownloadToken, sign
from tests.conftest import Org
from tests.helpers import eventually, find_record

pytestmark = pytest.mark.integration
TABLES = ("users", "conversations", "messages", "media_objects")


@pytest.fixture(scope="module")
async def stack(base_settings: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    http = create_http(IntakeSettings(**base_settings))
    exporter = create_exporter(
        ExporterSettings(
            **base_settings, export_part_bytes=5 * 2**20, public_api_url="http://intake"
        )
    )
    auditor = create_auditor(AuditorSettings(**base_settings))
    async with exporter, auditor, http.router.lifespan_context(http):
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
            users=3,
            conversations_per_user=4,
            messages_per_conversation=30,
            media_every=7,
        )


async def _ready_export(
    stack: httpx.AsyncClient, org: Org, email: str, prepared: Any, **options: Any
) -> tuple[str, str]:
    requester = f"dpo-{uuid.uuid4().hex[:6]}@example.com"
    r = await stack.post(
        "/v1/requests",
        headers=org.headers,
        json={"type": "export", "subject": {"email": email}, "notify_email": requester, **options},
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]

    async def ready() -> dict[str, Any] | None:
        job = (await stack.get(f"/v1/jobs/{job_id}", headers=org.headers)).json()
        assert job["status"] not in ("failed",), job
        return job if job["status"] == "ready" else None

    await eventually(ready, what="the export to be ready", timeout=90)
    mail = await find_record(
        prepared.kafka_bootstrap_servers,
        NOTIFICATIONS,
        lambda rec: rec.key == job_id.encode() and b"export_ready" in rec.value,
    )
    link = json.loads(mail)["payload"]["context"]["link"]
    return job_id, link.removeprefix("http://intake")


async def test_an_export_holds_exactly_the_subjects_rows(
    stack: httpx.AsyncClient,
    org: Org,
    seeded: SeededOrg,
    platform_db: asyncpg.Pool,
    prepared: Any,
) -> None:
    subject = seeded.users[0]
    _, path = await _ready_export(stack, org, subject.email, prepared, include_media=True)
    r = await stack.get(path, headers=org.headers)
    assert r.status_code == 200, r.text
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    manifest = json.loads(zf.read("manifest.json"))
    for name, meta in manifest["files"].items():
        assert hashlib.sha256(zf.read(name)).hexdigest() == meta["sha256"], name
    expected = await _rows(platform_db, subject.id)
    for table in TABLES:
        want = [{k: json_value(v) for k, v in row.items()} for row in expected[table]]
        assert json.loads(zf.read(f"{table}.json")) == want, table
        lines = list(csv.reader(io.StringIO(zf.read(f"{table}.csv").decode())))
        assert lines[0] == list(expected[table][0].keys())
        assert lines[1:] == [[csv_value(v) for v in row.values()] for row in expected[table]]
        assert manifest["rows_per_table"][table] == len(expected[table])
    media = sorted(n.removeprefix("media/") for n in zf.namelist() if n.startswith("media/"))
    assert media == sorted(subject.object_keys)
    # Nobody else's data is in it.
    other = seeded.users[1].email.encode()
    assert all(other not in zf.read(n) for n in zf.namelist())


async def test_media_keys_that_climb_out_get_a_name_inside_media(
    stack: httpx.AsyncClient,
    org: Org,
    seeded: SeededOrg,
    platform_db: asyncpg.Pool,
    s3: Any,
    prepared: Any,
) -> None:
    """Object keys come from the platform's rows: one with `../`, one absolute with a control
    character, are put in the zip under media/ with their bytes, never outside it."""
    subject = seeded.users[0]
    tag = uuid.uuid4().hex[:8]
    evil = {
        subject.object_keys[0]: f"../../{tag}/../escape-{tag}.bin",
        subject.object_keys[1]: f"/abs/{tag}\tname.bin",
    }
    for old, new in evil.items():
        await s3.copy_object(
            Bucket="lethe-platform", Key=new, CopySource={"Bucket": "lethe-platform", "Key": old}
        )
        await platform_db.execute(
            "UPDATE media_objects SET s3_key = $1 WHERE s3_key = $2", new, old
        )
    _, path = await _ready_export(stack, org, subject.email, prepared, include_media=True)
    r = await stack.get(path, headers=org.headers)
    assert r.status_code == 200, r.text
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    for name in zf.namelist():
        parts = name.split("/")
        assert not name.startswith("/") and ".." not in parts and "\\" not in name, name
        assert all(ch.isprintable() for ch in name), name
    media = [n for n in zf.namelist() if n.startswith("media/")]
    assert len(media) == len(subject.object_keys)  # every object, none lost to a bad name
    escaped = [n for n in media if f"escape-{tag}" in n]
    assert len(escaped) == 1 and escaped[0].startswith(f"media/{tag}/escape-{tag}"), media
    absolute = [n for n in media if n.startswith(f"media/abs/{tag}")]
    assert len(absolute) == 1 and absolute[0].endswith(".bin"), media
    for new in evil.values():
        original = await s3.get_object(Bucket="lethe-platform", Key=new)
        body = await original["Body"].read()
        member = escaped[0] if "escape" in new else absolute[0]
        assert zf.read(member) == body


async def _rows(db: asyncpg.Pool, user_id: int) -> dict[str, list[dict[str, Any]]]:
    queries = {
        "users": "SELECT * FROM users WHERE id = $1",
        "conversations": "SELECT * FROM conversations WHERE user_id = $1 ORDER BY id",
        "messages": "SELECT * FROM messages WHERE author_id = $1 OR conversation_id IN "
        "(SELECT id FROM conversations WHERE user_id = $1) ORDER BY id",
        "media_objects": "SELECT * FROM media_objects WHERE message_id IN (SELECT id FROM "
        "messages WHERE author_id = $1 OR conversation_id IN (SELECT id FROM conversations "
        "WHERE user_id = $1)) ORDER BY id",
    }
    return {t: [dict(r) for r in await db.fetch(sql, user_id)] for t, sql in queries.items()}


async def test_links_are_checked_and_every_attempt_is_audited(
    stack: httpx.AsyncClient,
    org: Org,
    seeded: SeededOrg,
    lethe_db: asyncpg.Pool,
    base_settings: dict[str, Any],
    prepared: Any,
) -> None:
    job_id, path = await _ready_export(stack, org, seeded.users[1].email, prepared, format="json")
    token = path.split("token=")[1]
    key = IntakeSettings(**base_settings).download_token_key.get_secret_value().encode()
    token_id = uuid.UUID(json.loads(_unb64(token.split(".")[0]))["t"])
    expired = sign(
        key,
        DownloadToken(token_id, uuid.UUID(job_id), "r", datetime.now(UTC) - timedelta(minutes=1)),
    )
    body, mac = token.split(".")
    tampered = f"{body}.{mac[:-3]}AAA"
    other = Org(f"org-{uuid.uuid4().hex[:12]}", "Other", "")
    await intake_store.create_org(lethe_db, other.id, other.name)
    stranger_key = await intake_store.create_api_key(lethe_db, other.id, "owner", "x")
    stranger = {"Authorization": f"Bearer {stranger_key}"}
    base = f"/v1/exports/{job_id}/download"
    cases = [
        (f"{base}?token={expired}", org.headers, 403, "expired"),
        (f"{base}?token={tampered}", org.headers, 403, "signature"),
        (f"{base}", org.headers, 403, "missing"),
        (f"/v1/exports/{uuid.uuid4()}/download?token={token}", org.headers, 403, "another"),
        (path, stranger, 404, "no export"),
    ]
    for url, headers, status, words in cases:
        r = await stack.get(url, headers=headers)
        assert r.status_code == status and words in r.text, (url, r.text)
    assert (await stack.get(path, headers=org.headers)).status_code == 200
    assert (await stack.post(f"/v1/exports/{job_id}/revoke", headers=org.headers)).is_success
    revoked = await stack.get(path, headers=org.headers)
    assert revoked.status_code == 403 and "revoked" in revoked.text

    async def audited() -> list[Any] | None:
        rows = await lethe_db.fetch(
            "SELECT details FROM lethe.audit_log WHERE job_id = $1 AND action = "
            "'DownloadAttempted' ORDER BY seq",
            uuid.UUID(job_id),
        )
        return rows if len(rows) >= 6 else None

    rows = await eventually(audited, what="every download attempt in the audit trail")
    granted = [r["details"]["granted"] for r in rows]
    assert granted.count(True) == 1 and granted.count(False) >= 5


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def test_link_lifetime_outside_the_allowed_range_is_refused(
    stack: httpx.AsyncClient, org: Org
) -> None:
    for hours in (0, 169):
        r = await stack.post(
            "/v1/requests",
            headers=org.headers,
            json={"type": "export", "subject": {"email": "a@b.co"}, "link_ttl_hours": hours},
        )
        assert r.status_code == 422 and "link_ttl_hours" in r.text


async def test_the_sweep_deletes_expired_exports_object_and_key(
    stack: httpx.AsyncClient,
    org: Org,
    seeded: SeededOrg,
    lethe_db: asyncpg.Pool,
    base_settings: dict[str, Any],
    prepared: Any,
    s3: Any,
) -> None:
    job_id, path = await _ready_export(stack, org, seeded.users[2].email, prepared, format="csv")
    job = uuid.UUID(job_id)
    key = await lethe_db.fetchval("SELECT object_key FROM lethe.exports WHERE job_id = $1", job)
    await lethe_db.execute(
        "UPDATE lethe.exports SET expires_at = now() - interval '1 minute' WHERE job_id = $1", job
    )
    settings = ExporterSettings(**base_settings)
    emitted: list[Any] = []

    async def emit(topic: str, env: Any) -> None:
        emitted.append(env)

    deps = bootstrap.build_deps(
        settings,
        lethe=lethe_db,
        platform=lethe_db,
        s3=s3,
        datamap=load_datamap(settings.datamap_path),
        live=LiveSchema({}),
        emit=emit,
    )
    assert await sweep_expired(deps, datetime.now(UTC)) == 1
    row = await lethe_db.fetchrow(
        "SELECT status, wrapped_key, object_key FROM lethe.exports WHERE job_id = $1", job
    )
    assert row["status"] == "expired" and row["wrapped_key"] is None
    assert row["object_key"] is None  # the object's name goes with the object
    with pytest.raises(s3.exceptions.ClientError):
        await s3.head_object(Bucket=settings.exports_bucket, Key=key)
    assert [e.type for e in emitted] == ["ExportExpired"]
    gone = await stack.get(path, headers=org.headers)
    assert gone.status_code == 410 and "expired" in gone.text


async def _status_page(stack: httpx.AsyncClient, settings: dict[str, Any], job_id: str) -> str:
    key = IntakeSettings(**settings).download_token_key.get_secret_value().encode()
    r = await stack.get(f"/status/{job_id}/{status_mac(key, uuid.UUID(job_id))}")
    assert r.status_code == 200, r.text
    return r.text


def _offered(page: str) -> str | None:
    """The download link the subject's status page offers, if any."""
    found = re.search(r'href="(/v1/exports/[^"]+/download\?token=[^"]+)"', page)
    return html.unescape(found.group(1)) if found else None


def _readable_zip(content: bytes) -> zipfile.ZipFile:
    zf = zipfile.ZipFile(io.BytesIO(content))
    manifest = json.loads(zf.read("manifest.json"))
    for name, meta in manifest["files"].items():
        assert hashlib.sha256(zf.read(name)).hexdigest() == meta["sha256"], name
    return zf


async def _attempts(db: asyncpg.Pool, job_id: str, at_least: int) -> list[Any]:
    async def audited() -> list[Any] | None:
        rows = await db.fetch(
            "SELECT actor, org_id, details FROM lethe.audit_log WHERE job_id = $1 "
            "AND action = 'DownloadAttempted' ORDER BY seq",
            uuid.UUID(job_id),
        )
        return rows if len(rows) >= at_least else None

    return await eventually(audited, what=f"{at_least} download attempts in the audit trail")


async def test_the_emailed_link_alone_downloads_five_times_then_is_refused(
    stack: httpx.AsyncClient,
    org: Org,
    seeded: SeededOrg,
    lethe_db: asyncpg.Pool,
    base_settings: dict[str, Any],
    prepared: Any,
) -> None:
    subject = seeded.users[0]
    job_id, path = await _ready_export(stack, org, subject.email, prepared, format="json")
    page = await _status_page(stack, base_settings, job_id)
    assert _offered(page) == path and "5 more downloads (of 5)" in page

    # No API key, no session: the link is all the data subject has.
    for n in range(1, 6):
        r = await stack.get(path)
        assert r.status_code == 200, (n, r.text)
        users = json.loads(_readable_zip(r.content).read("users.json"))
        assert [u["email"] for u in users] == [subject.email]
        if n == 4:
            page = await _status_page(stack, base_settings, job_id)
            assert _offered(page) == path and "1 more download (of 5)" in page
    sixth = await stack.get(path)
    assert sixth.status_code == 410 and "used up" in sixth.text, sixth.text
    page = await _status_page(stack, base_settings, job_id)
    assert _offered(page) is None and "no longer valid" in page
    # The organisation's members still download with their key (not counted against the link).
    member = await stack.get(path, headers=org.headers)
    assert member.status_code == 200 and _readable_zip(member.content).read("users.json")

    rows = await _attempts(lethe_db, job_id, 7)
    token_id = json.loads(_unb64(path.split("token=")[1].split(".")[0]))["t"]
    by_link = [r for r in rows if r["actor"] == f"download_link:{token_id}"]
    assert [r["details"]["granted"] for r in by_link] == [True] * 5 + [False]
    assert by_link[-1]["details"]["reason"].startswith("link: used up")
    assert all(r["org_id"] == org.id for r in rows)
    members = [r for r in rows if r["actor"].startswith("api_key:")]
    assert [r["details"]["granted"] for r in members] == [True]


async def test_an_expired_or_revoked_link_is_refused_and_no_longer_offered(
    stack: httpx.AsyncClient,
    org: Org,
    seeded: SeededOrg,
    lethe_db: asyncpg.Pool,
    base_settings: dict[str, Any],
    prepared: Any,
) -> None:
    job_id, path = await _ready_export(stack, org, seeded.users[1].email, prepared, format="csv")
    token = path.split("token=")[1]
    token_id = uuid.UUID(json.loads(_unb64(token.split(".")[0]))["t"])
    key = IntakeSettings(**base_settings).download_token_key.get_secret_value().encode()
    assert _offered(await _status_page(stack, base_settings, job_id)) == path

    # The same link, once its time is over (the expiry is signed into it, and recorded).
    past = datetime.now(UTC) - timedelta(minutes=1)
    expired = sign(key, DownloadToken(token_id, uuid.UUID(job_id), "r", past))
    r = await stack.get(f"/v1/exports/{job_id}/download?token={expired}")
    assert r.status_code == 403 and "expired" in r.text, r.text
    await lethe_db.execute(
        "UPDATE lethe.download_tokens SET expires_at = $2 WHERE token_id = $1", token_id, past
    )
    assert _offered(await _status_page(stack, base_settings, job_id)) is None
    await lethe_db.execute(
        "UPDATE lethe.download_tokens SET expires_at = now() + interval '1 hour' "
        "WHERE token_id = $1",
        token_id,
    )
    assert (await stack.get(path)).status_code == 200

    # Revoked by an owner: refused at once, and the status page no longer offers it.
    assert (await stack.post(f"/v1/exports/{job_id}/revoke", headers=org.headers)).is_success
    r = await stack.get(path)
    assert r.status_code == 403 and "revoked" in r.text, r.text
    page = await _status_page(stack, base_settings, job_id)
    assert _offered(page) is None and "no longer valid" in page
    # An altered link is refused too, and a link for one export opens no other.
    body, mac = token.split(".")
    assert (
        await stack.get(f"/v1/exports/{job_id}/download?token={body}.{mac[:-3]}AAA")
    ).status_code == 403
    assert (
        await stack.get(f"/v1/exports/{uuid.uuid4()}/download?token={token}")
    ).status_code == 403

    rows = await _attempts(lethe_db, job_id, 4)
    outcomes = [(r["details"]["granted"], r["details"]["reason"]) for r in rows]
    assert outcomes[0][0] is False and "expired" in outcomes[0][1]
    assert outcomes[1] == (True, "granted (download 1 of 5)")
    assert outcomes[2] == (False, "token: the link was revoked")
    assert "signature" in outcomes[3][1]
    assert all(r["actor"].startswith("download_link:") for r in rows)


async def test_a_member_downloads_in_the_web_ui_without_using_up_the_subjects_link(
    stack: httpx.AsyncClient, org: Org, seeded: SeededOrg, prepared: Any
) -> None:
    job_id, path = await _ready_export(stack, org, seeded.users[2].email, prepared, format="json")
    assert (await stack.get(path)).status_code == 200  # the subject, once
    login = await stack.get("/ui/login")
    found = re.search(r'name="csrf" value="([^"]+)"', login.text)
    assert found is not None
    signed_in = await stack.post(
        "/ui/login", data={"csrf": found.group(1), "api_key": org.owner_key}
    )
    assert signed_in.status_code == 303, signed_in.text
    try:
        page = await stack.get(f"/ui/jobs/{job_id}")
        assert "the emailed link was used 1 of 5 times" in page.text
        for _ in range(5):
            r = await stack.get(f"/ui/jobs/{job_id}/download")
            assert r.status_code == 200 and _readable_zip(r.content).read("users.json")
        page = await stack.get(f"/ui/jobs/{job_id}")
        assert "the emailed link was used 1 of 5 times" in page.text
    finally:
        stack.cookies.clear()
    assert (await stack.get(path)).status_code == 200  # the subject's link still works
