"""Retention through the eraser on real Postgres and S3, with an injected cutoff computed
from the database's clock, read after each test seeded its rows (the seed dates them whole
days plus an hour back from its own now, so a cutoff of N days falls between two rows
whenever the test runs): per category and per organisation, a longer policy keeps its rows,
public mode, a failing table that does not stop the run, and `lethe cleanup` (dry run
changes nothing; the real run prints the stats)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from deploy.local import infra
from deploy.local.sample.seed import seed_org
from deploy.local.stack import service_env
from services.eraser.deps import EraserDeps
from services.eraser.service import retention
from services.intake import retention as policies
from services.intake import store as intake_store
from services.intake.service.uow import UnitOfWork
from shared.datamap import load_datamap
from shared.events import Actor, Envelope, make_event
from shared.events.retention import RetentionRequested
from tests.helpers import eraser_deps, s3_exists

pytestmark = pytest.mark.integration
BUCKET = "lethe-platform"
REPO = Path(__file__).resolve().parents[2]
DATAMAP = REPO / "deploy/local/sample/datamap.yaml"


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Envelope]] = []

    async def emit(self, topic: str, env: Envelope) -> None:
        self.seen.append((topic, env))

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [e.payload for _, e in self.seen if e.type == event_type]


@pytest.fixture(scope="module")
async def deps(
    base_settings: dict[str, Any], lethe_db: asyncpg.Pool, platform_db: asyncpg.Pool, s3: Any
) -> AsyncIterator[EraserDeps]:
    yield await eraser_deps(
        base_settings, lethe_db, platform_db, s3, batch_size=7
    )  # several batches per table


@pytest.fixture
def events(deps: EraserDeps) -> Events:
    ev = Events()
    deps.emit = ev.emit
    return ev


async def new_org(lethe_db: asyncpg.Pool, platform_db: asyncpg.Pool, s3: Any) -> str:
    org_id = f"ret-{uuid.uuid4().hex[:10]}"
    await intake_store.create_org(lethe_db, org_id, f"Retention {org_id}")
    async with platform_db.acquire() as conn:
        await seed_org(
            conn,
            s3,
            BUCKET,
            org_id,
            users=2,
            conversations_per_user=2,
            messages_per_conversation=20,  # message m is m weeks old
            media_every=3,
            payments_per_user=0,
            newsletter=False,
            history=True,
        )
    return org_id


async def db_now(platform_db: asyncpg.Pool) -> datetime:
    """The clock of this test: read once its rows are seeded (the seed dates them from its own
    now, whole days plus an hour back), so every cutoff below falls between two seeded days."""
    now: datetime = await platform_db.fetchval("SELECT now()")
    return now


def request(org_id: str, category: str, days: int, now: datetime) -> Envelope:
    payload = RetentionRequested(category=category, days=days, cutoff=now - timedelta(days=days))
    return make_event(payload, actor=Actor(kind="test", id="t"), job_id=uuid.uuid4(), org_id=org_id)


async def ages(platform_db: asyncpg.Pool, org_id: str) -> dict[str, list[datetime]]:
    """Timestamps of the org's rows per retention table."""
    sql = {
        "messages": "SELECT m.created_at FROM messages m JOIN conversations c "
        "ON c.id = m.conversation_id WHERE c.org_id = $1",
        "activity_logs": "SELECT created_at FROM activity_logs WHERE org_id = $1",
        "metrics_samples": "SELECT recorded_at FROM metrics_samples WHERE org_id = $1",
        "anonymous_uploads": "SELECT created_at FROM anonymous_uploads WHERE org_id = $1",
    }
    return {t: [r[0] for r in await platform_db.fetch(q, org_id)] for t, q in sql.items()}


async def media(platform_db: asyncpg.Pool, org_id: str) -> list[tuple[str, datetime]]:
    rows = await platform_db.fetch(
        "SELECT o.s3_key, m.created_at FROM media_objects o JOIN messages m ON m.id = o.message_id"
        " JOIN conversations c ON c.id = m.conversation_id WHERE c.org_id = $1",
        org_id,
    )
    return [(r[0], r[1]) for r in rows]


