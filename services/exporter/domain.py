"""Export (skeleton): the subject's rows per table, as JSON in a zip, stored in S3.

The full exporter (streaming, CSV, encryption, expiring links) is its own issue; this one
writes the same data the eraser would remove, so the wiring is real end to end.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.datamap import DataMap
from shared.events import Actor, Envelope, Payload, make_event
from shared.events.jobs import ExportRequested
from shared.events.notifications import SendEmail
from shared.events.progress import JobCompleted, JobFailed
from shared.events.topics import NOTIFICATIONS, PROGRESS
from shared.platform import AmbiguousSubject, q, resolve

ACTOR = Actor(kind="service", id="exporter")
Emit = Callable[[str, Envelope], Awaitable[None]]


@dataclass
class ExporterDeps:
    platform: asyncpg.Pool
    s3: Any
    bucket: str
    datamap: DataMap
    emit: Emit


def event_for(src: Envelope, payload: Payload) -> Envelope:
    return make_event(
        payload, actor=ACTOR, job_id=src.job_id, org_id=src.org_id, subject_hash=src.subject_hash
    )


async def export(env: Envelope, deps: ExporterDeps) -> None:
    req = env.payload_as(ExportRequested)
    assert env.job_id is not None and env.org_id is not None
    identities = req.subject.identities() if req.scope == "subject" and req.subject else None
    buf = io.BytesIO()
    counts: dict[str, int] = {}
    async with deps.platform.acquire() as conn:
        try:
            keys = await resolve(conn, deps.datamap, env.org_id, identities)
        except AmbiguousSubject as exc:
            await deps.emit(PROGRESS, event_for(env, JobFailed(reason=str(exc))))
            return
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for table, pks in keys.items():
                pk = deps.datamap.tables[table].primary_key
                rows = await conn.fetch(
                    f"SELECT * FROM {q(table)} WHERE {q(pk)} = ANY($1) ORDER BY {q(pk)}", pks
                )
                counts[table] = len(rows)
                zf.writestr(f"{table}.json", json.dumps([dict(r) for r in rows], default=str))
    key = f"exports/{env.org_id}/{env.job_id}.zip"
    await deps.s3.put_object(Bucket=deps.bucket, Key=key, Body=buf.getvalue())
    total = sum(counts.values())
    await deps.emit(
        PROGRESS,
        event_for(
            env,
            JobCompleted(
                done=total,
                total=total,
                verification={"object_key": key, "rows_per_table": counts},
            ),
        ),
    )
    if req.requester_email:
        await deps.emit(
            NOTIFICATIONS,
            event_for(
                env,
                SendEmail(
                    template="job_completed",
                    to=req.requester_email,
                    context={"job_id": str(env.job_id), "job_type": "export", "rows": total},
                ),
            ),
        )
