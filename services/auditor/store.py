"""audit_log and audit_checkpoints SQL: ordered appends (a batch per transaction) under a
transaction-scoped advisory lock, signed checkpoints, keyset reads, and the pruning call."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.auditor.domain import GENESIS, AuditRow, chain
from shared.auditchain import checkpoints
from shared.auditchain.checkpoints import Checkpoint
from shared.events import Envelope
from shared.readmodels.audit import (  # noqa: F401  (iter_*: re-exported, the reads of this table)
    CHECKPOINT_COLUMNS,
    COLUMNS,
    Db,
    iter_checkpoints,
    iter_rows,
)

# Serialises appenders across replicas so the chain never forks (audit_prune() takes it too).
_CHAIN_LOCK = 7_715_002


@dataclass(frozen=True)
class Signer:
    """What an appender needs to write checkpoints: the key and how often."""

    key: Ed25519PrivateKey
    every_rows: int


async def append(
    pool: asyncpg.Pool,
    env: Envelope,
    *,
    signer: Signer | None = None,
    recorded_at: datetime | None = None,
) -> AuditRow | None:
    """Append one event; None when it is already recorded (a redelivery)."""
    rows = await append_batch(pool, [env], signer=signer, recorded_at=recorded_at)
    return rows[0] if rows else None


# The whole batch in one statement: one array per column, unnested into rows (details as
# JSON text, cast, which stores what the pool's jsonb codec would).
_INSERT_ROWS = (
    f"INSERT INTO lethe.audit_log ({COLUMNS}) "
    "SELECT s, e, oa, ra, a, act, o, j, sh, d::jsonb, p, h FROM unnest("
    "$1::bigint[], $2::uuid[], $3::timestamptz[], $4::timestamptz[], $5::text[], $6::text[], "
    "$7::text[], $8::uuid[], $9::text[], $10::text[], $11::text[], $12::text[]) "
    "AS t(s, e, oa, ra, a, act, o, j, sh, d, p, h)"
)


async def append_batch(
    pool: asyncpg.Pool,
    envs: list[Envelope],
    *,
    signer: Signer | None = None,
    recorded_at: datetime | None = None,
) -> list[AuditRow]:
    """Append, in their order and in one transaction, the events not yet recorded (a
    redelivery, or an event twice in `envs`, is appended once): the chain is computed in
    memory from the head and written by one statement. With a signer, every
    `every_rows`-th row also gets a signed checkpoint, in the same transaction. The rows
    appended."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _CHAIN_LOCK)
        fresh = await _unrecorded(conn, envs)
        if not fresh:
            return []
        prev_seq, prev_hash = await _head(conn)
        rows = chain(
            fresh, prev_seq=prev_seq, prev_hash=prev_hash, recorded_at=recorded_at or _now()
        )
        await conn.execute(_INSERT_ROWS, *_columns(rows))
        every = signer.every_rows if signer is not None else 0
        for row in rows:
            if signer is not None and every > 0 and row.seq % every == 0:
                cp = checkpoints.sign(signer.key, row.seq, row.hash, _now())
                await _insert_checkpoint(conn, cp)
        return rows


async def _unrecorded(conn: asyncpg.Connection, envs: list[Envelope]) -> list[Envelope]:
    """`envs` less those already in the log, each event_id once (the first kept)."""
    known = {
        r["event_id"]
        for r in await conn.fetch(
            "SELECT event_id FROM lethe.audit_log WHERE event_id = ANY($1::uuid[])",
            [e.event_id for e in envs],
        )
    }
    fresh = []
    for env in envs:
        if env.event_id not in known:
            known.add(env.event_id)
            fresh.append(env)
    return fresh


async def _head(conn: asyncpg.Connection) -> tuple[int, str]:
    """The seq and hash the next row links to."""
    head = await conn.fetchrow("SELECT seq, hash FROM lethe.audit_log ORDER BY seq DESC LIMIT 1")
    if head is None:  # empty: the very start, or everything pruned up to a checkpoint
        head = await conn.fetchrow(
            "SELECT seq, head_hash AS hash FROM lethe.audit_checkpoints ORDER BY seq DESC LIMIT 1"
        )
    return (int(head["seq"]), str(head["hash"])) if head else (0, GENESIS)


