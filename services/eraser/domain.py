"""Erasure, soft-delete phase: plan into chunks, erase chunk by chunk, verify.

Plain async functions over explicit dependencies; no Kafka here (events go out via `emit`,
chunks via `publish_chunk`).

- **Plan** (ErasureRequested): resolve the subject through the data map, record the chunks
  (table + up to `batch_size` keys) as checkpoints, publish the first wave's chunks.
- **Waves**: tables are grouped so that every table comes after all its children
  (`DataMap.waves`). Only one wave's chunks are published at a time; whoever finishes the
  wave's last chunk publishes the next wave (publishing is idempotent, a compare-and-set of
  the job's wave decides who moves it on). Replicas share a wave's chunks through the
  consumer group; children are always gone before their parents.
- **Chunk**: objects to quarantine first (recorded before they move), then one platform
  transaction that deletes or masks the rows and writes them, sealed with the job key, to
  the restoration log. A chunk whose record exists already is done: running it twice
  changes nothing. Then the checkpoint, a progress event, and maybe the next wave.
- **Soft deleted**: after the last wave, verify (the subject resolves to nothing, objects
  sit in quarantine) and report; with a recovery window of 0 the purge follows at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import asyncpg
from botocore.exceptions import BotoCoreError, ClientError

from services.eraser import fence, store
from services.eraser import objects as s3objects
from shared.crypto import new_data_key, open_sealed, seal, unwrap_key, wrap_key
from shared.datamap import DataMap, LiveSchema
from shared.events import Actor, Envelope, Payload, make_event
from shared.events.jobs import EraseChunk, ErasureRequested
from shared.events.notifications import Audience
from shared.events.progress import (
    BatchErased,
    DuplicateIgnored,
    ErasurePlanned,
    ErasureSoftDeleted,
    JobFailed,
    SubjectAmbiguous,
    SubjectNotFound,
)
from shared.events.topics import AUDIT, NOTIFICATIONS, PROGRESS
from shared.notices import job_notice, request_notice
from shared.platform import (
    ERASE,
    KEY_CHUNK,
    chunk_object_keys,
    count_unmasked,
    delete_returning,
    detach_mask,
    detach_op,
    detach_relation,
    mask_returning,
)
from shared.resolver import Ambiguous, Resolver, Scope, ScopeError, Subject, stream_keys
from shared.scan import ScanHit, scan_identities

ACTOR = Actor(kind="service", id="eraser")
OBJECT_BATCH = 50  # rows per chunk of a table holding S3 object keys
Emit = Callable[[str, Envelope], Awaitable[None]]
PublishChunk = Callable[[Envelope], Awaitable[None]]


@dataclass
class EraserDeps:
    lethe: asyncpg.Pool
    platform: asyncpg.Pool
    s3: Any
    bucket: str
    datamap: DataMap
    live: LiveSchema
    emit: Emit
    publish_chunk: PublishChunk
    master_key: bytes
    hmac_key: bytes = b"dev-only-mask-hmac-key"
    batch_size: int = 1000
    rate_limit_rows: float = 0.0
    scan_schemas: tuple[str, ...] = ("public",)
    scan_seconds: float = 30.0
    clock: Callable[[], float] = field(default=time.monotonic)
    worker: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    _keys: dict[uuid.UUID, bytes] = field(default_factory=dict)

    # Derived once from the map and the live schema (both fixed for the process's life).
    @cached_property
    def pk_types(self) -> dict[str, str]:
        return self.live.pk_types(self.datamap)

    @cached_property
    def resolver(self) -> Resolver:
        return Resolver(self.datamap, self.live)

    @cached_property
    def _column_types(self) -> dict[str, dict[str, str]]:
        return {
            t: {c: col.type for c, col in cols.items()} for t, cols in self.live.columns.items()
        }

    def column_types(self, table: str) -> dict[str, str]:
        return self._column_types.get(table, {})

    def waves(self, tables: list[str] | None = None) -> list[list[str]]:
        """Tables in deletion order, with the live database's foreign keys as well."""
        tables = list(self.datamap.tables) if tables is None else tables
        return self.datamap.waves(tables, self.live.link_edges(self.datamap))

    def job_key(self, job: store.Job) -> bytes:
        key = self._keys.get(job.job_id)
        if key is None:
            if job.wrapped_key is None:
                raise KeyDestroyed(f"the key of job {job.job_id} is destroyed")
            key = unwrap_key(self.master_key, job.wrapped_key, _context(job.job_id))
            if len(self._keys) > 256:
                self._keys.clear()
            self._keys[job.job_id] = key
        return key

    def forget_key(self, job_id: uuid.UUID) -> None:
        self._keys.pop(job_id, None)


