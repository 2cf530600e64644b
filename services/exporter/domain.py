"""Export: the subject's rows, streamed from server-side cursors into a zip, sealed in
authenticated chunks with a per-export key, uploaded by multipart; then a signed link.

Memory stays flat: one cursor batch, the zip's pending bytes, one upload part. A restart
starts the export again from scratch (the unfinished upload is aborted); an export is marked
ready only after its upload completed, so a truncated file is never handed out.

A cancel (CancelExport, taken by its own consumer group so it never waits behind a running
export) is recorded on the export; the export checks between batches, aborts its partial
upload and ends `cancelled`, leaving nothing in the bucket. Once ready it is refused.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from services.exporter import store
from services.exporter.archive import CsvTable, Entry, JsonTable, Sink, manifest, safe_member
from services.exporter.upload import MultipartUpload, abort
from shared.crypto import new_data_key, wrap_key
from shared.datamap import DataMap, LiveSchema
from shared.events import Actor, Envelope, Payload, make_event
from shared.events.exports import BatchExported, ExportExpired, ExportReady
from shared.events.jobs import CancelExport, ExportRequested
from shared.events.progress import (
    CommandRefused,
    DuplicateIgnored,
    JobCancelled,
    JobFailed,
    SubjectAmbiguous,
    SubjectNotFound,
)
from shared.events.topics import AUDIT, NOTIFICATIONS, PROGRESS
from shared.hashing import subject_hash
from shared.notices import job_notice, request_notice
from shared.resolver import Ambiguous, Resolver, Scope, ScopeError, Subject, q
from shared.sealed_stream import SealWriter
from shared.tokens import DownloadToken, sign

ACTOR = Actor(kind="service", id="exporter")
Emit = Callable[[str, Envelope], Awaitable[None]]


@dataclass
class ExporterDeps:
    lethe: asyncpg.Pool
    platform: asyncpg.Pool
    s3: Any
    bucket: str
    media_bucket: str
    datamap: DataMap
    live: LiveSchema
    emit: Emit
    master_key: bytes
    token_key: bytes
    hash_key: bytes
    api_url: str
    part_bytes: int = 8 * 1024 * 1024
    batch_rows: int = 2000
    rate_limit_rows: float = 0.0
    max_downloads: int = 5
    clock: Callable[[], float] = field(default=time.monotonic)

    @property
    def resolver(self) -> Resolver:
        return Resolver(self.datamap, self.live)


def event_for(src: Envelope, payload: Payload) -> Envelope:
    return make_event(
        payload, actor=ACTOR, job_id=src.job_id, org_id=src.org_id, subject_hash=src.subject_hash
    )


def key_context(job_id: uuid.UUID) -> bytes:
    return b"export:" + job_id.bytes


class ExportCancelled(Exception):
    """A cancel was recorded for the export being built: stop at this batch."""


async def _check_cancel(deps: ExporterDeps, job_id: uuid.UUID | None) -> None:
    if job_id is not None and await store.cancel_requested(deps.lethe, job_id):
        raise ExportCancelled


class _Progress:
    def __init__(self, env: Envelope, deps: ExporterDeps, total: int) -> None:
        self.env, self.deps, self.total = env, deps, total
        self.done = 0
        self.started = deps.clock()

    async def add(self, table: str, rows: int, bytes_written: int) -> None:
        self.done += rows
        elapsed = max(self.deps.clock() - self.started, 1e-6)
        rate = self.done / elapsed
        await self.deps.emit(
            PROGRESS,
            event_for(
                self.env,
                BatchExported(
                    table=table,
                    rows=rows,
                    done=self.done,
                    total=self.total,
                    bytes_written=bytes_written,
                    rows_per_second=round(rate, 1),
                    eta_seconds=round((self.total - self.done) / rate, 1) if rate > 0 else None,
                ),
            ),
        )
        if self.deps.rate_limit_rows > 0:
            wait = self.done / self.deps.rate_limit_rows - elapsed
            if wait > 0:
                await asyncio.sleep(wait)
        await _check_cancel(self.deps, self.env.job_id)  # between batches


async def export(env: Envelope, deps: ExporterDeps) -> None:
    """One platform connection and one read transaction for the whole export: the scope's
    keys are materialized once in it, and every table's rows are read from them."""
    async with deps.platform.acquire() as conn, conn.transaction():
        await _export(env, deps, conn)


