"""Erasure throughput: Lethe's soft delete and purge through the real services, against raw SQL.

    python -m bench.erase [--rows 200000] [--batch-size 1000] [--row-by-row 3000]
                          [--replicas 1] [--json PATH]

One subject owning about `--rows` rows across three related tables (conversations, messages,
media objects; plus the user row), seeded twice (orgs A and B), and a small subject in org C:

- (a) raw: org A's subject, already resolved to primary keys, deleted children first with
  `DELETE ... WHERE id = ANY($1)` in batches of `--batch-size` (the same batches Lethe uses),
  the media objects with S3 DeleteObjects first.
- (b) row by row: org C's subject (`--row-by-row` rows), one `DELETE ... WHERE id = $1` per
  row; measured on a sample because it is slow, and reported as a rate.
- (c) Lethe soft delete: org B's subject erased through intake's HTTP API, Kafka and the
  eraser process(es), recovery window 0: from intake receiving the request to the job being
  soft-deleted (plan, batches, restoration log, quarantine, verification), from the database
  timestamps the services wrote.
- (d) purge: from soft-deleted to purged (quarantined objects, restoration rows, key, verify).

Also `first_hidden_s`: from intake receiving the request (`lethe.jobs.received_at`) to the
first row hidden, the earlier of the subject's own row hidden by the data map's `hide` step
(`erase_tasks.hidden_at`: the sample map disables the account) and the first chunk committed.
The bench checks that the subject's row really was hidden (`users.disabled` set) once
`hidden_at` is there, and fails otherwise (or when the map's hide step never ran). After the
runs the subjects' rows and objects must be gone and everybody else's
intact, or the bench fails. The last line is machine-readable:
`RESULT soft_delete_vs_raw=<c/a> purge_vs_raw=<d/a> first_hidden_s=<s>` (c/b is in the table
only: it has no target of its own, P1 implies it).

Uses the infrastructure named by KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL, PLATFORM_DATABASE_URL,
S3_ENDPOINT_URL, SMTP_HOST and SMTP_PORT when all are set; otherwise starts its own in
`.local/bench-<pid>` and stops it at the end. Services always run in the bench's own state dir.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from deploy.local import infra
from deploy.local.sample.seed import SeededOrg, seed_org
from deploy.local.stack import prepare, service_env, start_services, stop_services
from services.intake import store as intake_store
from shared.db import create_pool
from shared.settings import LetheSettings
from shared.storage import delete_objects, s3_client

REPO = Path(__file__).resolve().parents[1]
MESSAGES_PER_CONVERSATION = 50
MEDIA_EVERY = 500
BACKGROUND_SHARE = 0.5  # other users own about this fraction of N rows in each org
_EXTERNAL = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "DATABASE_URL",
    "PLATFORM_DATABASE_URL",
    "S3_ENDPOINT_URL",
    "SMTP_HOST",
    "SMTP_PORT",
)


class BenchError(RuntimeError):
    """The erasure left the subject's data behind or touched someone else's."""


@dataclass
class Result:
    rows: int
    objects: int
    batch_size: int
    replicas: int
    raw_seconds: float
    raw_rows_per_second: float
    row_by_row_rows: int
    row_by_row_seconds: float
    row_by_row_rows_per_second: float
    soft_delete_seconds: float
    soft_delete_rows_per_second: float
    purge_seconds: float
    purge_rows_per_second: float
    first_hidden_seconds: float
    soft_delete_vs_raw: float
    soft_delete_vs_row_by_row: float
    purge_vs_raw: float
    chunks: int
    soft_delete_phases: dict[str, float]


def shape(rows: int) -> dict[str, Any]:
    """seed_org arguments giving the heavy user (user 0) about `rows` rows."""
    per_conversation = 1 + MESSAGES_PER_CONVERSATION * (1 + 1 / MEDIA_EVERY)
    conversations = max(1, round((rows - 1) / per_conversation))
    light_user_rows = 2 + MESSAGES_PER_CONVERSATION
    return {
        "users": 1 + max(10, round(rows * BACKGROUND_SHARE / light_user_rows)),
        "conversations_per_user": 1,
        "messages_per_conversation": MESSAGES_PER_CONVERSATION,
        "media_every": MEDIA_EVERY,
        "heavy_user_factor": conversations,
        "payments_per_user": 0,
        "newsletter": False,
    }


# ------------------------------------------------------------------ baselines


async def subject_keys(conn: asyncpg.Connection, user_id: int) -> dict[str, list[int]]:
    """The subject's primary keys per table, children first (resolved outside the timing)."""
    convs = [
        r[0] for r in await conn.fetch("SELECT id FROM conversations WHERE user_id = $1", user_id)
    ]
    msgs = [
        r[0]
        for r in await conn.fetch(
            "SELECT id FROM messages WHERE author_id = $1 OR conversation_id = ANY($2)",
            user_id,
            convs,
        )
    ]
    media = [
        r[0]
        for r in await conn.fetch("SELECT id FROM media_objects WHERE message_id = ANY($1)", msgs)
    ]
    return {"media_objects": media, "messages": msgs, "conversations": convs, "users": [user_id]}