class KeyDestroyed(RuntimeError):
    pass


def _context(job_id: uuid.UUID) -> bytes:
    return f"erase-job:{job_id}".encode()


def chunk_aad(job_id: uuid.UUID, chunk_no: int) -> bytes:
    return f"restoration:{job_id}:{chunk_no}".encode()


def job_event(job: store.Job, payload: Payload, trace: dict[str, str] | None = None) -> Envelope:
    return make_event(
        payload,
        actor=ACTOR,
        job_id=job.job_id,
        org_id=job.org_id,
        subject_hash=job.subject_hash,
        trace=trace,
    )


def _event(src: Envelope, payload: Payload) -> Envelope:
    return make_event(
        payload, actor=ACTOR, job_id=src.job_id, org_id=src.org_id, subject_hash=src.subject_hash
    )


# ------------------------------------------------------------------ the sealed request


@dataclass(frozen=True)
class SealedRequest:
    """What later phases need from the request; kept sealed with the job key."""

    scope: str
    identities: dict[str, str] | None
    requester_email: str | None
    delete_media: bool = True
    status_link: str | None = None  # the subject's status page, for the mails


def open_request(deps: EraserDeps, job: store.Job) -> SealedRequest:
    assert job.sealed_request is not None
    raw = open_sealed(deps.job_key(job), job.sealed_request, b"request:" + _context(job.job_id))
    return SealedRequest(**json.loads(raw))


# ------------------------------------------------------------------ plan


async def plan(env: Envelope, deps: EraserDeps) -> None:
    req = env.payload_as(ErasureRequested)
    assert env.job_id is not None and env.org_id is not None
    job_id, org_id = env.job_id, env.org_id
    job = await store.get_job(deps.lethe, job_id)
    if job is not None and job.status == "erasing":
        # Redelivered after a crash between planning and publishing: publish again, and move
        # the job on (a plan with nothing left to do must still finish).
        await publish_wave(deps, job, job.wave)
        await advance(deps, job_id)
        return
    if job is not None and job.status != "planning":
        await deps.emit(AUDIT, _event(env, DuplicateIgnored(original_type=env.type)))
        return

    identities = req.subject.identities() if req.scope == "subject" and req.subject else None
    if req.scope == "subject" and not identities:
        await fail(env, deps, "the request names no subject identity")
        return
    if job is None:
        key = new_data_key()
        request = SealedRequest(
            req.scope, identities, req.requester_email, req.delete_media, req.status_link
        )
        await store.create_job(
            deps.lethe,
            job_id,
            org_id,
            env.subject_hash,
            req.recovery_window_days,
            wrap_key(deps.master_key, key, _context(job_id)),
            seal(key, json.dumps(request.__dict__).encode(), b"request:" + _context(job_id)),
        )
    resolver = deps.resolver
    async with deps.platform.acquire() as conn:
        try:
            subject = await resolver.resolve(conn, Scope(org_id, identities))
        except ScopeError as exc:
            ambiguous = isinstance(exc, Ambiguous)
            await store.set_status(deps.lethe, job_id, "ambiguous" if ambiguous else "failed")
            if ambiguous:
                await _outcome(env, deps, SubjectAmbiguous(reason=str(exc)), "job_ambiguous")
            else:
                await fail(env, deps, str(exc))
            return
        planned = await _record_plan(deps, conn, job_id, subject)
    if planned is None:
        return  # another planner recorded it first
    per_table = planned
    if not sum(per_table.values()):
        # Nothing held on this subject: a result, never a "0 rows erased" success.
        await store.transition(deps.lethe, job_id, ["erasing"], "not_found")
        await _outcome(env, deps, SubjectNotFound(scope=req.scope), "job_not_found")
        return
    await deps.emit(
        PROGRESS,
        _event(env, ErasurePlanned(total=sum(per_table.values()), per_table=per_table)),
    )
    job = await store.get_job(deps.lethe, job_id)
    assert job is not None
    await publish_wave(deps, job, job.wave)
    await advance(deps, job_id)