async def exists(s3: Any, key: str) -> bool:
    return await s3_exists(s3, BUCKET, key)


async def test_per_category_and_org_older_go_newer_stay_longer_policy_keeps(
    deps: EraserDeps, events: Events, lethe_db: asyncpg.Pool, platform_db: asyncpg.Pool, s3: Any
) -> None:
    short, long_ = (
        await new_org(lethe_db, platform_db, s3),
        await new_org(lethe_db, platform_db, s3),
    )
    now = await db_now(platform_db)
    before = {o: await ages(platform_db, o) for o in (short, long_)}
    media_before = await media(platform_db, short)
    assert any(at < now - timedelta(days=30) for _, at in media_before)

    await retention.run_job(request(short, "messages", 30, now), deps, public_mode=False)
    await retention.run_job(request(long_, "messages", 90, now), deps, public_mode=False)
    await retention.run_job(request(short, "logs", 30, now), deps, public_mode=False)
    after = {o: await ages(platform_db, o) for o in (short, long_)}

    def split(values: list[datetime], days: int) -> tuple[int, int]:
        cut = now - timedelta(days=days)
        return sum(v < cut for v in values), sum(v >= cut for v in values)

    # Short policy: messages and logs older than 30 days gone, newer ones all there.
    old, new = split(before[short]["messages"], 30)
    assert old > 0 and new > 0
    assert split(after[short]["messages"], 30) == (0, new)
    old, new = split(before[short]["activity_logs"], 30)
    assert old == 90 and split(after[short]["activity_logs"], 30) == (0, new)
    # The longer policy keeps what is between 30 and 90 days old; only > 90 days went.
    assert split(after[long_]["messages"], 90) == (0, split(before[long_]["messages"], 90)[1])
    assert split(after[long_]["messages"], 30)[0] > 0
    # Categories and orgs not asked for are untouched.
    assert after[long_]["activity_logs"] == before[long_]["activity_logs"]
    assert after[short]["metrics_samples"] == before[short]["metrics_samples"]
    assert after[short]["anonymous_uploads"] == before[short]["anonymous_uploads"]
    # The media of deleted messages went with them, objects first; the others stay.
    gone = [k for k, at in media_before if at < now - timedelta(days=30)]
    kept = [k for k, at in media_before if at >= now - timedelta(days=30)]
    assert {k for k, _ in await media(platform_db, short)} == set(kept)
    assert not [k for k in gone if await exists(s3, k)]
    assert all([await exists(s3, k) for k in kept])
    # Reported like an erasure: planned, batches, completed with a clean verification.
    done = events.of("JobCompleted")
    assert len(done) == 3 and all(d["verification"]["ok"] for d in done)
    assert done[0]["verification"]["rows"]["media_objects"] == len(gone)
    assert len(events.of("BatchErased")) >= 3
    assert {b["phase"] for b in events.of("BatchErased")} == {"retention"}


async def test_redelivered_job_changes_nothing(
    deps: EraserDeps, events: Events, lethe_db: asyncpg.Pool, platform_db: asyncpg.Pool, s3: Any
) -> None:
    org_id = await new_org(lethe_db, platform_db, s3)
    now = await db_now(platform_db)
    env = request(org_id, "metrics", 365, now)
    await retention.run_job(env, deps, public_mode=False)
    await retention.run_job(env, deps, public_mode=False)
    assert len(events.of("JobCompleted")) == 1
    assert events.of("DuplicateIgnored") == [{"original_type": "RetentionRequested"}]
    left = (await ages(platform_db, org_id))["metrics_samples"]
    assert left and min(left) >= now - timedelta(days=365)


