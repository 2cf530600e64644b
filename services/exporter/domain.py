"""The exporter's decisions, without I/O: what an export is called, which formats and links
it gets, what its progress says, and the events and notices it sends.

The I/O that carries them out (the databases, S3, Kafka) is in `services/exporter/service/`;
the SQL in `store.py`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.exporter.archive import safe_member
from shared.events import Actor, Envelope, Payload, make_event
from shared.events.exports import BatchExported, ExportExpired, ExportReady
from shared.events.jobs import ExportRequested
from shared.events.progress import CommandRefused, JobCancelled
from shared.hashing import subject_hash
from shared.notices import job_notice, request_notice
from shared.tokens import DownloadToken, sign

ACTOR = Actor(kind="service", id="exporter")


class ExportCancelled(Exception):
    """A cancel was recorded for the export being built: stop at this batch."""


def event_for(src: Envelope, payload: Payload) -> Envelope:
    return make_event(
        payload, actor=ACTOR, job_id=src.job_id, org_id=src.org_id, subject_hash=src.subject_hash
    )


def key_context(job_id: uuid.UUID) -> bytes:
    return b"export:" + job_id.bytes


def object_key(org_id: str, job_id: uuid.UUID) -> str:
    """A fresh name per attempt: a restarted export never writes over the one it replaces."""
    return f"exports/{org_id}/{job_id}/{uuid.uuid4().hex}.zip.sealed"


def media_member(key: str) -> str:
    """Where an S3 object the subject's rows point at goes in the archive (a key that would
    climb out of media/ gets a safe name: archive.safe_member)."""
    return safe_member("media", key)


def formats(req: ExportRequested) -> tuple[str, ...]:
    return ("json", "csv") if req.format == "both" else (req.format,)


def identities(req: ExportRequested) -> dict[str, str] | None:
    """The subject's identities for a subject export; None for an organisation export."""
    return req.subject.identities() if req.scope == "subject" and req.subject else None


def names_no_subject(req: ExportRequested) -> bool:
    """A subject export that names nobody: failed, with the reason."""
    return req.scope == "subject" and not identities(req)


def batch_exported(
    table: str, rows: int, done: int, total: int, bytes_written: int, elapsed: float
) -> BatchExported:
    """Progress after a batch: rate and ETA from the rows done so far."""
    elapsed = max(elapsed, 1e-6)
    rate = done / elapsed
    return BatchExported(
        table=table,
        rows=rows,
        done=done,
        total=total,
        bytes_written=bytes_written,
        rows_per_second=round(rate, 1),
        eta_seconds=round((total - done) / rate, 1) if rate > 0 else None,
    )


def rate_limit_wait(done: int, elapsed: float, rows_per_second: float) -> float:
    """Seconds to wait so the export stays under `rows_per_second` (0: no limit)."""
    if rows_per_second <= 0:
        return 0.0
    return max(done / rows_per_second - max(elapsed, 1e-6), 0.0)


def cancel_answer(status: str | None) -> Payload | None:
    """What a CancelExport gets, from the export's status when it arrived (None: there was no
    export yet, now cancelled). None: nothing to say yet (the worker stops at its next
    batch and says so)."""
    if status is None:
        return JobCancelled(done=0, total=0)
    if status == "building":
        return None
    reason = f"the export is {status}: there is nothing left to stop"
    if status == "ready":
        reason = "the export is ready: revoke its download link instead"
    return CommandRefused(command="CancelExport", reason=reason)


@dataclass(frozen=True)
class Links:
    """The download tokens of a ready export: the requester's, and the controller's own
    (OpenDSR results_url) when asked for, so the controller fetching the results does not
    use up the subject's emailed link."""

    expires: datetime
    requester: DownloadToken
    controller: DownloadToken | None

    @property
    def tokens(self) -> list[DownloadToken]:
        return [self.requester] + ([self.controller] if self.controller else [])


def links(
    req: ExportRequested, job_id: uuid.UUID, org_id: str, hash_key: bytes, now: datetime
) -> Links:
    expires = now + timedelta(hours=req.link_ttl_hours)
    recipient = req.requester_email or f"org:{org_id}"

    def token(who: str) -> DownloadToken:
        return DownloadToken(
            uuid.uuid4(), job_id, subject_hash(hash_key, org_id, {"email": who}), expires
        )

    controller = token(f"controller:{org_id}") if req.results_link else None
    return Links(expires, token(recipient), controller)


def download_link(api_url: str, token_key: bytes, job_id: uuid.UUID, token: DownloadToken) -> str:
    """A link that works on its own (intake's `/v1/exports/{id}/download`, no API key)."""
    return f"{api_url}/v1/exports/{job_id}/download?token={sign(token_key, token)}"


@dataclass(frozen=True)
class Ready:
    """A finished upload: what the ready event and notice say."""

    object_key: str
    size: int
    counts: dict[str, int]
    total: int  # rows times formats: the progress total
    max_downloads: int


def ready_events(
    env: Envelope, ready: Ready, links: Links, api_url: str, token_key: bytes
) -> tuple[Envelope, Envelope]:
    """ExportReady (progress) and the export_ready notice: to the requester, or without one
    to the owner contacts (the link is made out to the org)."""
    req = env.payload_as(ExportRequested)
    assert env.job_id is not None
    job_id = env.job_id
    controller = links.controller
    progress = event_for(
        env,
        ExportReady(
            done=ready.total,
            total=ready.total,
            object_key=ready.object_key,
            size_bytes=ready.size,
            rows_per_table=ready.counts,
            expires_at=links.expires,
            results_url=(
                download_link(api_url, token_key, job_id, controller) if controller else None
            ),
        ),
    )
    notice = job_notice(
        "export_ready",
        actor=ACTOR,
        job_id=job_id,
        org_id=env.org_id,
        subject_hash=env.subject_hash,
        to=req.requester_email,
        context={
            "job_type": "export",
            "rows": sum(ready.counts.values()),
            "link": download_link(api_url, token_key, job_id, links.requester),
            "expires_at": links.expires.isoformat(),
            "max_downloads": ready.max_downloads,
        },
        status_link=req.status_link,
    )
    return progress, notice


def notice(env: Envelope, template: str, context: dict[str, Any]) -> Envelope:
    """A notice sent once per job: to the requester, or the owner contacts without one."""
    return request_notice(env, template, context, job_type="export", actor=ACTOR)


def outcome_context(payload: Payload) -> dict[str, str]:
    """A result that is not an error (not found, ambiguous), as the notice's context."""
    return {k: str(v) for k, v in payload.model_dump().items()}


def expired_event(job_id: uuid.UUID, org_id: str, key: str) -> Envelope:
    return make_event(ExportExpired(object_key=key), actor=ACTOR, job_id=job_id, org_id=org_id)