async def _record_plan(
    deps: EraserDeps, conn: asyncpg.Connection, job_id: uuid.UUID, subject: Subject
) -> dict[str, int] | None:
    """Stream the subject's keys into chunks (never every key in memory), in one transaction.

    Detaches come first (wave 0): a link into a row that goes is nulled or moved to the
    tombstone before that row is deleted. Then each table's own action, in its wave.
    """
    dm, resolver = deps.datamap, deps.resolver
    tables = resolver.tables(subject.scope)
    waves = deps.waves(tables)
    per_table: dict[str, int] = {}
    async with deps.lethe.acquire() as lconn, lconn.transaction(), conn.transaction():
        if not await store.start_plan(lconn, job_id, len(waves)):
            return None
        # Each table's keys once, in temporary tables: the later tables' queries read them.
        subject = await resolver.materialize(conn, subject)
        work: list[tuple[int, str, str, tuple[str, list[object]]]] = []
        for table, index, rel in dm.detaches(tables):
            work.append((0, table, detach_op(index), resolver.detach_sql(table, rel, subject)))
        for wave_no, wave_tables in enumerate(waves):
            for table in wave_tables:
                if dm.tables[table].action != "keep":
                    work.append((wave_no, table, ERASE, resolver.key_text_sql(table, subject)))
        chunk_no = 0
        for wave_no, table, op, (sql, args) in work:
            size = deps.batch_size
            if op == ERASE and dm.tables[table].object_key_column is not None:
                # Each row may move an object (one S3 copy each): smaller chunks keep a
                # batch short, spread the copies over the replicas and hide rows sooner.
                size = min(size, OBJECT_BATCH)
            label = table if op == ERASE else f"{table} ({op.replace(':', ' ')})"
            count = 0
            # Large pages: one round trip and one COPY per 20,000 keys, chunked here.
            async for page in stream_keys(conn, sql, list(args), size * max(1, 20_000 // size)):
                rows = [
                    (chunk_no + i, wave_no, table, page[j : j + size], op)
                    for i, j in enumerate(range(0, len(page), size))
                ]
                await store.add_chunks(lconn, job_id, rows)
                chunk_no += len(rows)
                count += len(page)
            if count or op == ERASE:
                per_table[label] = per_table.get(label, 0) + count
        await store.finish_plan(lconn, job_id, per_table)
    return per_table


async def publish_wave(deps: EraserDeps, job: store.Job, wave: int) -> None:
    pending = await store.pending_chunks(deps.lethe, job.job_id, wave)
    for i in range(0, len(pending), 500):
        await asyncio.gather(
            *(
                deps.publish_chunk(job_event(job, EraseChunk(chunk_no=n, wave=wave, table=t)))
                for n, t in pending[i : i + 500]
            )
        )


async def advance(deps: EraserDeps, job_id: uuid.UUID) -> None:
    """Move the job on when its current wave has no pending chunk left (any caller may try)."""
    while True:
        state = await store.wave_state(deps.lethe, job_id)
        if state is None:
            return
        status, wave, waves, pending = state
        if status != "erasing" or pending:
            return
        job = await store.get_job(deps.lethe, job_id)
        assert job is not None
        if wave + 1 >= waves:
            await finish_soft_delete(deps, job)
            return
        # Publish first (idempotent), then move the wave: a crash in between is repaired by
        # the redelivered chunk, which comes back here.
        await publish_wave(deps, job, wave + 1)
        await store.advance_wave(deps.lethe, job_id, wave)


# ------------------------------------------------------------------ one chunk


class _AlreadyDone(Exception):
    pass


async def process_chunk(env: Envelope, deps: EraserDeps) -> None:
    cmd = env.payload_as(EraseChunk)
    assert env.job_id is not None
    job = await store.get_job(deps.lethe, env.job_id)
    if job is None or job.status != "erasing":
        if job is not None:  # an earlier run of this chunk may have moved objects: back
            await fence.release_chunk_objects(deps, job.job_id, cmd.chunk_no)
        return  # cancelled (or finished): a chunk of it has no effect any more
    chunk = await store.get_chunk(deps.lethe, job.job_id, cmd.chunk_no)
    if chunk is None or chunk.status != "pending":
        await advance(deps, job.job_id)
        return
    await _throttle(deps, job)
    key = deps.job_key(job)
    table = chunk.table_name
    t = deps.datamap.tables[table]
    pk_type = deps.pk_types[table]

    moved = 0
    if t.object_key_column is not None and chunk.op == ERASE:
        async with deps.platform.acquire() as conn:
            keys = await chunk_object_keys(conn, table, t, pk_type, chunk.keys)
        if keys and not open_request(deps, job).delete_media:
            # The platform keeps its objects: the rows (the links) go, the objects stay,
            # and the job records which ones it left on purpose.
            await store.record_objects(
                deps.lethe, job.job_id, table, chunk.chunk_no, keys, keys, state="kept"
            )
        elif keys:
            pairs = [(k, s3objects.quarantine_key(job.job_id, k)) for k in keys]
            # Recorded before the move: whatever happens next, no object is left untracked.
            await store.record_objects(
                deps.lethe, job.job_id, table, chunk.chunk_no, keys, [q for _, q in pairs]
            )
            gone = await s3objects.move(deps.s3, deps.bucket, pairs)
            if gone:
                await store.set_object_state(deps.lethe, job.job_id, gone, "purged")
            moved = len(keys) - len(gone)

    try:
        rows = await _soft_delete_rows(deps, job.job_id, chunk, key)
    except fence.Fenced:  # cancelled or restored meanwhile: nothing committed
        await fence.release_chunk_objects(deps, job.job_id, chunk.chunk_no)
        return
    result = await store.finish_chunk(
        deps.lethe, job.job_id, chunk.chunk_no, "done", rows, moved, worker=deps.worker
    )
    if result is not None:
        done, total, since = result
        await deps.emit(
            PROGRESS, job_event(job, _batch_event(table, rows, moved, done, total, since))
        )
    await advance(deps, job.job_id)


async def _soft_delete_rows(
    deps: EraserDeps, job_id: uuid.UUID, chunk: store.Chunk, key: bytes
) -> int:
    """One transaction: rows out of the live table, sealed into the restoration log."""
    table = chunk.table_name
    t = deps.datamap.tables[table]
    try:
        async with deps.platform.acquire() as conn, conn.transaction():
            await fence.enter_chunk(conn, deps.lethe, job_id)  # state re-read under it
            # Run before? Deleted rows are simply not found again; masked rows are found and
            # masked again, but the restoration record's key refuses a second copy below.
            pk_type = deps.pk_types[table]
            relation = detach_relation(t, chunk.op)
            if relation is not None:
                removed = await mask_returning(
                    conn,
                    table,
                    t,
                    pk_type,
                    chunk.keys,
                    deps.hmac_key,
                    mask=detach_mask(relation),
                    col_types=deps.column_types(table),
                )
            elif t.action == "mask":
                removed = await mask_returning(
                    conn,
                    table,
                    t,
                    pk_type,
                    chunk.keys,
                    deps.hmac_key,
                    col_types=deps.column_types(table),
                )
            else:
                removed = await delete_returning(conn, table, t, pk_type, chunk.keys)
            if not removed.keys:
                # A concurrent run of this chunk may have committed meanwhile.
                return await store.restoration_count(conn, job_id, chunk.chunk_no) or 0
            body = json.dumps({"keys": removed.keys, "rows": removed.rows}).encode()
            sealed = seal(key, body, chunk_aad(job_id, chunk.chunk_no))
            if not await store.insert_restoration(
                conn, job_id, chunk.chunk_no, table, removed.keys, sealed, chunk.op
            ):
                raise _AlreadyDone
            return len(removed.keys)
    except _AlreadyDone:
        async with deps.platform.acquire() as conn:
            return await store.restoration_count(conn, job_id, chunk.chunk_no) or 0


def _batch_event(
    table: str, rows: int, objects: int, done: int, total: int, since: datetime | None
) -> BatchErased:
    elapsed = max((datetime.now(UTC) - since).total_seconds(), 1e-3) if since else 1e-3
    rate = done / elapsed
    return BatchErased(
        table=table,
        rows=rows,
        objects=objects,
        done=done,
        total=total,
        rows_per_second=round(rate, 1),
        eta_seconds=round((total - done) / rate, 1) if rate > 0 else None,
    )


async def _throttle(deps: EraserDeps, job: store.Job) -> None:
    """Rows per second per job, over all replicas: the job's own counters are the clock."""
    if deps.rate_limit_rows <= 0 or job.erasing_since is None:
        return
    elapsed = (datetime.now(UTC) - job.erasing_since).total_seconds()
    wait = job.done / deps.rate_limit_rows - elapsed
    if wait > 0:
        await asyncio.sleep(min(wait, 60))


async def chunk_failed(env: Envelope, deps: EraserDeps, error: str) -> None:
    """Retries exhausted: the chunk becomes a manual-review item, the job goes on."""
    cmd = env.payload_as(EraseChunk)
    assert env.job_id is not None
    job = await store.get_job(deps.lethe, env.job_id)
    if job is None:
        return
    async with deps.platform.acquire() as conn:
        held = await store.restoration_count(conn, job.job_id, cmd.chunk_no)
    if held is None:
        # The rows stayed: their objects go back where they were, nothing is half-erased.
        pairs = await store.objects(deps.lethe, job.job_id, "quarantined", chunk_no=cmd.chunk_no)
        if pairs:
            try:
                await s3objects.move(deps.s3, deps.bucket, [(q, k) for k, q in pairs])
            except Exception as exc:  # e.g. the bucket is gone: said in the review item
                error += f"; its {len(pairs)} objects could not be put back: {exc!r}"
            else:
                keys = [k for k, _ in pairs]
                await store.set_object_state(deps.lethe, job.job_id, keys, "restored")
        await store.finish_chunk(deps.lethe, job.job_id, cmd.chunk_no, "failed", 0, 0, error)
    else:
        await store.finish_chunk(deps.lethe, job.job_id, cmd.chunk_no, "done", held, 0)
    await advance(deps, job.job_id)


# ------------------------------------------------------------------ verify and report


async def remaining(deps: EraserDeps, subject: Subject) -> dict[str, int]:
    """The map's view: rows the resolver still finds for the subject (masked rows count
    only while a column still holds its original value)."""
    dm, resolver = deps.datamap, deps.resolver
    left: dict[str, int] = {}
    async with deps.platform.acquire() as conn, conn.transaction():
        for table in resolver.tables(subject.scope):
            t = dm.tables[table]
            if t.action == "keep":
                continue
            n = 0
            sql, args = resolver.key_text_sql(table, subject)
            async for keys in stream_keys(conn, sql, args, KEY_CHUNK):
                if t.action == "mask":
                    n += await count_unmasked(
                        conn, table, t, deps.pk_types[table], keys, deps.column_types(table)
                    )
                else:
                    n += len(keys)
            if n:
                left[table] = n
    return left


async def verify(
    deps: EraserDeps, job: store.Job, request: SealedRequest, phase: str
) -> dict[str, Any]:
    """Resolve the subject again: nothing may be left. Objects: where expected."""
    identities = request.identities if request.scope == "subject" else None
    scope = Scope(job.org_id, identities)
    async with deps.platform.acquire() as conn:
        try:
            subject = await deps.resolver.resolve(conn, scope)
        except Ambiguous:
            # Restored rows (or new ones) can make identities disagree again: still a check.
            subject = Subject(scope)
        held = await store.restoration_rows(conn, job.job_id)
    left = await remaining(deps, subject)
    result: dict[str, Any] = {
        "phase": phase,
        "rows_remaining": left,
        "restoration_rows": held,
    }
    objects_ok = True
    if any(t.object_key_column for t in deps.datamap.tables.values()):
        # Only a map with object columns has objects to look at (and a bucket to ask).
        originals = [k for k, _ in await store.objects(deps.lethe, job.job_id, "quarantined")]
        purged = [k for k, _ in await store.objects(deps.lethe, job.job_id, "purged")]
        checked = originals + purged
        try:
            present = await s3objects.still_present(deps.s3, deps.bucket, checked)
            quarantined = await s3objects.list_prefix(
                deps.s3, deps.bucket, s3objects.quarantine_prefix(job.job_id)
            )
        except (BotoCoreError, ClientError) as exc:
            # The bucket gone or out of reach: the objects cannot be accounted for. Said in
            # the result (verification fails), and the job still finishes: never a hang.
            result.update(objects_checked=0, objects_error=f"bucket {deps.bucket!r}: {exc}")
            objects_ok = False
        else:
            expected_q = 0 if phase == "purge" else len(originals)
            result.update(
                objects_checked=len(checked),
                objects_remaining=len(present),
                quarantined_objects=len(quarantined or ()),
            )
            objects_ok = not present and len(quarantined or ()) == expected_q
    # Rows put back on purpose (restore) are live again; only more than those is a failure.
    rows_ok = sum(left.values()) <= job.restored_rows if job.restored_rows else not left
    scan = await _scan(deps, job.org_id, identities)
    result["scan"] = scan
    scan_ok = scan.get("ok", True) or bool(job.restored_rows)
    result["ok"] = rows_ok and objects_ok and scan_ok
    if phase == "purge":
        result["ok"] = result["ok"] and held == 0
    return result


# Identity kinds worth looking for in free text: a bare user id ("42") would match anything.
_SCANNED_KINDS = ("email", "phone", "external_id")


async def _hits_of_this_org(deps: EraserDeps, org_id: str, hits: list[ScanHit]) -> list[ScanHit]:
    """The same email in another organisation is another person: where the map knows a
    table's org column, a hit counts only in this org's rows. Elsewhere every hit counts."""
    by_table: dict[str, list[ScanHit]] = {}
    for h in hits:
        by_table.setdefault(h.table, []).append(h)
    out: list[ScanHit] = []
    async with deps.platform.acquire() as conn:
        for table, found in by_table.items():
            t = deps.datamap.tables.get(table)
            if t is None or t.org_column is None:
                out.extend(found)
                continue
            mine = await store.keys_in_org(conn, table, t, org_id, [h.key for h in found])
            out.extend(h for h in found if h.key in mine)
    return out


async def _scan(deps: EraserDeps, org_id: str, identities: dict[str, str] | None) -> dict[str, Any]:
    """Verification that does not trust the map: every text and json column of the platform
    (mapped or not) searched for the subject's identity values, within a time budget."""
    values = {k: v for k, v in (identities or {}).items() if k in _SCANNED_KINDS}
    if not values or deps.scan_seconds <= 0:
        reason = "no identity value to look for" if not values else "turned off"
        return {"ok": True, "skipped_reason": reason}
    report = await scan_identities(
        deps.platform, values, schemas=deps.scan_schemas, budget_s=deps.scan_seconds
    )
    hits = await _hits_of_this_org(deps, org_id, report.hits)
    return {
        "ok": not hits and not report.skipped,
        "hits": [{"table": h.table, "column": h.column, "key": h.key} for h in hits],
        "columns_scanned": len(report.scanned),
        "skipped": report.skipped,
        "elapsed_s": round(report.elapsed_s, 3),
    }


def trace_items(
    verification: dict[str, Any], review: list[dict[str, Any]], restored_rows: int
) -> list[dict[str, Any]]:
    """Review items for traces the scan found (where, never the value). Not for tables whose
    rows are already up for review (a chunk that failed), nor after a restore (rows put
    back on purpose carry the identities again). And one when the objects could not be
    checked (the bucket out of reach): where they are is not known, someone must look."""
    items: list[dict[str, Any]] = []
    if verification.get("objects_error"):
        items.append({"kind": "objects_unverified", "error": verification["objects_error"]})
    if restored_rows:
        return items
    scan = verification.get("scan", {})
    reviewed = {r.get("table") for r in review}
    items += [
        {"kind": "trace", "table": h["table"], "column": h["column"], "key": h["key"]}
        for h in scan.get("hits", [])
        if h["table"] not in reviewed
    ]
    if scan.get("skipped"):
        items.append({"kind": "scan_incomplete", "skipped": scan["skipped"]})
    return items


async def finish_soft_delete(deps: EraserDeps, job: store.Job) -> None:
    request = open_request(deps, job)
    verification = await verify(deps, job, request, "soft_delete")
    review = await store.failed_chunks(deps.lethe, job.job_id)
    if verification["rows_remaining"] and not review:
        review.append({"kind": "rows_remaining", "tables": verification["rows_remaining"]})
    review.extend(trace_items(verification, review, job.restored_rows))
    purge_after = datetime.now(UTC) + timedelta(days=job.recovery_window_days)
    if not await store.transition(
        deps.lethe,
        job.job_id,
        ["erasing"],
        "soft_deleted",
        verification=verification,
        purge_after=purge_after,
        needs_review=review,
        soft_deleted_at=datetime.now(UTC),
    ):
        return
    await deps.emit(
        PROGRESS,
        job_event(
            job,
            ErasureSoftDeleted(
                done=job.done,
                total=job.total,
                verification=verification,
                purge_after=purge_after,
                needs_review=review,
            ),
        ),
    )
    if job.recovery_window_days == 0:
        from services.eraser.lifecycle import purge

        await purge(deps, job.job_id)
        return
    # What is hidden, restorable until when, final on which date (the completion follows
    # the purge); review items go to the owners at once.
    await notify(
        deps,
        job,
        request,
        "erasure_hidden",
        {
            "job_type": "erasure",
            "rows": job.done,
            "tables": ", ".join(f"{t}: {n}" for t, n in sorted(job.per_table.items()) if n),
            "restorable_until": purge_after.strftime("%Y-%m-%d %H:%M UTC"),
            "final_on": purge_after.strftime("%Y-%m-%d"),
        },
    )
    if review:
        await notify(
            deps,
            job,
            request,
            "job_needs_review",
            {"job_type": "erasure", "review_count": len(review)},
            audience="owners",
            once="job_needs_review:soft_delete",
        )


async def notify(
    deps: EraserDeps,
    job: store.Job,
    request: SealedRequest | None,
    template: str,
    context: dict[str, Any],
    *,
    audience: Audience | None = None,
    once: str | None = None,
) -> None:
    """A notice about the job, once: to its requester, or to the owners when it has none."""
    await deps.emit(
        NOTIFICATIONS,
        job_notice(
            template,
            actor=ACTOR,
            job_id=job.job_id,
            org_id=job.org_id,
            subject_hash=job.subject_hash,
            to=request.requester_email if request else None,
            context=context,
            status_link=request.status_link if request else None,
            audience=audience,
            once=once or template,
        ),
    )


async def _notify_request(
    env: Envelope, deps: EraserDeps, template: str, context: dict[str, Any]
) -> None:
    """A notice before the job record holds the sealed request (from the request itself)."""
    notice = request_notice(env, template, context, job_type="erasure", actor=ACTOR)
    await deps.emit(NOTIFICATIONS, notice)


async def _outcome(env: Envelope, deps: EraserDeps, payload: Payload, template: str) -> None:
    """A result that is not an error (not found, ambiguous): stated, and the requester told
    (the owners when the job has no requester address)."""
    await deps.emit(PROGRESS, _event(env, payload))
    await _notify_request(env, deps, template, {k: str(v) for k, v in payload.model_dump().items()})


async def fail(env: Envelope, deps: EraserDeps, reason: str) -> None:
    await deps.emit(PROGRESS, _event(env, JobFailed(reason=reason)))
    await _notify_request(env, deps, "job_failed", {"reason": reason})


async def give_up(env: Envelope, deps: EraserDeps, error: str) -> None:
    """Called when retries are exhausted: the job is failed visibly, never left hanging."""
    if env.type == ErasureRequested.event_type and env.job_id is not None:
        await store.set_status(deps.lethe, env.job_id, "failed")
        await fail(env, deps, f"erasure stopped after retries: {error}")


__all__ = ["EraserDeps", "advance", "chunk_failed", "give_up", "plan", "process_chunk"]
