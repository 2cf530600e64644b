"""`lethe.progress.v1`: what workers report about a job; intake and dashboards read it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from shared.events.envelope import Payload, event


@event
class ErasurePlanned(Payload):
    event_type = "ErasurePlanned"
    total: int
    per_table: dict[str, int]


@event
class BatchErased(Payload):
    event_type = "BatchErased"
    table: str
    rows: int
    objects: int
    done: int
    total: int
    rows_per_second: float
    eta_seconds: float | None
    phase: str = "soft_delete"


@event
class SubjectHidden(Payload):
    """The subject's own row is hidden (the data map's `hide` step, e.g. the account disabled),
    before the rest of the erasure is planned; held for restore like any chunk. No state
    change: what the subject and the platform see first."""

    event_type = "SubjectHidden"
    table: str
    rows: int
    hidden_at: datetime


@event
class JobCompleted(Payload):
    event_type = "JobCompleted"
    done: int
    total: int
    verification: dict[str, Any]
    needs_review: list[dict[str, Any]] = []
    # Erasures: of the `done` rows hidden, how many were purged and how many were restored on
    # request (item by item) before the purge. None for other job types.
    purged_rows: int | None = None
    restored_rows: int | None = None
    # The eraser's report of a purge while the job's manual tasks may be open: the platform
    # part is done and verified, the job is not. Intake completes the job (and sends the
    # JobCompleted without this flag, and the mail) once every task is done or waived.
    awaiting_tasks: bool = False


@event
class JobFailed(Payload):
    event_type = "JobFailed"
    reason: str


@event
class DuplicateIgnored(Payload):
    """A redelivered command whose effect already happened (recorded, never re-applied)."""

    event_type = "DuplicateIgnored"
    original_type: str


# --- Lifecycle of an erasure after the soft delete (see ARCHITECTURE.md, issue 4) -------
# Intake maps these onto job states; the eraser emits them. Fields may grow (additively).


@event
class ErasureSoftDeleted(Payload):
    """Every row is hidden and held (encrypted) for the recovery window."""

    event_type = "ErasureSoftDeleted"
    done: int
    total: int
    verification: dict[str, Any]
    purge_after: datetime
    needs_review: list[dict[str, Any]] = []


@event
class PurgeStarted(Payload):
    """The window ended and the purge began; sent again with `needs_review` when a pass could
    not finish (S3 out of reach): the job shows why it is not purged yet."""

    event_type = "PurgeStarted"
    needs_review: list[dict[str, Any]] = []


@event
class JobCancelled(Payload):
    """Stopped between batches; what was done stays done and restorable."""

    event_type = "JobCancelled"
    done: int
    total: int


@event
class CancelledErasurePurged(Payload):
    """What a cancelled erasure had hidden is purged at the end of its window; the job
    stays cancelled (it was not carried out). On the audit topic only."""

    event_type = "CancelledErasurePurged"
    purged_rows: int
    verification: dict[str, Any]
    needs_review: list[dict[str, Any]] = []


@event
class JobRestored(Payload):
    """Rows put back from the restoration log (the whole job, or the listed items).

    `fully_restored`: nothing is held any more, the job ends `restored` (terminal: never
    purged, never completed). False: some rows are still held (items not asked for, or rows
    that could not come back); they are purged when the recovery window ends. None (older
    events): read as `whole_job`.
    """

    event_type = "JobRestored"
    rows: int
    objects: int
    whole_job: bool
    needs_review: list[dict[str, Any]] = []
    fully_restored: bool | None = None


@event
class CommandRefused(Payload):
    """A cancel/restore the worker could not apply in the job's current state."""

    event_type = "CommandRefused"
    command: str
    reason: str


# --- Outcomes that are results, not errors (issue 12) ------------------------------------


@event
class SubjectNotFound(Payload):
    """Nothing is held on the subject (or the organisation): nothing to erase or export."""

    event_type = "SubjectNotFound"
    scope: str = "subject"


@event
class SubjectAmbiguous(Payload):
    """The identities given belong to more than one person: nothing was done."""

    event_type = "SubjectAmbiguous"
    reason: str


# --- Connectors: the subject's data outside the platform database (docs/datamap.md) ------


@event
class ConnectorCalled(Payload):
    """What one connector's call came to for the job: `done`, or `failed` with a code (an
    HTTP status, `timeout`, `refused:<rule>`); a failure is also one of the job's review
    items. Token revocations count the tokens found and those not revoked. No state change."""

    event_type = "ConnectorCalled"
    connector: str
    kind: str
    outcome: Literal["done", "failed"]
    code: str | None = None
    attempts: int = 0
    tokens: int | None = None
    failed_tokens: int | None = None


class ManualTask(Payload):
    task: str  # the connector's name in the data map
    assignee: str  # the person or team's address (staff, not the data subject)
    instructions: str = ""


@event
class ManualTasksOpened(Payload):
    """The erasure has systems erased by hand (`manual` connectors): one task each, mailed to
    its assignee by the eraser. Intake records the tasks, reminds the assignees, and holds
    the job (`awaiting_tasks`) until each is done or waived. No state change by itself."""

    event_type = "ManualTasksOpened"
    tasks: list[ManualTask]


@event
class ManualTaskClosed(Payload):
    """An admin confirmed a manual task done, or waived it (with the reason). From intake, on
    the audit topic; the last one to close lets a job awaiting its tasks complete."""

    event_type = "ManualTaskClosed"
    task: str
    outcome: Literal["done", "waived"]
    reason: str | None = None