async def raw_erase(
    conn: asyncpg.Connection, s3: Any, bucket: str, keys: dict[str, list[int]], batch: int
) -> tuple[int, float]:
    """(a): set-based deletes by primary key in batches, objects first."""
    media_keys = [
        r[0]
        for r in await conn.fetch(
            "SELECT s3_key FROM media_objects WHERE id = ANY($1)", keys["media_objects"]
        )
    ]
    t0 = time.perf_counter()
    if await delete_objects(s3, bucket, media_keys):
        raise BenchError("raw: objects not deleted")
    rows = 0
    for table, ids in keys.items():
        for i in range(0, len(ids), batch):
            status = await conn.execute(
                f"DELETE FROM {table} WHERE id = ANY($1)", ids[i : i + batch]
            )
            rows += int(status.split()[-1])
    return rows, time.perf_counter() - t0


async def row_by_row_erase(
    conn: asyncpg.Connection, s3: Any, bucket: str, keys: dict[str, list[int]]
) -> tuple[int, float]:
    """(b): one DELETE statement per row (what "a query per row in a loop" costs)."""
    media_keys = [
        r[0]
        for r in await conn.fetch(
            "SELECT s3_key FROM media_objects WHERE id = ANY($1)", keys["media_objects"]
        )
    ]
    t0 = time.perf_counter()
    for key in media_keys:
        await s3.delete_object(Bucket=bucket, Key=key)
    rows = 0
    for table, ids in keys.items():
        for pk in ids:
            rows += int((await conn.execute(f"DELETE FROM {table} WHERE id = $1", pk)).split()[-1])
    return rows, time.perf_counter() - t0


# ------------------------------------------------------------------ checks


async def check_erased(
    conn: asyncpg.Connection, s3: Any, bucket: str, org: SeededOrg, who: str
) -> None:
    """The subject's rows and objects are gone; every other user's are all still there."""
    subject, others = org.users[0], org.users[1:]
    left = await conn.fetchval(
        "SELECT (SELECT count(*) FROM users WHERE id = $1) + "
        "(SELECT count(*) FROM conversations WHERE user_id = $1) + "
        "(SELECT count(*) FROM messages WHERE author_id = $1) + "
        "(SELECT count(*) FROM media_objects WHERE s3_key = ANY($2::text[]))",
        subject.id,
        subject.object_keys,
    )
    if left:
        raise BenchError(f"{who}: {left} subject rows left in org {org.org_id}")
    kept = await conn.fetchval(
        "SELECT (SELECT count(*) FROM users WHERE org_id = $1) + "
        "(SELECT count(*) FROM conversations WHERE org_id = $1) + "
        "(SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id "
        " WHERE c.org_id = $1)",
        org.org_id,
    )
    expected = sum(1 + u.conversations + u.messages for u in others)
    if kept != expected:
        raise BenchError(f"{who}: other users' rows changed: {kept} != {expected}")
    stored = await _object_keys(s3, bucket, f"media/{org.org_id}/")
    if stored != {k for u in others for k in u.object_keys}:
        raise BenchError(f"{who}: objects in S3 do not match the other users' objects")


async def _object_keys(s3: Any, bucket: str, prefix: str) -> set[str]:
    keys: set[str] = set()
    async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.update(o["Key"] for o in page.get("Contents", []))
    return keys


