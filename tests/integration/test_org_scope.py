"""Organisation scope (issue 12, item 4), on real Postgres, S3 and Kafka, next to another
organisation that must survive (tests/seeding.seed_overlap: two orgs, the same email in both).

An organisation erasure or export takes every table with an org column (activity logs,
metrics, anonymous uploads and their S3 objects, newsletter sign-ups, payments) and the
organisation row itself (its name masked), plus everything related to those rows: exactly the
oracle's rows (tests/schemas/oracle.sample_org_expected). Nobody else is touched: a
fingerprint of every other row is unchanged, and the other org's objects stay where they are.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from services.auditor.app import create_app as create_auditor
from services.auditor.settings import AuditorSettings
from services.eraser import service, store
from services.eraser.objects import list_prefix, quarantine_key, quarantine_prefix
from services.exporter.app import create_app as create_exporter
from services.exporter.archive import json_value
from services.exporter.settings import ExporterSettings
from services.intake.app import create_http
from services.intake.settings import IntakeSettings
from shared.events.topics import NOTIFICATIONS
from tests.conftest import Org
from tests.erasing import eraser_for_sample, erasure_request, planned
from tests.helpers import eventually, find_record, s3_exists
from tests.schemas.oracle import Expected, sample_org_expected
from tests.seeding import PLATFORM_BUCKET, OverlapSeed, fingerprint, seed_overlap

pytestmark = pytest.mark.integration
# What an org holds beyond its people's rows: org-level tables, and the org row itself.
ORG_LEVEL = {"activity_logs", "metrics_samples", "anonymous_uploads", "newsletter_signups"}


async def _two_orgs(
    platform_db: asyncpg.Pool, s3: Any, org: Org
) -> tuple[OverlapSeed, Expected, Expected]:
    """org (the one erased or exported) and a second org, overlapping; both oracles."""
    async with platform_db.acquire() as conn:
        seed = await seed_overlap(conn, org.id, f"org-{uuid.uuid4().hex[:12]}", s3=s3)
        expected = await sample_org_expected(conn, seed.org1)
        other = await sample_org_expected(conn, seed.org2)
    # The oracle is not vacuous: it holds what an org scope used to miss.
    assert ORG_LEVEL <= set(expected.delete), expected.delete
    assert expected.mask["organisations"] == {seed.org1}
    assert expected.mask["payments"] == {
        str(p) for user in ("ann", "bob", "carol") for p in seed.payments[user]
    }
    assert set(seed.anonymous_keys[seed.org1]) <= expected.objects
    assert set(seed.anonymous_keys[seed.org2]) <= other.objects
    return seed, expected, other


async def _contents(s3: Any, keys: set[str]) -> dict[str, bytes]:
    out = {}
    for k in sorted(keys):
        obj = await s3.get_object(Bucket=PLATFORM_BUCKET, Key=k)
        out[k] = await obj["Body"].read()
    return out


async def _absent(s3: Any, keys: set[str]) -> set[str]:
    """Which of `keys` are not in the platform bucket."""
    gone = set()
    for k in keys:
        if not await s3_exists(s3, PLATFORM_BUCKET, k):
            gone.add(k)
    return gone


async def _left(conn: asyncpg.Connection, keys: dict[str, set[str]]) -> dict[str, int]:
    """How many of these rows (every sample table's key is `id`) are still in the database."""
    out = {}
    for table, ks in keys.items():
        out[table] = await conn.fetchval(
            f"SELECT count(*) FROM {table} WHERE id::text = ANY($1::text[])", sorted(ks)
        )
    return out


async def test_an_org_erasure_takes_every_org_row_and_nothing_of_the_other_org(
    base_settings: dict[str, Any],
    lethe_db: asyncpg.Pool,
    platform_db: asyncpg.Pool,
    s3: Any,
    org: Org,
) -> None:
    seed, expected, other = await _two_orgs(platform_db, s3, org)
    async with platform_db.acquire() as conn:
        others_before = await fingerprint(conn, exclude=expected.all_touched())
    ours = await _contents(s3, expected.objects)
    theirs = await _contents(s3, other.objects)
    run = await eraser_for_sample(base_settings, lethe_db, platform_db, s3)
    deps = run.deps
    env = erasure_request(seed.org1, None, requester_email="owner@example.test")
    assert env.job_id is not None
    job_id = env.job_id

    await service.plan(env, deps)
    plan, detach = await planned(lethe_db, job_id)
    assert plan == expected.erase, "the eraser's plan is not the oracle's"
    assert detach == {}, "no row of another org is linked: nothing to detach"
    await run.drain()
    job = await store.get_job(lethe_db, job_id)
    assert job is not None and job.status == "soft_deleted", job
    soft = run.of("ErasureSoftDeleted")[-1]
    assert soft["verification"]["ok"] is True, soft["verification"]
    assert soft["needs_review"] == []

    async with platform_db.acquire() as conn:
        # Nobody else touched: every row but the org's is as it was, row for row.
        assert await fingerprint(conn, exclude=expected.all_touched()) == others_before
        assert set((await _left(conn, expected.delete)).values()) == {0}
        # The org row stays, anonymised; the payments stay for bookkeeping, masked.
        name = await conn.fetchval("SELECT name FROM organisations WHERE id = $1", seed.org1)
        assert name == "[redacted]"
        payments = await conn.fetch(
            "SELECT * FROM payments WHERE id::text = ANY($1::text[])",
            sorted(expected.mask["payments"]),
        )
        assert len(payments) == len(expected.mask["payments"])
        for p in payments:
            assert p["user_id"] is None and p["billing_name"] == "[redacted]", dict(p)
            assert p["billing_email"].startswith("hmac:"), dict(p)
    # The org's objects (media and anonymous uploads) are quarantined, restorable until the
    # purge; the other org's are where they were, unchanged.
    assert await _absent(s3, expected.objects) == expected.objects
    quarantined = await list_prefix(s3, PLATFORM_BUCKET, quarantine_prefix(job_id))
    assert quarantined == {quarantine_key(job_id, k) for k in expected.objects}
    for k, data in ours.items():
        held = await s3.get_object(Bucket=PLATFORM_BUCKET, Key=quarantine_key(job_id, k))
        assert await held["Body"].read() == data, k
    assert await _contents(s3, other.objects) == theirs

    # The recovery window ends: the quarantined objects are purged, the rest stays.
    await lethe_db.execute(
        "UPDATE lethe.erase_tasks SET purge_after = now() WHERE job_id = $1", job_id
    )
    assert await service.purge(deps, job_id) is True
    job = await store.get_job(lethe_db, job_id)
    assert job is not None and job.status == "purged", job
    done = run.of("JobCompleted")[-1]
    assert done["verification"]["ok"] is True, done["verification"]
    assert done["verification"]["key_destroyed"] is True
    assert await list_prefix(s3, PLATFORM_BUCKET, quarantine_prefix(job_id)) == set()
    assert await _absent(s3, expected.objects) == expected.objects
    assert await _contents(s3, other.objects) == theirs
    async with platform_db.acquire() as conn:
        assert await fingerprint(conn, exclude=expected.all_touched()) == others_before
        assert set((await _left(conn, expected.delete)).values()) == {0}
        assert (
            await conn.fetchval("SELECT name FROM organisations WHERE id = $1", seed.org1)
            == "[redacted]"
        )


# ------------------------------------------------------------------ export


@pytest.fixture(scope="module")
async def stack(base_settings: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    """Intake (HTTP), exporter and auditor in this process, on real Kafka."""
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


async def test_an_org_export_holds_exactly_the_rows_an_org_erasure_takes(
    stack: httpx.AsyncClient,
    org: Org,
    platform_db: asyncpg.Pool,
    s3: Any,
    prepared: Any,
) -> None:
    seed, expected, _ = await _two_orgs(platform_db, s3, org)
    r = await stack.post(
        "/v1/requests",
        headers=org.headers,
        json={
            "type": "export",
            "scope": "organisation",
            "confirm_org_name": org.name,
            "notify_email": f"owner-{uuid.uuid4().hex[:6]}@example.com",
            "format": "json",
            "include_media": True,
        },
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]

    async def ready() -> dict[str, Any] | None:
        job = (await stack.get(f"/v1/jobs/{job_id}", headers=org.headers)).json()
        assert job["status"] != "failed", job
        return job if job["status"] == "ready" else None

    await eventually(ready, what="the org export to be ready", timeout=90)
    mail = await find_record(
        prepared.kafka_bootstrap_servers,
        NOTIFICATIONS,
        lambda rec: rec.key == job_id.encode() and b"export_ready" in rec.value,
    )
    link = json.loads(mail)["payload"]["context"]["link"].removeprefix("http://intake")
    download = await stack.get(link, headers=org.headers)
    assert download.status_code == 200, download.text
    zf = zipfile.ZipFile(io.BytesIO(download.content))
    manifest = json.loads(zf.read("manifest.json"))

    exported: dict[str, list[dict[str, Any]]] = {}
    for name in zf.namelist():
        if name.endswith(".json") and name != "manifest.json":
            rows = json.loads(zf.read(name))
            if rows:
                exported[name.removesuffix(".json")] = rows
    # Exactly the oracle's rows: the same set the eraser plans (previous test), table by table.
    assert {t: {str(row["id"]) for row in rows} for t, rows in exported.items()} == (
        expected.export
    )
    assert {t: n for t, n in manifest["rows_per_table"].items() if n} == {
        t: len(k) for t, k in expected.export.items()
    }
    # Each row as it is in the database (the org's name too: an export hides nothing).
    for table, rows in exported.items():
        live = await platform_db.fetch(
            f"SELECT * FROM {table} WHERE id::text = ANY($1::text[]) ORDER BY id",
            sorted(expected.export[table]),
        )
        assert rows == [{k: json_value(v) for k, v in row.items()} for row in live], table
    # The org's objects (media and anonymous uploads), and none of the other org's.
    media = {n.removeprefix("media/") for n in zf.namelist() if n.startswith("media/")}
    assert media == expected.objects
    for key in sorted(media):
        obj = await s3.get_object(Bucket=PLATFORM_BUCKET, Key=key)
        assert zf.read(f"media/{key}") == await obj["Body"].read(), key
    # Nothing of the other org anywhere in the archive.
    for name in zf.namelist():
        assert seed.org2.encode() not in zf.read(name), name
