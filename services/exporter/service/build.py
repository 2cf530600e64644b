"""The export use case (ExportRequested): resolve the subject, count, stream the sealed
archive to S3, then mark it ready with its links and announce it.

A restart starts the export again from scratch (the unfinished upload is aborted); an
export is marked ready only after its upload completed, so a truncated file is never handed
out. A cancel recorded meanwhile is seen between batches: the partial upload is aborted and
the export ends `cancelled`, leaving nothing in the bucket.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from services.exporter import domain, store
from services.exporter.service.deps import ExporterDeps
from services.exporter.service.outcomes import cancelled, check_cancel, failed, outcome
from services.exporter.service.stream import ArchiveWriter, Progress
from services.exporter.upload import MultipartUpload, abort
from shared.crypto import new_data_key, wrap_key
from shared.events import Envelope
from shared.events.jobs import ExportRequested
from shared.events.progress import DuplicateIgnored, SubjectAmbiguous, SubjectNotFound
from shared.events.topics import AUDIT, NOTIFICATIONS, PROGRESS
from shared.resolver import Ambiguous, Scope, ScopeError, Subject


async def export(env: Envelope, deps: ExporterDeps) -> None:
    """One platform connection and one read transaction for the whole export: the scope's
    keys are materialized once in it, and every table's rows are read from them."""
    async with deps.platform.acquire() as conn, conn.transaction():
        await _export(env, deps, conn)


async def _export(env: Envelope, deps: ExporterDeps, conn: asyncpg.Connection) -> None:
    req = env.payload_as(ExportRequested)
    assert env.job_id is not None and env.org_id is not None
    existing = await store.get_export(deps.lethe, env.job_id)
    if existing and existing["status"] != "building":
        await deps.emit(AUDIT, domain.event_for(env, DuplicateIgnored(original_type=env.type)))
        return
    if domain.names_no_subject(req):
        await failed(env, deps, "the request names no subject identity")
        return
    subject = await _resolve(env, deps, conn, req)
    if subject is None:
        return
    tables = deps.resolver.tables(subject.scope)
    counts = await store.count_rows(conn, deps.resolver, tables, subject)
    if not sum(counts.values()):
        # Nothing held: said so, and no empty archive is made.
        await outcome(env, deps, SubjectNotFound(scope=req.scope), "job_not_found")
        return
    await _build(env, deps, conn, req, subject, tables, counts)


async def _resolve(
    env: Envelope, deps: ExporterDeps, conn: asyncpg.Connection, req: ExportRequested
) -> Subject | None:
    """The subject's keys, materialized; None when the outcome was already stated."""
    assert env.org_id is not None
    resolver = deps.resolver
    try:
        subject = await resolver.resolve(conn, Scope(env.org_id, domain.identities(req)))
    except Ambiguous as exc:
        await outcome(env, deps, SubjectAmbiguous(reason=str(exc)), "job_ambiguous")
        return None
    except ScopeError as exc:
        await failed(env, deps, str(exc))
        return None
    return await resolver.materialize(conn, subject)


async def _build(
    env: Envelope,
    deps: ExporterDeps,
    conn: asyncpg.Connection,
    req: ExportRequested,
    subject: Subject,
    tables: list[str],
    counts: dict[str, int],
) -> None:
    assert env.job_id is not None and env.org_id is not None
    job_id = env.job_id
    data_key = new_data_key()
    object_key = domain.object_key(env.org_id, job_id)
    wrapped = wrap_key(deps.master_key, data_key, domain.key_context(job_id))
    before = await store.begin(deps.lethe, job_id, env.org_id, object_key, wrapped)
    if before.get("upload_id"):  # an earlier attempt died mid-upload: start again, cleanly
        await abort(deps.s3, deps.bucket, before["object_key"], before["upload_id"])
    formats = domain.formats(req)
    progress = Progress(env, deps, sum(counts.values()) * len(formats))
    if before.get("status") == "cancelled" or before.get("cancel_requested_at"):
        await cancelled(env, deps, progress.done, progress.total)  # before this attempt began
        return

    upload = MultipartUpload(deps.s3, deps.bucket, object_key, deps.part_bytes)
    await upload.start()
    await store.set_upload(deps.lethe, job_id, upload.upload_id)
    writer = ArchiveWriter(conn, deps, subject, job_id, data_key, upload, progress)
    try:
        await writer.write(
            tables, formats, counts, media=req.include_media, subject_hash=env.subject_hash
        )
        await check_cancel(deps, job_id)  # the last moment the file can still go
        await upload.complete()
    except domain.ExportCancelled:
        await upload.abort()  # the parts go with it: nothing is left in the bucket
        await cancelled(env, deps, progress.done, progress.total)
        return
    except BaseException:
        await upload.abort()
        await store.set_upload(deps.lethe, job_id, None)
        raise
    ready = domain.Ready(object_key, upload.size, counts, progress.total, deps.max_downloads)
    await _ready(env, deps, req, ready)


async def _ready(
    env: Envelope, deps: ExporterDeps, req: ExportRequested, ready: domain.Ready
) -> None:
    """Ready, with its links; announced on progress and to the requester (or owners)."""
    assert env.job_id is not None and env.org_id is not None
    links = domain.links(req, env.job_id, env.org_id, deps.hash_key, datetime.now(UTC))
    await store.mark_ready(
        deps.lethe,
        env.job_id,
        size=ready.size,
        rows_per_table=ready.counts,
        expires_at=links.expires,
        tokens=[(t.token_id, t.recipient_hash) for t in links.tokens],
        max_downloads=ready.max_downloads,
    )
    progress, notice = domain.ready_events(env, ready, links, deps.api_url, deps.token_key)
    await deps.emit(PROGRESS, progress)
    await deps.emit(NOTIFICATIONS, notice)
