"""OpenDSR request statuses (section 8): every Lethe job status as one of the four, and
which progress events move a job (for callbacks)."""

from __future__ import annotations

from typing import Any, Literal

from shared import lifecycle

RequestStatus = Literal["pending", "in_progress", "completed", "cancelled"]

# Every Lethe job status -> the OpenDSR one (section 8.2 has four). Erasures complete when
# purged, not when merely hidden for the recovery window. Every final Lethe state is final
# for the controller too (a controller polls until then): `completed_with_errors` (purged,
# some items left for people to review) and `not_found` (nothing held: the request is
# answered) complete; `failed` and `ambiguous` (identities of more than one person) did
# nothing and will not go on by themselves, so they read as cancelled. `processor_status`
# in bodies and callbacks says which it is. A restore undoes the request: cancelled.
REQUEST_STATUS: dict[str, RequestStatus] = {
    "awaiting_approval": "pending",  # held for an admin's approval
    "pending": "pending",
    "running": "in_progress",
    "soft_deleted": "in_progress",
    "purging": "in_progress",
    "awaiting_tasks": "in_progress",  # manual tasks open (docs/datamap.md, Connectors)
    "completed": "completed",
    "completed_with_errors": "completed",
    "ready": "completed",
    "expired": "completed",
    "not_found": "completed",
    "failed": "cancelled",
    "ambiguous": "cancelled",
    "cancelled": "cancelled",
    "restored": "cancelled",
    "denied": "cancelled",  # an admin denied it: nothing done
}
assert set(REQUEST_STATUS) == set(lifecycle.STATES), "every job status needs an OpenDSR one"
assert all(REQUEST_STATUS[s] in ("completed", "cancelled") for s in lifecycle.FINAL)


def request_status(job_status: str) -> RequestStatus:
    return REQUEST_STATUS[job_status]


RECEIVED = "OpenDSRRequestReceived"  # the receipt: a `pending` callback


def status_after(event_type: str, payload: dict[str, Any]) -> str | None:
    """The job status a progress event moves a job to; None when it moves nothing."""
    if event_type == RECEIVED:
        return "pending"
    move = lifecycle.move_for(event_type, payload)
    if move is None:
        return None
    return move.to or lifecycle.reported_status(payload)


# Events that report within a state: the per-batch ones, and a PurgeStarted sent again with a
# review item while its purge waits (the job stays purging).
WITHIN_STATE = ("BatchErased", "BatchExported")


def status_changes(event_type: str, payload: dict[str, Any] | None = None) -> bool:
    """Progress events that change a job's state (not the per-batch ones), and the receipt."""
    if event_type == RECEIVED:
        return True
    if event_type == "PurgeStarted" and (payload or {}).get("needs_review"):
        return False
    return lifecycle.PROGRESS.get(event_type) is not None and event_type not in WITHIN_STATE
