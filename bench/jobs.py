"""Small jobs: latency of single 100-row erasures and throughput of a burst of them.

    python -m bench.jobs [--jobs 30] [--burst 300] [--eraser-replicas 1] [--quick] [--stages]
                         [--cpu] [--json PATH]
    python -m bench.jobs --bulk 5000   # instead: one bulk erasure of 5,000 subjects (bench/bulk.py)

The five services run as processes (deploy/local/stack.py), in consumer groups of their own;
`--eraser-replicas N` replaces the eraser by N eraser processes. One organisation is seeded
(deploy/local/sample/seed.py) whose users own 100 rows each (the user, a conversation, 98
messages), recovery window 0. One erasure, not timed, warms the stack up first.

- single: `--jobs` erasures one after another through `POST /v1/requests`; each is timed from
  just before the request is sent to the `JobCompleted` event's `occurred_at` (written by the
  eraser, recorded in intake's timeline: same clock). p50 and p90.
- burst: `--burst` erasures published at once on `lethe.requests.v1` (the upstream request
  topic, `SubmitRequest` messages keyed by the org), timed from the first publish to the last
  `JobCompleted`; jobs/s.

Verified: every job `completed`, every subject's rows gone, every other user's intact; else
the bench fails. `--stages`: where a single job's time goes (the median time from submit of
each event of its timeline); `--cpu`: CPU seconds of each process (Kafka, Postgres, every
service) during the burst. Last line: `RESULT p50_s=<s> p90_s=<s> burst_jobs_per_s=<n>`.

Uses the infrastructure named by KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL, PLATFORM_DATABASE_URL,
S3_ENDPOINT_URL, SMTP_HOST and SMTP_PORT when all are set; otherwise starts its own in
`.local/bench-<pid>` and stops it at the end. Services run in the bench's own state dir.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from bench.common import REPO, BenchError, infrastructure, percentile
from bench.cpu import cpu_seconds, cpu_used
from deploy.local import infra
from deploy.local.sample.seed import SeededOrg, seed_org
from deploy.local.stack import prepare, service_env, start_services, stop_services
from services.intake import store as intake_store
from shared.db import create_pool
from shared.events.requests import SubmitRequest
from shared.events.topics import REQUESTS
from shared.settings import LetheSettings
from shared.storage import s3_client

BYSTANDERS = 10  # users nobody erases: their rows must stay
Sent = dict[uuid.UUID, datetime]
_DONE = ("completed", "completed_with_errors", "failed", "not_found", "ambiguous", "cancelled")


@dataclass
class Result:
    jobs: int
    rows_per_job: int
    p50_s: float
    p90_s: float
    max_s: float
    burst: int
    burst_seconds: float
    burst_jobs_per_s: float
    eraser_replicas: int


async def completed_at(lethe: asyncpg.Pool, job_id: uuid.UUID, timeout: float) -> datetime:
    """Until the job is done; when its JobCompleted happened. Fails unless it completed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await lethe.fetchval("SELECT status FROM lethe.jobs WHERE id = $1", job_id)
        if status in _DONE:
            break
        await asyncio.sleep(0.02)
    else:
        raise BenchError(f"job {job_id} not done within {timeout:.0f}s")
    if status != "completed":
        raise BenchError(f"job {job_id} ended {status}")
    at: datetime = await lethe.fetchval(
        "SELECT occurred_at FROM lethe.job_events WHERE job_id = $1 AND type = 'JobCompleted'",
        job_id,
    )
    return at


async def single_jobs(
    api_url: str, key: str, lethe: asyncpg.Pool, emails: list[str], sent_at: Sent | None = None
) -> list[float]:
    """One erasure after another over HTTP: seconds from submit to completed, each (and when
    each was sent, into `sent_at`)."""
    took = []
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        for email in emails:
            sent = datetime.now(UTC)
            r = await client.post(
                "/v1/requests",
                headers={"Authorization": f"Bearer {key}"},
                json={"type": "erasure", "subject": {"email": email}, "recovery_window_days": 0},
            )
            if r.status_code != 202:
                raise BenchError(f"intake answered {r.status_code}: {r.text}")
            job_id = uuid.UUID(r.json()["id"])
            done = await completed_at(lethe, job_id, timeout=120)
            took.append((done - sent).total_seconds())
            if sent_at is not None:
                sent_at[job_id] = sent
    return took


async def stages(lethe: asyncpg.Pool, sent_at: Sent) -> list[tuple[str, float]]:
    """Where a single job's time goes: the median offset from submit of each event of its
    timeline (in order; the n-th BatchErased as `BatchErased#n`), from the services'
    `occurred_at` (one clock: the bench and the services share the machine)."""
    rows = await lethe.fetch(
        "SELECT job_id, type, occurred_at FROM lethe.job_events WHERE job_id = ANY($1) "
        "ORDER BY job_id, occurred_at",
        list(sent_at),
    )
    offsets: dict[str, list[float]] = {}
    seen: dict[tuple[uuid.UUID, str], int] = {}
    for r in rows:
        n = seen[(r["job_id"], r["type"])] = seen.get((r["job_id"], r["type"]), 0) + 1
        name = r["type"] if n == 1 else f"{r['type']}#{n}"
        offsets.setdefault(name, []).append(
            (r["occurred_at"] - sent_at[r["job_id"]]).total_seconds()
        )
    return sorted(((k, percentile(v, 50)) for k, v in offsets.items()), key=lambda kv: kv[1])


