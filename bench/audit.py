"""Audit append throughput: the real auditor against raw one-row transactions and COPY.

    python -m bench.audit [--events 20000] [--quick] [--json PATH]

Publishes N events (the Envelope JSON services emit for an erasure: ErasureRequested,
ErasurePlanned, BatchErased x2, JobCompleted per job) to `lethe.audit.v1` and times the
auditor, run as a process (`python -m services.auditor`) in consumer groups of its own, from
the first publish to the last of them recorded (`recorded_at`, written by the auditor). A
warm-up event it must record first proves it is consuming before the clock starts.

In the same run, the same rows (read back from the audit store) are written into a scratch
table shaped like `lethe.audit_log` (same indexes), once by one INSERT per transaction and
once by one COPY. Verified: N rows, every event_id exactly once, the chain and its signed
checkpoints valid (shared/auditchain/verify.py), each scratch copy N rows; else the bench
fails. Last line: `RESULT audit_eps=<n> raw_tx_eps=<n> copy_eps=<n>`.

Uses KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL when both are set; otherwise starts its own
infrastructure in `.local/bench-<pid>` and stops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer

from bench.common import REPO, BenchError, infrastructure
from deploy.local import infra
from shared.auditchain.keys import AuditKeySettings, trusted_public_keys
from shared.auditchain.verify import verify_chain
from shared.db import create_pool, migrate
from shared.events import Actor, Envelope, make_event
from shared.events.jobs import ErasureRequested, Subject
from shared.events.progress import BatchErased, ErasurePlanned, JobCompleted
from shared.events.topics import AUDIT
from shared.hashing import subject_hash
from shared.kafka import ensure_topics
from shared.readmodels.audit import COLUMNS

_NEEDED = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")


@dataclass
class Result:
    events: int
    audit_seconds: float
    audit_eps: float
    raw_tx_seconds: float
    raw_tx_eps: float
    copy_seconds: float
    copy_eps: float
    checkpoints: int


def job_events(actor: Actor, org_id: str, hash_key: bytes, i: int) -> list[Envelope]:
    """What the audit topic sees of one 100-row erasure, as intake and the eraser emit it."""
    job_id = uuid.uuid4()
    email = f"user{i}@{org_id}.example"
    h = subject_hash(hash_key, org_id, {"email": email})
    now = datetime.now(UTC)
    payloads = [
        ErasureRequested(
            scope="subject",
            subject=Subject(email=email),
            requester_email=f"dpo@{org_id}.example",
            regulation="gdpr",
            due_at=now + timedelta(days=30),
            recovery_window_days=0,
            channel="http",
        ),
        ErasurePlanned(total=100, per_table={"users": 1, "conversations": 1, "messages": 98}),
        BatchErased(
            table="messages",
            rows=98,
            objects=0,
            done=98,
            total=100,
            rows_per_second=4000.0,
            eta_seconds=0.1,
        ),
        BatchErased(
            table="users",
            rows=2,
            objects=0,
            done=100,
            total=100,
            rows_per_second=4000.0,
            eta_seconds=0.0,
        ),
        JobCompleted(done=100, total=100, verification={"ok": True, "left": {}}),
    ]
    return [
        make_event(p, actor=actor, job_id=job_id, org_id=org_id, subject_hash=h) for p in payloads
    ]


def make_events(n: int, actor: Actor, org_id: str, hash_key: bytes) -> list[Envelope]:
    events: list[Envelope] = []
    i = 0
    while len(events) < n:
        events.extend(job_events(actor, org_id, hash_key, i))
        i += 1
    return events[:n]


async def publish(bootstrap: str, events: list[Envelope]) -> None:
    """As `shared.kafka.publish_event` does (acks=all, idempotent, keyed, typed header),
    without waiting for each send."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        sent = [
            await producer.send(
                AUDIT,
                env.model_dump_json().encode(),
                key=env.key(),
                headers=[
                    ("content-type", b"application/json"),
                    ("lethe-event-type", env.type.encode()),
                ],
            )
            for env in events
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def wait_recorded(
    pool: asyncpg.Pool, actor: str, after_seq: int, n: int, timeout: float
) -> datetime:
    """Until `n` rows of `actor` past `after_seq` are recorded; the last one's recorded_at."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = await pool.fetchrow(
            "SELECT count(*) AS n, max(recorded_at) AS last FROM lethe.audit_log "
            "WHERE seq > $1 AND actor = $2",
            after_seq,
            actor,
        )
        if row["n"] >= n:
            last: datetime = row["last"]
            return last
        await asyncio.sleep(0.1)
    raise BenchError(f"the auditor recorded {row['n']} of {n} events within {timeout:.0f}s")


async def check_recorded(pool: asyncpg.Pool, events: list[Envelope], after_seq: int) -> int:
    """Every event exactly once, the chain valid; the checkpoints verified."""
    ids = [e.event_id for e in events]
    rows = await pool.fetch(
        "SELECT event_id, count(*) AS n FROM lethe.audit_log WHERE event_id = ANY($1) "
        "GROUP BY event_id",
        ids,
    )
    if len(rows) != len(ids) or any(r["n"] != 1 for r in rows):
        twice = sum(1 for r in rows if r["n"] != 1)
        raise BenchError(f"{len(rows)} of {len(ids)} event_ids recorded, {twice} more than once")
    verdict = await verify_chain(pool, trusted_public_keys(AuditKeySettings()))
    if not verdict.ok:
        raise BenchError(f"the audit chain does not verify: {verdict}")
    print(f"  chain ok: {verdict.rows} rows, {verdict.checkpoints} checkpoints", file=sys.stderr)
    return verdict.checkpoints


async def baselines(dsn: str, actor: str, after_seq: int) -> tuple[int, float, float]:
    """(rows, one-row transactions seconds, COPY seconds) of the same rows into a scratch
    table with the audit log's columns and indexes."""
    conn = await asyncpg.connect(dsn)
    try:
        # COPY is binary: jsonb needs a binary codec (version byte 1, then the JSON text).
        await conn.set_type_codec(
            "jsonb",
            schema="pg_catalog",
            encoder=lambda s: b"\x01" + s.encode(),
            decoder=lambda b: b[1:].decode(),
            format="binary",
        )
        return await _baselines(conn, actor, after_seq)
    finally:
        await conn.close()


