"""`lethe.jobs.erase.v1` and `lethe.jobs.export.v1`: a recorded job, ready for its worker."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from shared.events.envelope import Payload, event, pii


class Subject(Payload):
    email: str | None = None
    user_id: str | None = None
    phone: str | None = None
    external_id: str | None = None
    # Hashed identities, as OpenDSR controllers send them: hex digest of the trimmed,
    # lowercased email. The resolver hashes the column in SQL to match them.
    email_sha256: str | None = None
    email_sha1: str | None = None
    email_md5: str | None = None

    def identities(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v}


@event
class ErasureRequested(Payload):
    event_type = "ErasureRequested"
    scope: Literal["subject", "organisation"]
    subject: Subject | None = pii(default=None)
    requester_email: str | None = pii(default=None)
    regulation: str
    due_at: datetime
    recovery_window_days: int
    channel: Literal["http", "kafka", "privacy_centre"]
    # False: the platform must keep its S3 objects; rows go, objects stay (recorded).
    delete_media: bool = True
    # The data subject's status page (intake's /status/{job}/{mac}): put in the mails about
    # the job. A bearer link, so it never reaches the audit trail.
    status_link: str | None = pii(default=None)


@event
class ExportRequested(Payload):
    event_type = "ExportRequested"
    scope: Literal["subject", "organisation"]
    subject: Subject | None = pii(default=None)
    requester_email: str | None = pii(default=None)
    regulation: str
    due_at: datetime
    format: Literal["json", "csv", "both"] = "both"
    include_media: bool = False
    link_ttl_hours: int = 24
    channel: Literal["http", "kafka", "privacy_centre"]
    status_link: str | None = pii(default=None)  # as ErasureRequested.status_link
    # OpenDSR access/portability: a second bearer link, the controller's (its own download
    # count), returned in `ExportReady.results_url` for the status body and callback.
    results_link: bool = False


# --- Commands to the eraser on `lethe.jobs.erase.v1` (keyed by job: ordered with the job) --


class Item(Payload):
    table: str
    key: str


@event
class CancelErasure(Payload):
    event_type = "CancelErasure"
    reason: str | None = None


@event
class RestoreErasure(Payload):
    """Restore the whole job (items is None) or just the listed rows."""

    event_type = "RestoreErasure"
    items: list[Item] | None = None
    reason: str | None = None


# --- Commands to the exporter on `lethe.jobs.export.v1` ------------------------------------


@event
class CancelExport(Payload):
    """Stop the export between batches: its partial upload is aborted, nothing is kept.
    Refused (CommandRefused) once the export is ready, expired or ended otherwise."""

    event_type = "CancelExport"
    reason: str | None = None


# --- Work items on `lethe.erase.tasks.v1` (keyed by job and chunk: spread over partitions) --


@event
class EraseChunk(Payload):
    """Soft-delete one planned chunk (table + keys recorded in the eraser's checkpoints)."""

    event_type = "EraseChunk"
    chunk_no: int
    wave: int
    table: str