async def drop_org(conn: asyncpg.Connection, s3: Any, bucket: str, org_id: str) -> None:
    """Remove a bench org entirely (bench data never stays behind in shared infra)."""
    async with conn.transaction():
        await conn.execute(
            "DELETE FROM media_objects WHERE message_id IN (SELECT m.id FROM messages m"
            " JOIN conversations c ON c.id = m.conversation_id WHERE c.org_id = $1)",
            org_id,
        )
        await conn.execute(
            "DELETE FROM messages WHERE conversation_id IN"
            " (SELECT id FROM conversations WHERE org_id = $1)",
            org_id,
        )
        for table in ("conversations", "users"):
            await conn.execute(f"DELETE FROM {table} WHERE org_id = $1", org_id)
        await conn.execute("DELETE FROM organisations WHERE id = $1", org_id)
    await delete_objects(s3, bucket, await _object_keys(s3, bucket, f"media/{org_id}/"))


# ------------------------------------------------------------------ lethe through the services


async def lethe_erase(
    api_url: str, lethe: asyncpg.Pool, platform: asyncpg.Pool, org_id: str, subject: Any
) -> dict[str, Any]:
    email = subject.email
    await intake_store.create_org(lethe, org_id, f"Bench {org_id}", recovery_window_days=0)
    key = await intake_store.create_api_key(lethe, org_id, "owner", "bench")
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        r = await client.post(
            "/v1/requests",
            headers={"Authorization": f"Bearer {key}"},
            json={"type": "erasure", "subject": {"email": email}, "recovery_window_days": 0},
        )
        if r.status_code != 202:
            raise BenchError(f"lethe: intake answered {r.status_code}: {r.text}")
        job_id = uuid.UUID(r.json()["id"])
    deadline = time.monotonic() + 3600
    seen_hidden = False
    while time.monotonic() < deadline:
        row = await lethe.fetchrow(
            "SELECT t.status, t.done, t.total, t.verification, t.needs_review, j.received_at, "
            "t.soft_deleted_at, t.purged_at, "
            "t.erasing_since, t.hidden_at, t.started_at, "
            "(SELECT min(occurred_at) FROM lethe.job_events e WHERE e.job_id = t.job_id "
            "AND e.type = 'ErasurePlanned') AS planned, "
            "(SELECT max(done_at) FROM lethe.erase_chunks c WHERE c.job_id = t.job_id) AS last, "
            "(SELECT min(done_at) FROM lethe.erase_chunks c WHERE c.job_id = t.job_id) AS first, "
            "(SELECT count(*) FROM lethe.erase_chunks c WHERE c.job_id = t.job_id) AS chunks "
            "FROM lethe.erase_tasks t JOIN lethe.jobs j ON j.id = t.job_id WHERE t.job_id = $1",
            job_id,
        )
        if row is not None and row["hidden_at"] is not None and not seen_hidden:
            seen_hidden = await _check_hidden(platform, subject.id)
        if row is not None and row["status"] in ("purged", "failed"):
            break
        await asyncio.sleep(0.2)
    else:
        raise BenchError("lethe: the job did not finish within an hour")
    if row["status"] != "purged" or not row["verification"]["ok"] or row["needs_review"]:
        raise BenchError(f"lethe: job {job_id} ended {row['status']}: {row['verification']}")
    if not seen_hidden:
        raise BenchError(f"lethe: job {job_id} never hid the subject's row (hidden_at unset)")
    return dict(row)


async def _check_hidden(platform: asyncpg.Pool, user_id: int) -> bool:
    """With `hidden_at` set the subject's row is disabled (or already gone with its chunk)."""
    row = await platform.fetchrow("SELECT disabled FROM users WHERE id = $1", user_id)
    if row is not None and not row["disabled"]:
        raise BenchError("lethe: hidden_at is set but the subject's row is not disabled")
    return True


# ------------------------------------------------------------------ main