async def _export(env: Envelope, deps: ExporterDeps, conn: asyncpg.Connection) -> None:
    req = env.payload_as(ExportRequested)
    assert env.job_id is not None and env.org_id is not None
    job_id, org_id = env.job_id, env.org_id
    existing = await store.get_export(deps.lethe, job_id)
    if existing and existing["status"] != "building":
        await deps.emit(AUDIT, event_for(env, DuplicateIgnored(original_type=env.type)))
        return
    identities = req.subject.identities() if req.scope == "subject" and req.subject else None
    if req.scope == "subject" and not identities:
        await _failed(env, deps, "the request names no subject identity")
        return
    resolver = deps.resolver
    try:
        subject = await resolver.resolve(conn, Scope(org_id, identities))
    except Ambiguous as exc:
        await _outcome(env, deps, SubjectAmbiguous(reason=str(exc)), "job_ambiguous")
        return
    except ScopeError as exc:
        await _failed(env, deps, str(exc))
        return
    subject = await resolver.materialize(conn, subject)
    tables = resolver.tables(subject.scope)
    counts = {}
    for t in tables:
        sql, args = resolver.count_sql(t, subject)
        counts[t] = int(await conn.fetchval(sql, *args))
    if not sum(counts.values()):
        # Nothing held: said so, and no empty archive is made.
        await _outcome(env, deps, SubjectNotFound(scope=req.scope), "job_not_found")
        return

    data_key = new_data_key()
    object_key = f"exports/{org_id}/{job_id}/{uuid.uuid4().hex}.zip.sealed"
    before = await store.begin(
        deps.lethe,
        job_id,
        org_id,
        object_key,
        wrap_key(deps.master_key, data_key, key_context(job_id)),
    )
    if before.get("upload_id"):  # an earlier attempt died mid-upload: start again, cleanly
        await abort(deps.s3, deps.bucket, before["object_key"], before["upload_id"])
    formats = ("json", "csv") if req.format == "both" else (req.format,)
    progress = _Progress(env, deps, sum(counts.values()) * len(formats))
    if before.get("status") == "cancelled" or before.get("cancel_requested_at"):
        await _cancelled(env, deps, progress)  # cancelled before this attempt began
        return

    upload = MultipartUpload(deps.s3, deps.bucket, object_key, deps.part_bytes)
    await upload.start()
    await store.set_upload(deps.lethe, job_id, upload.upload_id)
    try:
        sink, sealer = Sink(), SealWriter(data_key, job_id.bytes)

        async def drain() -> None:
            data = sink.take()
            if data:
                await upload.write(sealer.feed(data))

        entries: list[Entry] = []
        with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as zf:
            for table in tables:
                sql, args = resolver.rows_sql(table, subject)
                for fmt in formats:
                    entries.append(
                        await _write_table(
                            conn, zf, table, fmt, sql, args, deps, drain, progress, upload
                        )
                    )
            if req.include_media:
                await _write_media(conn, zf, tables, subject, deps, drain, job_id)
            generated = datetime.now(UTC)
            with zf.open("manifest.json", "w") as fh:
                fh.write(manifest(str(job_id), env.subject_hash, generated, entries, counts))
        await drain()
        await upload.write(sealer.close())
        await _check_cancel(deps, job_id)  # the last moment the file can still go
        await upload.complete()
    except ExportCancelled:
        await upload.abort()  # the parts go with it: nothing is left in the bucket
        await _cancelled(env, deps, progress)
        return
    except BaseException:
        await upload.abort()
        await store.set_upload(deps.lethe, job_id, None)
        raise

    expires = datetime.now(UTC) + timedelta(hours=req.link_ttl_hours)
    recipient = req.requester_email or f"org:{org_id}"
    token = DownloadToken(
        uuid.uuid4(), job_id, subject_hash(deps.hash_key, {"email": recipient}), expires
    )
    tokens = [token]
    # The controller's own link (OpenDSR results_url): its own count of downloads, so the
    # controller fetching the results does not use up the subject's emailed link.
    controller = (
        DownloadToken(
            uuid.uuid4(),
            job_id,
            subject_hash(deps.hash_key, {"email": f"controller:{org_id}"}),
            expires,
        )
        if req.results_link
        else None
    )
    if controller is not None:
        tokens.append(controller)
    await store.mark_ready(
        deps.lethe,
        job_id,
        size=upload.size,
        rows_per_table=counts,
        expires_at=expires,
        tokens=[(t.token_id, t.recipient_hash) for t in tokens],
        max_downloads=deps.max_downloads,
    )
    total = sum(counts.values())
    await deps.emit(
        PROGRESS,
        event_for(
            env,
            ExportReady(
                done=progress.total,
                total=progress.total,
                object_key=object_key,
                size_bytes=upload.size,
                rows_per_table=counts,
                expires_at=expires,
                results_url=download_link(deps, job_id, controller) if controller else None,
            ),
        ),
    )
    # To the requester; without one, to the owner contacts (the link is made out to the org).
    link = download_link(deps, job_id, token)
    await deps.emit(
        NOTIFICATIONS,
        job_notice(
            "export_ready",
            actor=ACTOR,
            job_id=job_id,
            org_id=org_id,
            subject_hash=env.subject_hash,
            to=req.requester_email,
            context={
                "job_type": "export",
                "rows": total,
                "link": link,
                "expires_at": expires.isoformat(),
                "max_downloads": deps.max_downloads,
            },
            status_link=req.status_link,
        ),
    )


def download_link(deps: ExporterDeps, job_id: uuid.UUID, token: DownloadToken) -> str:
    """A link that works on its own (intake's `/v1/exports/{id}/download`, no API key)."""
    return f"{deps.api_url}/v1/exports/{job_id}/download?token={sign(deps.token_key, token)}"