async def _baselines(
    conn: asyncpg.Connection, actor: str, after_seq: int
) -> tuple[int, float, float]:
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM lethe.audit_log WHERE seq > $1 AND actor = $2 ORDER BY seq",
        after_seq,
        actor,
    )
    scratch = f"public.bench_audit_{uuid.uuid4().hex[:8]}"
    cols = [c.strip() for c in COLUMNS.split(",")]
    params = ", ".join(f"${i + 1}" for i in range(len(cols)))
    insert = f"INSERT INTO {scratch} ({COLUMNS}) VALUES ({params})"
    await conn.execute(f"CREATE TABLE {scratch} (LIKE lethe.audit_log INCLUDING ALL)")
    try:
        t0 = time.perf_counter()
        for r in rows:  # autocommit: each INSERT is its own transaction
            await conn.execute(insert, *r.values())
        raw_s = time.perf_counter() - t0
        if await conn.fetchval(f"SELECT count(*) FROM {scratch}") != len(rows):
            raise BenchError("raw: rows missing from the scratch table")
        await conn.execute(f"TRUNCATE {scratch}")
        t0 = time.perf_counter()
        await conn.copy_records_to_table(
            scratch.split(".")[1], schema_name="public", records=rows, columns=cols
        )
        copy_s = time.perf_counter() - t0
        if await conn.fetchval(f"SELECT count(*) FROM {scratch}") != len(rows):
            raise BenchError("copy: rows missing from the scratch table")
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {scratch}")
    return len(rows), raw_s, copy_s