async def test_public_mode_deletes_old_anonymous_rows_and_objects_off_deletes_nothing(
    deps: EraserDeps, events: Events, lethe_db: asyncpg.Pool, platform_db: asyncpg.Pool, s3: Any
) -> None:
    org_id = await new_org(lethe_db, platform_db, s3)
    now = await db_now(platform_db)
    rows = await platform_db.fetch(
        "SELECT s3_key, created_at FROM anonymous_uploads WHERE org_id = $1", org_id
    )
    old = [r[0] for r in rows if r[1] < now - timedelta(days=7)]
    new = [r[0] for r in rows if r[1] >= now - timedelta(days=7)]
    assert len(old) == 13 and len(new) == 7

    # Off: refused, nothing deleted (rows and objects).
    await retention.run_job(request(org_id, "anonymous", 7, now), deps, public_mode=False)
    assert "public mode is off" in events.of("JobFailed")[0]["reason"]
    with pytest.raises(retention.PublicModeOff):
        await retention.clean(
            deps, category="anonymous", cutoff=now, org_id=None, public_mode=False
        )
    assert len((await ages(platform_db, org_id))["anonymous_uploads"]) == 20
    assert all([await exists(s3, k) for k in old + new])

    # On: anonymous rows older than 7 days go with their objects; newer stay.
    await retention.run_job(request(org_id, "anonymous", 7, now), deps, public_mode=True)
    left = {
        r[0]
        for r in await platform_db.fetch(
            "SELECT s3_key FROM anonymous_uploads WHERE org_id = $1", org_id
        )
    }
    assert left == set(new)
    assert not [k for k in old if await exists(s3, k)]
    assert all([await exists(s3, k) for k in new])
    # Objects went first, and each was recorded before it went.
    states = await lethe_db.fetch(
        "SELECT state FROM lethe.retention_objects WHERE key = ANY($1::text[])", old
    )
    assert [r[0] for r in states] == ["deleted"] * len(old)


async def test_a_failing_table_is_reported_and_the_rest_goes_on(
    deps: EraserDeps,
    lethe_db: asyncpg.Pool,
    platform_db: asyncpg.Pool,
    s3: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="lethe.errors")
    org_id = await new_org(lethe_db, platform_db, s3)
    now = await db_now(platform_db)
    fn = f"refuse_{uuid.uuid4().hex[:8]}"
    await platform_db.execute(
        f"CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'metrics are locked'; END; $$; "
        f"CREATE TRIGGER {fn} BEFORE DELETE ON metrics_samples FOR EACH ROW "
        f"WHEN (OLD.org_id = '{org_id}') EXECUTE FUNCTION {fn}()"
    )
    try:
        stats = {
            cat: await retention.clean(
                deps,
                category=cat,
                cutoff=now - timedelta(days=30),
                org_id=org_id,
                public_mode=False,
            )
            for cat in ("metrics", "logs")
        }
    finally:
        await platform_db.execute(f"DROP TRIGGER {fn} ON metrics_samples; DROP FUNCTION {fn}()")
    assert stats["metrics"].errors[0]["table"] == "metrics_samples"
    # The report (it reaches the audit trail) names the error and its log line; the
    # database's text is in that line only.
    error = stats["metrics"].errors[0]["error"]
    assert error.startswith("RaiseError P0001 (error_id=") and "locked" not in error
    error_id = error.split("error_id=")[1].split(";")[0]
    assert any(
        f"error_id={error_id}" in r.getMessage() and "metrics are locked" in r.getMessage()
        for r in caplog.records
    )
    assert stats["metrics"].remaining["metrics_samples"] > 0
    assert stats["logs"].rows == {"activity_logs": 90} and not stats["logs"].errors


async def _count_all(platform_db: asyncpg.Pool, org_id: str) -> dict[str, int]:
    return {t: len(v) for t, v in (await ages(platform_db, org_id)).items()} | {
        "media_objects": len(await media(platform_db, org_id))
    }


async def _cli(
    ep: infra.Endpoints,
    *args: str,
    public: bool = False,
    public_days: int = 7,
    answer: bytes | None = None,
    process: bool = False,
) -> tuple[int, str]:
    """`lethe cleanup ...`: its exit code and output. In this process unless `process`: a
    new interpreter importing the CLI cost seconds per call (one call per test module still
    runs it as a process, stdin a pipe)."""
    overlay = {
        **service_env(ep, 0),
        "LETHE_ENV_FILE": "/nonexistent",
        "LETHE_PUBLIC_MODE": "true" if public else "false",
        "LETHE_PUBLIC_DATA_RETENTION_DAYS": str(public_days),
        "COLUMNS": "160",
    }
    if not process:
        return await asyncio.to_thread(_cli_in_process, overlay, args, answer)
    env = {**os.environ, **overlay}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "cleanup",
        *args,
        env=env,
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(answer or b""), timeout=60)
    return proc.returncode or 0, out.decode()


