"""Export events: progress and readiness on `lethe.progress.v1`, link use on the audit topic."""

from __future__ import annotations

from datetime import datetime

from shared.events.envelope import Payload, event, pii


@event
class BatchExported(Payload):
    event_type = "BatchExported"
    table: str
    rows: int
    done: int
    total: int
    bytes_written: int
    rows_per_second: float
    eta_seconds: float | None


@event
class ExportReady(Payload):
    event_type = "ExportReady"
    done: int
    total: int
    object_key: str
    size_bytes: int
    rows_per_table: dict[str, int]
    expires_at: datetime
    # The requester's emailed link is never here (only their email gets it). `results_url`
    # is the controller's own link, only when the request asked for one (`results_link`,
    # OpenDSR section 8.3): a bearer link, so kept out of audit rows and the jobs API.
    results_url: str | None = pii(default=None)


@event
class ExportExpired(Payload):
    """The sweep deleted an expired export: its object and its key are gone."""

    event_type = "ExportExpired"
    object_key: str


@event
class DownloadAttempted(Payload):
    """Every use of a link, granted or not (who, when, from where, why refused)."""

    event_type = "DownloadAttempted"
    granted: bool
    reason: str
    token_id: str | None = None
    client: str | None = pii(default=None)


@event
class LinkRevoked(Payload):
    event_type = "LinkRevoked"
    token_id: str | None = None
