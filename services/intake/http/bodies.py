"""The success bodies of the /v1 routes, as the OpenAPI document shows them. The routes build
plain dicts (`views.job_view` and friends); these models document them (`responses=`), and the
schemathesis run (tests/integration/test_api_contract.py) checks every answer against them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ReceiptConfirmation(BaseModel):
    due_by: str | None
    sent_at: str | None


class TaskView(BaseModel):
    """A manual task of the job (docs/datamap.md, Connectors)."""

    task: str
    assignee: str
    instructions: str
    status: str = Field(description="open, done or waived")
    reason: str | None
    closed_by: str | None
    opened_at: str
    closed_at: str | None
    reminders: int


class JobView(BaseModel):
    """A job as the API shows it (`views.job_view`)."""

    id: str
    org_id: str
    type: str = Field(description="erasure, export or retention")
    scope: str
    status: str
    phase: str | None
    request_id: str | None
    regulation: str
    received_at: str
    due_at: str
    extended_due_at: str | None
    days_left: int
    done: int | None
    total: int | None
    percent: float
    rows_per_second: float | None
    eta_seconds: float | None
    result: Any = Field(description="What the job produced (no export link here).")
    outcome: str | None
    purge_after: str | None
    needs_review: Any
    error: str | None
    subject_hash: str | None
    overdue: bool
    reason: str | None
    extension_reason: str | None
    extension_notified_at: str | None
    receipt_confirmation: ReceiptConfirmation | None
    duplicate_of: str | None = Field(
        None,
        description="Only in a submit's answer: the subject's open job this request was linked "
        "to instead of starting a new one.",
    )
    linked_request_id: str | None = Field(None, description="With `duplicate_of`: the link.")
    note: str | None = Field(None, description="With `duplicate_of`: what happened, in words.")
    tasks: list[TaskView] | None = Field(
        None,
        description="Manual tasks (GET /v1/jobs/{id} only); the job completes when "
        "each is done or waived.",
    )


class JobList(BaseModel):
    jobs: list[JobView]
    next_cursor: str | None = Field(description="Pass back as `cursor` for the next page.")


class JobEvent(BaseModel):
    event_id: str
    type: str
    occurred_at: str
    actor: Any
    details: Any


class JobEvents(BaseModel):
    events: list[JobEvent]


class Accepted(BaseModel):
    job_id: str
    accepted: str = Field(description="The command accepted: cancel or restore.")
    status: str = Field(description="The job's status when it was accepted.")


class AuditEntry(BaseModel):
    seq: int
    event_id: str
    occurred_at: str
    recorded_at: str
    actor: Any
    action: str
    org_id: str | None
    job_id: str | None
    subject_hash: str | None
    details: Any
    prev_hash: str | None
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None


class LinksRevoked(BaseModel):
    job_id: str
    links_revoked: int


class Delegation(BaseModel):
    org_id: str
    admins_submit_subject_requests: bool
    rule: str


class RetentionPolicy(BaseModel):
    org_id: str
    policy: dict[str, int]
    defaults: dict[str, Any]
    range: list[int] = Field(description="The smallest and largest number of days allowed.")


def ok(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"model": model, "description": description}