def _cli_in_process(
    env: dict[str, str], args: tuple[str, ...], answer: bytes | None
) -> tuple[int, str]:
    from typer.testing import CliRunner

    from services.cli import app

    r = CliRunner().invoke(app, ["cleanup", *args], input=answer or b"", env=env)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.output


async def _policy(lethe_db: asyncpg.Pool, org_id: str, days: int) -> None:
    """The org's retention policy: `days` for every category."""
    dm = load_datamap(DATAMAP)
    async with UnitOfWork(lethe_db) as uow:
        await policies.set_policy(
            uow,
            dm,
            org_id,
            dict.fromkeys(policies.categories(dm), days),
            Actor(kind="test", id="t"),
        )


async def test_cli_cleanup_dry_run_changes_nothing_then_prints_stats(
    prepared: infra.Endpoints, lethe_db: asyncpg.Pool, platform_db: asyncpg.Pool, s3: Any
) -> None:
    org_id = await new_org(lethe_db, platform_db, s3)
    before = await _count_all(platform_db, org_id)
    cut = await db_now(platform_db) - timedelta(days=30)
    expected_msgs = sum(a < cut for a in (await ages(platform_db, org_id))["messages"])
    expected_media = sum(at < cut for _, at in await media(platform_db, org_id))
    expected_anon = sum(a < cut for a in (await ages(platform_db, org_id))["anonymous_uploads"])

    # No --days: the org's own policy (30 days for every category here) applies.
    await _policy(lethe_db, org_id, 30)
    code, out = await _cli(prepared, "--org", org_id, "--dry-run", public=True, public_days=30)
    assert code == 0, out
    total = expected_msgs + expected_media + 90 + 94 + expected_anon
    assert f"rows that would be deleted: {total}" in out, out
    assert await _count_all(platform_db, org_id) == before  # nothing changed

    code, out = await _cli(prepared, "--org", org_id, public=True, public_days=30)
    assert code == 0, out
    after = await _count_all(platform_db, org_id)
    assert after["messages"] == before["messages"] - expected_msgs
    assert after["media_objects"] == before["media_objects"] - expected_media
    assert after["activity_logs"] == 30 and after["metrics_samples"] == 6
    assert after["anonymous_uploads"] == before["anonymous_uploads"] - expected_anon
    assert f"rows deleted: {total}" in out, out
    assert f"objects deleted: {expected_media + expected_anon}" in out
    assert "errors: 0" in out
    assert "metrics_samples" in out and "activity_logs" in out


async def test_cli_cleanup_days_needs_a_scope_and_all_orgs_asks_first(
    prepared: infra.Endpoints, lethe_db: asyncpg.Pool, platform_db: asyncpg.Pool, s3: Any
) -> None:
    org_id = await new_org(lethe_db, platform_db, s3)
    before = await _count_all(platform_db, org_id)
    # --days alone, or with --org only, overrides every policy: refused, saying what to add.
    code, out = await _cli(prepared, "--days", "1")
    assert code == 2 and "--org ID and --category C" in out and "--all-orgs" in out, out
    code, out = await _cli(prepared, "--days", "1", "--org", org_id)
    assert code == 2 and "add --category C" in out, out
    # --all-orgs shows the counts per organisation and category, and "no" deletes nothing.
    code, out = await _cli(prepared, "--days", "1", "--all-orgs", answer=b"n\n", process=True)
    assert code == 1 and "not confirmed" in out, out
    assert org_id in out and "logs" in out and "Delete them?" in out
    assert await _count_all(platform_db, org_id) == before
    # One organisation and one category: --days applies there only.
    code, out = await _cli(prepared, "--days", "30", "--org", org_id, "--category", "logs")
    assert code == 0, out
    after = await _count_all(platform_db, org_id)
    assert after["activity_logs"] == 30 and after["messages"] == before["messages"]
    assert "rows deleted: 90" in out and "30 (--days)" in out
