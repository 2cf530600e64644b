"""`lethe.requests.v1` (upstream commands) and `lethe.requests.rejected.v1`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.events.envelope import Payload, event, pii


@event
class RequestRejected(Payload):
    event_type = "RequestRejected"
    reason: str
    errors: list[str] = []
    original_key: str | None = None
    request_id: str | None = None


# --- Intake's own audit events ----------------------------------------------------------


@event
class CancelRequested(Payload):
    event_type = "CancelRequested"
    reason: str | None = None


@event
class RestoreRequested(Payload):
    event_type = "RestoreRequested"
    items: list[dict[str, str]] | None = None
    reason: str | None = None


@event
class DeadlineExtended(Payload):
    event_type = "DeadlineExtended"
    regulation: str
    due_at: datetime
    extended_due_at: datetime
    reason: str


@event
class OrgDelegationChanged(Payload):
    """An owner let admins submit subject-level requests, or took that back."""

    event_type = "OrgDelegationChanged"
    setting: str = "admins_submit_subject_requests"
    old: bool
    new: bool


@event
class AuthFailed(Payload):
    """A refused API key or role: who tried what, never the key itself."""

    event_type = "AuthFailed"
    reason: str
    method: str
    path: str
    client: str | None = pii(default=None)


@event
class AuthFailuresCounted(Payload):
    """Requests refused without a known caller (no key, an unknown or revoked one), counted
    per source and window: one event per (source, window), never one per request. `source`
    is the client address (`*`: sources past the per-window cap), kept out of audit rows;
    `source_hash` tells sources apart there."""

    event_type = "AuthFailuresCounted"
    source: str = pii()
    source_hash: str
    window_start: datetime
    window_seconds: int
    count: int
    reasons: dict[str, int]


class SubmitRequest(BaseModel):
    """What upstream services publish on `lethe.requests.v1` (key: the org id). `request` has
    the fields of `POST /v1/requests`; a message that is not valid gets a RequestRejected."""

    model_config = ConfigDict(extra="forbid")
    org_id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=200, description="The publishing service")
    request: dict[str, Any]


# --- Approvals and duplicate requests (issue 17) -----------------------------------------


@event
class OrgApprovalChanged(Payload):
    """An owner chose the channels whose new jobs wait for an admin's approval."""

    event_type = "OrgApprovalChanged"
    old: list[str]
    new: list[str]


@event
class ApprovalRequired(Payload):
    """A new job waits for an admin's approval (its org asks for one on this channel): its
    request is not sent to the worker yet; the legal deadline runs."""

    event_type = "ApprovalRequired"
    channel: str
    due_at: datetime


@event
class RequestApproved(Payload):
    """An admin approved a held job: its request goes to the worker now."""

    event_type = "RequestApproved"
    reason: str | None = None


@event
class RequestDenied(Payload):
    """An admin denied a held job: it ends `denied`, nothing done (on the progress topic, so
    an OpenDSR controller is called back)."""

    event_type = "RequestDenied"
    reason: str


@event
class RequestLinked(Payload):
    """A request for a subject that already had an open job of the same type was linked to
    that job instead of running twice (`job_id`: the open job)."""

    event_type = "RequestLinked"
    link_id: str
    channel: str
    status: str  # the open job's status when linked