async def burst(bootstrap: str, lethe: asyncpg.Pool, org_id: str, emails: list[str]) -> float:
    """All at once on the request topic; seconds from the first publish to the last
    JobCompleted."""
    tag = uuid.uuid4().hex[:8]
    msgs = [
        SubmitRequest(
            org_id=org_id,
            source="bench",
            request={
                "type": "erasure",
                "subject": {"email": email},
                "recovery_window_days": 0,
                "request_id": f"bench-{tag}-{i}",
            },
        )
        for i, email in enumerate(emails)
    ]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        started = datetime.now(UTC)
        sends = [
            await producer.send(REQUESTS, m.model_dump_json().encode(), key=org_id.encode())
            for m in msgs
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    deadline = time.monotonic() + max(300, len(emails))
    while time.monotonic() < deadline:
        row = await lethe.fetchrow(
            "SELECT count(*) FILTER (WHERE status = ANY($3)) AS done, "
            "count(*) FILTER (WHERE status = 'completed') AS ok FROM lethe.jobs "
            "WHERE org_id = $1 AND received_at >= $2",
            org_id,
            started,
            list(_DONE),
        )
        if row["done"] >= len(emails):
            break
        await asyncio.sleep(0.1)
    else:
        raise BenchError(f"burst: {row['done']} of {len(emails)} jobs done in time")
    if row["ok"] != len(emails):
        raise BenchError(f"burst: {row['ok']} of {len(emails)} jobs completed")
    last: datetime = await lethe.fetchval(
        "SELECT max(e.occurred_at) FROM lethe.job_events e JOIN lethe.jobs j ON j.id = e.job_id "
        "WHERE j.org_id = $1 AND j.received_at >= $2 AND e.type = 'JobCompleted'",
        org_id,
        started,
    )
    return (last - started).total_seconds()


async def check_erased(conn: asyncpg.Connection, org: SeededOrg, erased: int) -> None:
    """The first `erased` users' rows are gone; every other user's are all still there."""
    subjects, others = org.users[:erased], org.users[erased:]
    ids = [u.id for u in subjects]
    left = await conn.fetchval(
        "SELECT (SELECT count(*) FROM users WHERE id = ANY($1)) + "
        "(SELECT count(*) FROM conversations WHERE user_id = ANY($1)) + "
        "(SELECT count(*) FROM messages WHERE author_id = ANY($1))",
        ids,
    )
    if left:
        raise BenchError(f"{left} rows of the {len(ids)} subjects are left")
    kept = await conn.fetchval(
        "SELECT (SELECT count(*) FROM users WHERE org_id = $1) + "
        "(SELECT count(*) FROM conversations WHERE org_id = $1) + "
        "(SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id "
        " WHERE c.org_id = $1)",
        org.org_id,
    )
    expected = sum(org.rows_of(u) for u in others)
    if kept != expected:
        present = {
            r[0]
            for r in await conn.fetch(
                "SELECT id FROM users WHERE id = ANY($1)", [u.id for u in others]
            )
        }
        gone = [u.email for u in others if u.id not in present]
        raise BenchError(f"other users' rows changed: {kept} != {expected}; users gone: {gone}")


def start_erasers(ep: infra.Endpoints, state_dir: Path, api_url: str, n: int) -> list[str]:
    """Replace the stack's eraser by `n` of them (same environment)."""
    infra.stop_process("eraser", state_dir)
    env = service_env(ep, int(api_url.rsplit(":", 1)[1]), state_dir)
    names = [f"eraser-bench-{i}" for i in range(n)]
    for name in names:
        infra.start_process(
            name, [sys.executable, "-m", "services.eraser"], env, state_dir, cwd=REPO
        )
    return names


async def run(args: argparse.Namespace, ep: infra.Endpoints, state_dir: Path) -> Result:
    await prepare(ep)
    tag = uuid.uuid4().hex[:8]
    org_id = f"bench-jobs-{tag}"
    n_subjects = 1 + args.jobs + args.burst  # a warm-up job first
    # Consumer groups of our own (children inherit it): never another deployment's offsets.
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
        async with s3_client(settings) as s3, platform.acquire() as conn:
            org = await seed_org(
                conn, s3, settings.platform_bucket, org_id,
                users=n_subjects + BYSTANDERS, conversations_per_user=1,
                messages_per_conversation=98, media_every=0, payments_per_user=0,
                newsletter=False,
            )  # fmt: skip
            await conn.execute("ANALYZE users, conversations, messages")
        rows = org.rows_of(org.users[0])
        await intake_store.create_org(lethe, org_id, f"Bench {org_id}", recovery_window_days=0)
        key = await intake_store.create_api_key(lethe, org_id, "owner", "bench")
        emails = [u.email for u in org.users]
        # Not timed: the erasers settle in their groups (rebalances), the first job warms up.
        await asyncio.sleep(3 + 5 * (args.eraser_replicas - 1))
        await single_jobs(api_url, key, lethe, emails[:1])
        singles, bursts = emails[1 : 1 + args.jobs], emails[1 + args.jobs : n_subjects]
        sent_at: Sent = {}
        took = await single_jobs(api_url, key, lethe, singles, sent_at)
        print(f"  {args.jobs} single jobs: p50 {percentile(took, 50):.3f}s", file=sys.stderr)
        if args.stages:
            for name, at in await stages(lethe, sent_at):
                print(f"    {at * 1000:7.1f} ms  {name}", file=sys.stderr)
        cpu = cpu_seconds([state_dir, *args.cpu_of]) if args.cpu else {}
        burst_s = await burst(ep.kafka_bootstrap_servers, lethe, org_id, bursts)
        if args.cpu:
            used = cpu_used(cpu, cpu_seconds([state_dir, *args.cpu_of]))
            print(f"  burst CPU seconds: {used}", file=sys.stderr)
        print(f"  burst of {args.burst}: {burst_s:.1f}s", file=sys.stderr)
        async with platform.acquire() as conn:
            await check_erased(conn, org, n_subjects)
    finally:
        for name in erasers:
            infra.stop_process(name, state_dir)
        stop_services(state_dir)
        await lethe.close()
        await platform.close()
    return Result(
        jobs=args.jobs,
        rows_per_job=rows,
        p50_s=round(percentile(took, 50), 3),
        p90_s=round(percentile(took, 90), 3),
        max_s=round(max(took), 3),
        burst=args.burst,
        burst_seconds=round(burst_s, 3),
        burst_jobs_per_s=round(args.burst / burst_s, 2),
        eraser_replicas=args.eraser_replicas,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.jobs", description=__doc__)
    ap.add_argument("--jobs", type=int, default=30, help="single erasures, one after another")
    ap.add_argument("--burst", type=int, default=300, help="erasures published at once")
    ap.add_argument("--eraser-replicas", type=int, default=1, help="eraser processes")
    ap.add_argument("--quick", action="store_true", help="a smoke test: 5 jobs, a burst of 20")
    ap.add_argument(
        "--stages", action="store_true", help="print where a single job's time goes (p50)"
    )
    ap.add_argument(
        "--cpu", action="store_true", help="print the CPU seconds of each process in the burst"
    )
    ap.add_argument(
        "--cpu-of", type=Path, nargs="*", default=[],
        help="also these infrastructure state directories (when KAFKA_BOOTSTRAP_SERVERS...)",
    )  # fmt: skip
    ap.add_argument("--json", type=Path, help="also write the result as JSON here")
    ap.add_argument(
        "--bulk", type=int, default=0, help="instead: one bulk erasure of N subjects (bench.bulk)"
    )
    args = ap.parse_args(argv)
    if args.bulk:
        return bulk_main(args)
    if args.quick:
        args.jobs, args.burst = 5, 20
    t0 = time.perf_counter()
    try:
        with infrastructure() as (ep, state_dir):
            r = asyncio.run(run(args, ep, state_dir))
    except BenchError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(
        f"single {r.rows_per_job}-row erasures (HTTP, window 0), submit -> completed, "
        f"{r.jobs} jobs: p50 {r.p50_s:.3f}s, p90 {r.p90_s:.3f}s, max {r.max_s:.3f}s "
        "(targets: p50 < 0.15s)"
    )
    print(
        f"burst of {r.burst} on {REQUESTS}: {r.burst_seconds:.1f}s, {r.burst_jobs_per_s:.1f} "
        f"jobs/s (target >= 50) with {r.eraser_replicas} eraser replica(s). "
        f"Verified: subjects' rows gone, others intact. Wall {time.perf_counter() - t0:.0f}s."
    )
    if args.json:
        args.json.write_text(json.dumps(asdict(r), indent=2) + "\n")
    print(f"RESULT p50_s={r.p50_s} p90_s={r.p90_s} burst_jobs_per_s={r.burst_jobs_per_s}")
    return 0


def bulk_main(args: argparse.Namespace) -> int:
    """`--bulk N`: the bulk erasure bench (bench/bulk.py), its own RESULT line."""
    from bench import bulk

    try:
        with infrastructure() as (ep, state_dir):
            r = asyncio.run(bulk.run_bulk(args, ep, state_dir))
    except BenchError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    bulk.report(r, args.eraser_replicas)
    if args.json:
        args.json.write_text(json.dumps(asdict(r), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