def _columns(rows: list[AuditRow]) -> list[list[Any]]:
    return [
        [r.seq for r in rows],
        [r.event_id for r in rows],
        [r.occurred_at for r in rows],
        [r.recorded_at for r in rows],
        [r.actor for r in rows],
        [r.action for r in rows],
        [r.org_id for r in rows],
        [r.job_id for r in rows],
        [r.subject_hash for r in rows],
        [json.dumps(r.details) for r in rows],
        [r.prev_hash for r in rows],
        [r.hash for r in rows],
    ]


def _now() -> datetime:
    return datetime.now(UTC)


async def _insert_checkpoint(conn: asyncpg.Connection, cp: Checkpoint) -> None:
    await conn.execute(
        f"INSERT INTO lethe.audit_checkpoints ({CHECKPOINT_COLUMNS}) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (seq) DO NOTHING",
        cp.seq,
        cp.head_hash,
        cp.signed_at,
        cp.key_id,
        cp.signature,
    )


async def checkpoint_head(pool: asyncpg.Pool, key: Ed25519PrivateKey) -> Checkpoint | None:
    """Sign the current head unless it is already signed; the checkpoint written, or None."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _CHAIN_LOCK)
        head = await conn.fetchrow(
            "SELECT seq, hash FROM lethe.audit_log ORDER BY seq DESC LIMIT 1"
        )
        last = await conn.fetchval("SELECT max(seq) FROM lethe.audit_checkpoints")
        if head is None or (last is not None and last >= head["seq"]):
            return None
        cp = checkpoints.sign(key, head["seq"], head["hash"], _now())
        await _insert_checkpoint(conn, cp)
        return cp


async def last_checkpoint(db: Db) -> Checkpoint | None:
    r = await db.fetchrow(
        f"SELECT {CHECKPOINT_COLUMNS} FROM lethe.audit_checkpoints ORDER BY seq DESC LIMIT 1"
    )
    return Checkpoint(**dict(r)) if r else None


async def seq_span(
    db: Db, since: datetime | None, until: datetime | None
) -> tuple[int, int] | None:
    """First and last seq recorded in [since, until): the rows an export covers."""
    r = await db.fetchrow(
        "SELECT min(seq) AS lo, max(seq) AS hi FROM lethe.audit_log "
        "WHERE ($1::timestamptz IS NULL OR recorded_at >= $1) "
        "AND ($2::timestamptz IS NULL OR recorded_at < $2)",
        since,
        until,
    )
    if r is None or r["lo"] is None:
        return None
    return int(r["lo"]), int(r["hi"])


async def first_seq(db: Db) -> int | None:
    """The oldest row kept (older ones pruned); None when the log is empty."""
    n = await db.fetchval("SELECT min(seq) FROM lethe.audit_log")
    return int(n) if n is not None else None


async def export_start(db: Db, lo: int) -> int:
    """Where an export of rows from `lo` starts: just after the last checkpoint before `lo`
    (still in the log), so the chain can be checked from a signed head; else the first row."""
    start = await db.fetchval(
        "SELECT max(seq) FROM lethe.audit_checkpoints WHERE seq < $1 "
        "AND seq >= (SELECT min(seq) - 1 FROM lethe.audit_log)",
        lo,
    )
    if start is not None:
        return int(start) + 1
    return int(await db.fetchval("SELECT min(seq) FROM lethe.audit_log"))


async def checkpoint_at_or_after(db: Db, seq: int) -> Checkpoint | None:
    r = await db.fetchrow(
        f"SELECT {CHECKPOINT_COLUMNS} FROM lethe.audit_checkpoints "
        "WHERE seq >= $1 ORDER BY seq LIMIT 1",
        seq,
    )
    return Checkpoint(**dict(r)) if r else None


async def prune(db: Db, retention_days: int) -> int:
    """Delete rows older than the retention, up to the newest checkpoint before the first
    younger row (lethe.audit_prune, migration 0003). Rows deleted."""
    n = await db.fetchval("SELECT lethe.audit_prune($1)", timedelta(days=retention_days))
    return int(n or 0)