async def run(args: argparse.Namespace, ep: infra.Endpoints, state_dir: Path) -> Result:
    await prepare(ep)
    settings = LetheSettings(
        database_url=ep.database_url,
        platform_database_url=ep.platform_database_url,
        s3_endpoint_url=ep.s3_endpoint_url,
    )
    bucket = settings.platform_bucket
    tag = uuid.uuid4().hex[:8]
    org_ids = {side: f"bench-{side}-{tag}" for side in ("a", "b", "c")}
    lethe = await create_pool(ep.database_url, max_size=4)
    platform = await create_pool(ep.platform_database_url, max_size=4)
    api_url = start_services(ep, state_dir)
    infra.stop_process("eraser", state_dir)
    env = {
        **service_env(ep, int(api_url.rsplit(":", 1)[1])),
        "LETHE_ERASE_BATCH_SIZE": str(args.batch_size),
        "LETHE_ERASE_CONCURRENCY": str(args.concurrency),
    }
    names = [f"eraser-bench-{i}" for i in range(args.replicas)]
    for i, name in enumerate(names):
        # --profile: each eraser under cProfile, written when it stops (SIGTERM drains).
        prof = ["-m", "cProfile", "-o", f"{args.profile}.{i}"] if args.profile else []
        argv = [sys.executable, *prof, "-m", "services.eraser"]
        infra.start_process(name, argv, env, state_dir, cwd=REPO)
    try:
        async with s3_client(settings) as s3:
            async with platform.acquire() as conn:
                t0 = time.perf_counter()
                org_a = await seed_org(conn, s3, bucket, org_ids["a"], **shape(args.rows))
                org_b = await seed_org(conn, s3, bucket, org_ids["b"], **shape(args.rows))
                org_c = await seed_org(conn, s3, bucket, org_ids["c"], **shape(args.row_by_row))
                await conn.execute("ANALYZE users, conversations, messages, media_objects")
                print(f"  seeded in {time.perf_counter() - t0:.1f}s", file=sys.stderr)

                keys = await subject_keys(conn, org_a.users[0].id)
                raw_rows, raw_s = await raw_erase(conn, s3, bucket, keys, args.batch_size)
                await check_erased(conn, s3, bucket, org_a, "raw")
                keys = await subject_keys(conn, org_c.users[0].id)
                rbr_rows, rbr_s = await row_by_row_erase(conn, s3, bucket, keys)
                await check_erased(conn, s3, bucket, org_c, "row by row")
                print(
                    f"  baselines done: raw {raw_rows} rows, row by row {rbr_rows} rows",
                    file=sys.stderr,
                )

            subject = org_b.users[0]
            job = await lethe_erase(api_url, lethe, platform, org_ids["b"], subject)
            async with platform.acquire() as conn:
                await check_erased(conn, s3, bucket, org_b, "lethe")
            rows = int(job["done"])
            if rows != org_b.rows_of(subject) or raw_rows != org_a.rows_of(org_a.users[0]):
                raise BenchError(
                    f"lethe erased {rows} rows, the subject owned {org_b.rows_of(subject)}"
                )
            soft_s = (job["soft_deleted_at"] - job["received_at"]).total_seconds()
            purge_s = (job["purged_at"] - job["soft_deleted_at"]).total_seconds()
            first_at = min(t for t in (job["hidden_at"], job["first"]) if t is not None)
            first_s = (first_at - job["received_at"]).total_seconds()

            def since_intake(at: Any) -> float:
                return (at - job["received_at"]).total_seconds() if at else float("nan")

            phases = {
                "eraser_start": since_intake(job["started_at"]),
                "hide": since_intake(job["hidden_at"]),
                "planned": since_intake(job["planned"]),
                "first_chunk": since_intake(job["first"]),
                "plan": since_intake(job["erasing_since"]),
                "chunks": (job["last"] - job["erasing_since"]).total_seconds(),
                "verify": (job["soft_deleted_at"] - job["last"]).total_seconds(),
            }
            raw_rate = raw_rows / raw_s
            rbr_rate = rbr_rows / rbr_s
            soft_rate = rows / soft_s
            purge_rate = rows / purge_s
            async with platform.acquire() as conn:
                for org_id in org_ids.values():
                    await drop_org(conn, s3, bucket, org_id)
            return Result(
                rows=rows,
                objects=len(subject.object_keys),
                batch_size=args.batch_size,
                replicas=args.replicas,
                raw_seconds=round(raw_s, 3),
                raw_rows_per_second=round(raw_rate, 1),
                row_by_row_rows=rbr_rows,
                row_by_row_seconds=round(rbr_s, 3),
                row_by_row_rows_per_second=round(rbr_rate, 1),
                soft_delete_seconds=round(soft_s, 3),
                soft_delete_rows_per_second=round(soft_rate, 1),
                purge_seconds=round(purge_s, 3),
                purge_rows_per_second=round(purge_rate, 1),
                first_hidden_seconds=round(first_s, 3),
                soft_delete_vs_raw=round(soft_rate / raw_rate, 3),
                soft_delete_vs_row_by_row=round(soft_rate / rbr_rate, 2),
                purge_vs_raw=round(purge_rate / raw_rate, 3),
                chunks=int(job["chunks"]),
                soft_delete_phases={k: round(v, 3) for k, v in phases.items()},
            )
    finally:
        for name in names:
            infra.stop_process(name, state_dir)
        stop_services(state_dir)
        await lethe.close()
        await platform.close()


