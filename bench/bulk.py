"""Bulk erasure: one `POST /v1/bulk-requests` of N subjects (100 rows each), timed from the
request to the last subject's outcome (the bulk job's `finished_at`, written by intake).

    python -m bench.jobs --bulk 5000 [--eraser-replicas 1] [--json PATH]

The stack, the seeding and the checks are `bench.jobs`'s: every subject `erased`, its rows
gone, every other user's intact; else the bench fails. Last line:
`RESULT bulk_subjects=<n> bulk_all_outcomes_s=<s> bulk_jobs_per_s=<n>`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx

from bench.common import BenchError
from deploy.local import infra
from deploy.local.sample.seed import seed_org
from deploy.local.stack import prepare, start_services, stop_services
from services.intake import store as intake_store
from shared.db import create_pool
from shared.settings import LetheSettings
from shared.storage import s3_client


@dataclass
class BulkResult:
    subjects: int
    rows_per_job: int
    accept_s: float  # the HTTP answer: every job and outbox row written
    all_outcomes_s: float
    jobs_per_s: float


async def bulk_erasure(
    api_url: str, key: str, lethe: asyncpg.Pool, emails: list[str]
) -> tuple[float, float]:
    """(seconds to the 202, seconds to the last outcome). Fails unless every subject is
    erased."""
    body = {
        "type": "erasure",
        "subjects": [{"email": e} for e in emails],
        "recovery_window_days": 0,
        "request_id": f"bench-bulk-{uuid.uuid4()}",
    }
    async with httpx.AsyncClient(base_url=api_url, timeout=120) as client:
        sent, t0 = datetime.now(UTC), time.perf_counter()
        r = await client.post(
            "/v1/bulk-requests", headers={"Authorization": f"Bearer {key}"}, json=body
        )
        accept_s = time.perf_counter() - t0
    if r.status_code != 202:
        raise BenchError(f"intake answered {r.status_code}: {r.text[:500]}")
    bulk_id = uuid.UUID(r.json()["id"])
    deadline = time.monotonic() + max(600, len(emails))  # at least 1 job/s
    while time.monotonic() < deadline:
        row = await lethe.fetchrow(
            "SELECT finished_at, pending FROM lethe.bulk_jobs WHERE id = $1", bulk_id
        )
        if row["finished_at"] is not None:
            break
        await asyncio.sleep(0.2)
    else:
        raise BenchError(f"bulk: {row['pending']} of {len(emails)} subjects still pending")
    counts = dict(
        await lethe.fetch(
            "SELECT outcome, count(*) FROM lethe.bulk_subjects WHERE bulk_id = $1 GROUP BY outcome",
            bulk_id,
        )
    )
    if counts != {"erased": len(emails)}:
        raise BenchError(f"bulk: outcomes {counts}, expected {len(emails)} erased")
    return accept_s, (row["finished_at"] - sent).total_seconds()


async def run_bulk(args: argparse.Namespace, ep: infra.Endpoints, state_dir: Path) -> BulkResult:
    from bench.jobs import BYSTANDERS, check_erased, start_erasers

    await prepare(ep)
    tag = uuid.uuid4().hex[:8]
    org_id = f"bench-bulk-{tag}"
    os.environ["LETHE_KAFKA_GROUP_PREFIX"] = f"bench-{tag}-"
    settings = LetheSettings(
        database_url=ep.database_url,
        platform_database_url=ep.platform_database_url,
        s3_endpoint_url=ep.s3_endpoint_url,
    )
    lethe = await create_pool(ep.database_url, max_size=4)
    platform = await create_pool(ep.platform_database_url, max_size=2)
    api_url = start_services(ep, state_dir)
    erasers = start_erasers(ep, state_dir, api_url, args.eraser_replicas)
    try:
        t0 = time.perf_counter()
        async with s3_client(settings) as s3, platform.acquire() as conn:
            org = await seed_org(
                conn, s3, settings.platform_bucket, org_id,
                users=args.bulk + BYSTANDERS, conversations_per_user=1,
                messages_per_conversation=98, media_every=0, payments_per_user=0,
                newsletter=False,
            )  # fmt: skip
            await conn.execute("ANALYZE users, conversations, messages")
        print(f"  seeded in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
        await intake_store.create_org(lethe, org_id, f"Bench {org_id}", recovery_window_days=0)
        key = await intake_store.create_api_key(lethe, org_id, "owner", "bench")
        emails = [u.email for u in org.users]
        await asyncio.sleep(3 + 5 * (args.eraser_replicas - 1))  # groups settle (not timed)
        accept_s, all_s = await bulk_erasure(api_url, key, lethe, emails[: args.bulk])
        async with platform.acquire() as conn:
            await check_erased(conn, org, args.bulk)
    finally:
        for name in erasers:
            infra.stop_process(name, state_dir)
        stop_services(state_dir)
        await lethe.close()
        await platform.close()
    return BulkResult(
        subjects=args.bulk,
        rows_per_job=org.rows_of(org.users[0]),
        accept_s=round(accept_s, 3),
        all_outcomes_s=round(all_s, 1),
        jobs_per_s=round(args.bulk / all_s, 1),
    )


def report(r: BulkResult, eraser_replicas: int) -> None:
    print(
        f"bulk erasure of {r.subjects} subjects ({r.rows_per_job} rows each, window 0): "
        f"accepted in {r.accept_s:.2f}s, every outcome known after {r.all_outcomes_s:.1f}s, "
        f"{r.jobs_per_s:.1f} jobs/s with {eraser_replicas} eraser replica(s). "
        "Verified: subjects' rows gone, others intact."
    )
    print(
        f"RESULT bulk_subjects={r.subjects} bulk_all_outcomes_s={r.all_outcomes_s} "
        f"bulk_jobs_per_s={r.jobs_per_s}"
    )