async def _write_table(
    conn: asyncpg.Connection,
    zf: zipfile.ZipFile,
    table: str,
    fmt: str,
    sql: str,
    args: list[Any],
    deps: ExporterDeps,
    drain: Callable[[], Awaitable[None]],
    progress: _Progress,
    upload: MultipartUpload,
) -> Entry:
    """One table in one format, from a server-side cursor, drained after every batch."""
    async with conn.transaction():
        stmt = await conn.prepare(sql)
        columns = [(a.name, a.type.name) for a in stmt.get_attributes()]
        entry: JsonTable | CsvTable = (
            JsonTable(zf, table, columns) if fmt == "json" else CsvTable(zf, table, columns)
        )
        cursor = await stmt.cursor(*args)
        try:
            while batch := await cursor.fetch(deps.batch_rows):
                entry.add(batch)
                await drain()
                await progress.add(table, len(batch), upload.size)
        finally:
            entry.close()  # on a cancel too: the zip cannot be closed with an entry open
        await drain()
    return entry


async def _write_media(
    conn: asyncpg.Connection,
    zf: zipfile.ZipFile,
    tables: list[str],
    subject: Subject,
    deps: ExporterDeps,
    drain: Callable[[], Awaitable[None]],
    job_id: uuid.UUID,
) -> None:
    """The S3 objects the subject's rows point at, under media/, streamed in pieces."""
    for table in tables:
        t = deps.datamap.tables[table]
        if t.object_key_column is None:
            continue
        keys, args = deps.resolver.keys_sql(table, subject)
        pk = ", ".join(f"x.{q(c)}" for c in t.pk_columns)
        sql = (
            f"SELECT x.{q(t.object_key_column)} FROM {q(table)} x WHERE ({pk}) IN "
            f"({keys}) AND x.{q(t.object_key_column)} IS NOT NULL"
        )
        async with conn.transaction():
            async for rec in conn.cursor(sql, *args, prefetch=500):
                await _check_cancel(deps, job_id)
                key = rec[0]
                obj = await deps.s3.get_object(Bucket=deps.media_bucket, Key=key)
                with zf.open(safe_member("media", key), "w", force_zip64=True) as fh:
                    async for piece in obj["Body"].iter_chunks(1 << 20):
                        fh.write(piece)
                        await drain()


async def _notify(
    env: Envelope, deps: ExporterDeps, template: str, context: dict[str, Any]
) -> None:
    """A notice sent once per job: to the requester, or the owner contacts without one."""
    notice = request_notice(env, template, context, job_type="export", actor=ACTOR)
    await deps.emit(NOTIFICATIONS, notice)


async def _outcome(env: Envelope, deps: ExporterDeps, payload: Payload, template: str) -> None:
    """A result that is not an error (not found, ambiguous): stated, and the requester told."""
    await deps.emit(PROGRESS, event_for(env, payload))
    await _notify(env, deps, template, {k: str(v) for k, v in payload.model_dump().items()})


async def _failed(env: Envelope, deps: ExporterDeps, reason: str) -> None:
    if env.job_id is not None:
        await store.mark_failed(deps.lethe, env.job_id)
    await deps.emit(PROGRESS, event_for(env, JobFailed(reason=reason)))
    await _notify(env, deps, "job_failed", {"reason": reason})


async def fail(env: Envelope, deps: ExporterDeps, error: str) -> None:
    """Retries exhausted: the export fails visibly, and the requester (or owners) are told."""
    if env.type == ExportRequested.event_type:
        await _failed(env, deps, f"export failed: {error}")


async def _cancelled(env: Envelope, deps: ExporterDeps, progress: _Progress) -> None:
    assert env.job_id is not None
    if await store.mark_cancelled(deps.lethe, env.job_id):
        await deps.emit(
            PROGRESS, event_for(env, JobCancelled(done=progress.done, total=progress.total))
        )


async def cancel(env: Envelope, deps: ExporterDeps) -> None:
    """CancelExport: recorded for the worker (it stops at its next batch), cancelled at once
    when the export has not started, refused when it is ready, expired or ended."""
    env.payload_as(CancelExport)
    assert env.job_id is not None and env.org_id is not None
    status = await store.request_cancel(deps.lethe, env.job_id, env.org_id)
    if status is None:
        await deps.emit(PROGRESS, event_for(env, JobCancelled(done=0, total=0)))
    elif status != "building":
        reason = f"the export is {status}: there is nothing left to stop"
        if status == "ready":
            reason = "the export is ready: revoke its download link instead"
        await deps.emit(
            PROGRESS, event_for(env, CommandRefused(command="CancelExport", reason=reason))
        )


async def sweep_expired(deps: ExporterDeps, now: datetime) -> int:
    """Delete expired exports: the object first, then the key; each one audited."""
    swept = 0
    for row in await store.claim_expired(deps.lethe, now):
        await deps.s3.delete_object(Bucket=deps.bucket, Key=row["object_key"])
        await store.mark_expired(deps.lethe, row["job_id"])
        await deps.emit(
            PROGRESS,
            make_event(
                ExportExpired(object_key=row["object_key"]),
                actor=ACTOR,
                job_id=row["job_id"],
                org_id=row["org_id"],
            ),
        )
        swept += 1
    return swept
