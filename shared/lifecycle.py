"""The job lifecycle, in one place: which states exist, what moves a job between them.

Workers report progress events; people send commands. Both are checked here: a progress
event outside its allowed states is ignored (redelivered or late), a command outside its
allowed states is refused with 409 naming the current state.

    pending -> running -> soft_deleted (recovery window) -> purging -> completed
                                                                    -> completed_with_errors
                                      (manual tasks open) -> awaiting_tasks -> completed...
    plus failed, cancelled, restored; exports: running -> ready -> expired;
    and outcomes that are results, not errors: not_found (nothing held on the subject),
    ambiguous (the identities belong to more than one person: nothing done);
    where the org asks for approval: awaiting_approval -> pending (approved) or denied

`awaiting_approval` is intake's own: the worker has not been sent the job yet, so it takes no
cancel (an admin denies it instead); its legal deadline runs and can be extended.

`restored` is terminal: a job whose data all came back is never purged, never completed, and
no completion mail or callback follows. A restore of single items (or one that could not bring
every row back) leaves the job in its window; the rest is purged as planned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ACTIVE = ("pending", "running")
FINAL = (
    "completed",
    "completed_with_errors",
    "failed",
    "cancelled",
    "restored",
    "expired",
    "not_found",
    "ambiguous",
    "denied",
)
# Outcomes that are results, in words (API `outcome`, web UI, CLI): never "0 rows erased".
OUTCOME_WORDS = {
    "not_found": "No data held on this subject",
    "ambiguous": "Identities belong to more than one person: nothing done",
    "denied": "Denied by an approver: nothing done",
}
# A legal deadline is met once the data is out of reach (hidden, purged) or the job ended.
DONE_FOR_DEADLINE = ("soft_deleted", "purging", "ready", *FINAL)
HELD = "awaiting_approval"
# An erasure whose platform part is done (purged, verified) while manual tasks are open
# (docs/datamap.md, Connectors): it completes when the last one is done or waived.
AWAITING_TASKS = "awaiting_tasks"
STATES = (HELD, *ACTIVE, "soft_deleted", "purging", AWAITING_TASKS, "ready", *FINAL)
# Open jobs: a new request for the same subject and type is linked to one of these.
OPEN = (HELD, *ACTIVE)


@dataclass(frozen=True)
class Move:
    from_states: tuple[str, ...]
    to: str | None  # None: the event decides (JobCompleted with or without review items)
    phase: str


# Progress events (from workers, and intake's approval decisions) -> the move they make.
PROGRESS: dict[str, Move] = {
    "ApprovalRequired": Move(("pending",), HELD, HELD),
    "RequestApproved": Move((HELD,), "pending", "requested"),
    "RequestDenied": Move((HELD,), "denied", "denied"),
    "ErasurePlanned": Move(("pending",), "running", "planned"),
    "BatchErased": Move(ACTIVE, "running", "erasing"),
    "ErasureSoftDeleted": Move(ACTIVE, "soft_deleted", "recovery_window"),
    "PurgeStarted": Move((*ACTIVE, "soft_deleted", "purging"), "purging", "purging"),
    "JobCompleted": Move((*ACTIVE, "soft_deleted", "purging"), None, "completed"),
    "BatchExported": Move(ACTIVE, "running", "exporting"),
    "ExportReady": Move(ACTIVE, "ready", "ready"),
    "ExportExpired": Move(("ready",), "expired", "expired"),
    "JobFailed": Move((*ACTIVE, "soft_deleted", "purging"), "failed", "failed"),
    "SubjectNotFound": Move(ACTIVE, "not_found", "not_found"),
    "SubjectAmbiguous": Move(ACTIVE, "ambiguous", "ambiguous"),
    "JobCancelled": Move(ACTIVE, "cancelled", "cancelled"),
    "JobRestored": Move(("soft_deleted", "cancelled", "running"), "restored", "restored"),
}


def move_for(event_type: str, payload: dict[str, object]) -> Move | None:
    """The move an event makes; a restore that leaves rows held leaves the job in its window."""
    if event_type == "JobRestored" and not fully_restored(payload):
        return None
    return PROGRESS.get(event_type)


def fully_restored(payload: dict[str, object]) -> bool:
    """JobRestored: nothing held any more (older events say only whether it was the whole job)."""
    fully = payload.get("fully_restored")
    return bool(payload.get("whole_job") if fully is None else fully)


# Commands (from people) -> the states they are allowed in.
COMMANDS: dict[str, tuple[str, ...]] = {
    "cancel": ACTIVE,
    "restore": ("soft_deleted", "cancelled"),
    "extend": (HELD, *ACTIVE, "soft_deleted", "purging", AWAITING_TASKS),
    "approve": (HELD,),
    "deny": (HELD,),
}


class IllegalTransition(Exception):
    def __init__(self, command: str, status: str) -> None:
        allowed = ", ".join(COMMANDS[command])
        super().__init__(
            f"cannot {command} a job that is {status} ({command} is allowed when: {allowed})"
        )
        self.status = status


# Why an export can no longer be cancelled, by state (the 409 says it).
EXPORT_NOT_CANCELLABLE = {
    "ready": "its file is built; to stop its use, revoke the download link "
    "(POST /v1/exports/{id}/revoke)",
    "expired": "its file and key are already deleted",
}


def check_command(command: str, status: str, job_type: str) -> None:
    if command in ("restore",) and job_type != "erasure":
        raise IllegalTransition(command, f"{status} (only erasures can be restored)")
    if command == "cancel" and job_type == "export" and status in EXPORT_NOT_CANCELLABLE:
        raise IllegalTransition(command, f"{status}: {EXPORT_NOT_CANCELLABLE[status]}")
    if status not in COMMANDS[command]:
        raise IllegalTransition(command, status)


def completed_status(needs_review: list[object]) -> str:
    return "completed_with_errors" if needs_review else "completed"


def status_on_completion(needs_review: list[object], open_tasks: int) -> str:
    """Where a JobCompleted takes a job: waiting for its open manual tasks, or complete."""
    return AWAITING_TASKS if open_tasks else completed_status(needs_review)


def reported_status(payload: dict[str, Any]) -> str:
    """The status a JobCompleted announces to those outside (webhooks, OpenDSR callbacks):
    the eraser's purge report of a job with manual tasks is not its completion; intake's
    JobCompleted, once the last task is closed, is."""
    if payload.get("awaiting_tasks"):
        return AWAITING_TASKS
    return completed_status(list(payload.get("needs_review") or []))