async def run(n: int, ep: infra.Endpoints, state_dir: Path) -> Result:
    await migrate(ep.database_url)
    await ensure_topics(ep.kafka_bootstrap_servers)
    tag = uuid.uuid4().hex[:8]
    actor = Actor(kind="service", id=f"bench-{tag}")
    actor_text = f"{actor.kind}:{actor.id}"
    keys = AuditKeySettings()
    hash_key = keys.subject_hash_key.get_secret_value().encode()
    events = make_events(n, actor, f"bench-audit-{tag}", hash_key)
    pool = await create_pool(ep.database_url, max_size=2)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": ep.kafka_bootstrap_servers,
        "DATABASE_URL": ep.database_url,
        "LETHE_KAFKA_GROUP_PREFIX": f"bench-{tag}-",
        "PYTHONUNBUFFERED": "1",
    }
    name = f"auditor-bench-{tag}"
    infra.start_process(name, [sys.executable, "-m", "services.auditor"], env, state_dir, cwd=REPO)
    try:
        start_seq = await pool.fetchval("SELECT coalesce(max(seq), 0) FROM lethe.audit_log")
        warm = make_events(1, actor, f"bench-audit-{tag}-warm", hash_key)
        await publish(ep.kafka_bootstrap_servers, warm)
        await wait_recorded(pool, actor_text, start_seq, 1, timeout=180)
        after = await pool.fetchval("SELECT max(seq) FROM lethe.audit_log")
        print(f"  auditor consuming; publishing {n} events", file=sys.stderr)
        started = datetime.now(UTC)
        await publish(ep.kafka_bootstrap_servers, events)
        print(
            f"  published in {(datetime.now(UTC) - started).total_seconds():.1f}s", file=sys.stderr
        )
        last = await wait_recorded(pool, actor_text, after, n, timeout=max(600, n / 5))
        audit_s = (last - started).total_seconds()
    finally:
        infra.stop_process(name, state_dir)
    try:
        cps = await check_recorded(pool, warm + events, start_seq)
        rows, raw_s, copy_s = await baselines(ep.database_url, actor_text, after)
    finally:
        await pool.close()
    if rows != n:
        raise BenchError(f"{rows} rows read back for the baselines, {n} published")
    return Result(
        events=n,
        audit_seconds=round(audit_s, 3),
        audit_eps=round(n / audit_s, 1),
        raw_tx_seconds=round(raw_s, 3),
        raw_tx_eps=round(n / raw_s, 1),
        copy_seconds=round(copy_s, 3),
        copy_eps=round(n / copy_s, 1),
        checkpoints=cps,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.audit", description=__doc__)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--quick", action="store_true", help="a smoke test: 500 events")
    ap.add_argument("--json", type=Path, help="also write the result as JSON here")
    args = ap.parse_args(argv)
    n = 500 if args.quick else args.events
    t0 = time.perf_counter()
    try:
        with infrastructure(_NEEDED) as (ep, state_dir):
            r = asyncio.run(run(n, ep, state_dir))
    except BenchError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"{'measure':<36} {'events':>8} {'seconds':>9} {'events/s':>10}")
    print("-" * 66)
    for label, secs, eps in (
        ("auditor (Kafka -> chained audit_log)", r.audit_seconds, r.audit_eps),
        ("raw INSERT, one per transaction", r.raw_tx_seconds, r.raw_tx_eps),
        ("COPY of the same rows", r.copy_seconds, r.copy_eps),
    ):
        print(f"{label:<36} {r.events:>8,} {secs:>9.2f} {eps:>10,.0f}")
    print(
        f"verified: every event once, chain and {r.checkpoints} checkpoints valid. "
        f"Target audit_eps >= 5000. Wall {time.perf_counter() - t0:.0f}s."
    )
    if args.json:
        args.json.write_text(json.dumps(asdict(r), indent=2) + "\n")
    rates = f"audit_eps={r.audit_eps:.0f} raw_tx_eps={r.raw_tx_eps:.0f} copy_eps={r.copy_eps:.0f}"
    print(f"RESULT {rates}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