def print_table(r: Result, wall: float) -> None:
    print(f"{'measure':<34} {'rows':>9} {'seconds':>9} {'rows/s':>10} {'vs raw':>7}")
    print("-" * 73)
    lines = [
        ("(a) raw DELETE = ANY, batched", r.rows, r.raw_seconds, r.raw_rows_per_second),
        (
            "(b) row by row (sample)",
            r.row_by_row_rows,
            r.row_by_row_seconds,
            r.row_by_row_rows_per_second,
        ),
        (
            "(c) lethe soft delete (services)",
            r.rows,
            r.soft_delete_seconds,
            r.soft_delete_rows_per_second,
        ),
        ("(d) lethe purge", r.rows, r.purge_seconds, r.purge_rows_per_second),
    ]
    for name, rows, secs, rate in lines:
        vs = rate / r.raw_rows_per_second
        print(f"{name:<34} {rows:>9,} {secs:>9.2f} {rate:>10,.0f} {vs:>6.2f}x")
    print(
        f"objects {r.objects}; batch size {r.batch_size}; {r.chunks} chunks; eraser replicas "
        f"{r.replicas}; c/b = {r.soft_delete_vs_row_by_row:.1f}x, "
        f"c/a target >= 0.6; intake to first row hidden {r.first_hidden_seconds:.2f}s "
        f"(target < 1). Wall {wall:.0f}s."
    )
    p = r.soft_delete_phases
    print(
        f"(c) split: intake to plan start {p['plan']:.2f}s, plan + chunks {p['chunks']:.2f}s, "
        f"verify + report {p['verify']:.2f}s; from intake: job at the eraser "
        f"{p['eraser_start']:.2f}s, subject hidden {p['hide']:.2f}s, plan recorded "
        f"{p['planned']:.2f}s, first chunk committed {p['first_chunk']:.2f}s"
    )
    print(
        f"RESULT soft_delete_vs_raw={r.soft_delete_vs_raw} purge_vs_raw={r.purge_vs_raw} "
        f"first_hidden_s={r.first_hidden_seconds}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.erase", description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows the subject owns")
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--row-by-row", type=int, default=3000, help="rows of the row-by-row sample")
    ap.add_argument("--replicas", type=int, default=1, help="eraser processes")
    ap.add_argument("--concurrency", type=int, default=4, help="chunks at once per eraser")
    ap.add_argument("--json", type=Path, help="also write the result as JSON here")
    ap.add_argument(
        "--profile", type=Path, help="run the erasers under cProfile, stats to PATH.<replica>"
    )
    args = ap.parse_args(argv)
    started = time.perf_counter()
    state_dir = REPO / ".local" / f"bench-{os.getpid()}"
    own_infra = not all(os.environ.get(k) for k in _EXTERNAL)
    if own_infra:
        print(f"starting infrastructure in {state_dir}", file=sys.stderr)
        ep = infra.up(state_dir, REPO)
    else:
        state_dir.mkdir(parents=True, exist_ok=True)
        ep = infra.Endpoints(
            kafka_bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            database_url=os.environ["DATABASE_URL"],
            platform_database_url=os.environ["PLATFORM_DATABASE_URL"],
            s3_endpoint_url=os.environ["S3_ENDPOINT_URL"],
            smtp_host=os.environ["SMTP_HOST"],
            smtp_port=int(os.environ["SMTP_PORT"]),
            mail_dir=state_dir / "mail",
        )
    try:
        result = asyncio.run(run(args, ep, state_dir))
    except BenchError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if own_infra:
            infra.down(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)
    print_table(result, time.perf_counter() - started)
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
