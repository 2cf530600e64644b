"""An erasure with manual tasks says "completed" once, when the job is (pure): the eraser's
purge report (JobCompleted with `awaiting_tasks`) reads as awaiting its tasks to webhooks and
OpenDSR callbacks; intake's JobCompleted after the last task, built from that report, says
completed, with the mail and its counts; folding both gives the state intake holds."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.intake.domain.completion import completion
from services.intake.domain.progress import JobEvent, fold
from services.notifier.domain import callback_body
from shared import lifecycle
from shared.events import Actor, make_event
from shared.events.progress import JobCompleted
from shared.notices import once_id
from shared.opendsr.statuses import request_status, status_after

pytestmark = pytest.mark.unit
T0 = datetime(2026, 1, 1, tzinfo=UTC)
JOB_ID = uuid.uuid4()
JOB: dict[str, Any] = {"id": JOB_ID, "org_id": "acme", "subject_hash": "h"}
REPORT: dict[str, Any] = {
    "done": 5,
    "total": 5,
    "verification": {"ok": True},
    "needs_review": [],
    "purged_rows": 4,
    "restored_rows": 1,
    "awaiting_tasks": True,
}


def _env(payload: JobCompleted) -> Any:
    return make_event(
        payload, actor=Actor(kind="service", id="eraser"), job_id=JOB_ID, org_id="acme"
    )


def test_the_purge_report_is_not_a_completion_outside() -> None:
    env = _env(JobCompleted.model_validate(REPORT))
    assert json.loads(callback_body(env))["status"] == lifecycle.AWAITING_TASKS
    after = status_after("JobCompleted", env.payload)
    assert after == lifecycle.AWAITING_TASKS and request_status(after) == "in_progress"


def test_intakes_completion_says_completed_with_the_purge_counts() -> None:
    done, mail = completion(JOB, REPORT, to="req@x.test", status_link="https://s/1")
    assert done.type == "JobCompleted" and done.payload["awaiting_tasks"] is False
    assert done.event_id == once_id(JOB_ID, "JobCompleted")
    assert json.loads(callback_body(done))["status"] == "completed"
    assert request_status(status_after("JobCompleted", done.payload) or "") == "completed"
    assert mail.payload["template"] == "job_completed" and mail.payload["to"] == "req@x.test"
    ctx = mail.payload["context"]
    assert (ctx["rows_purged"], ctx["rows_restored"]) == (4, 1)
    # The eraser's mail id: a job is told "completed" once, whoever sends it.
    assert mail.event_id == once_id(JOB_ID, "job_completed")


def test_with_review_items_the_review_mail() -> None:
    report = {**REPORT, "needs_review": [{"kind": "trace"}]}
    done, mail = completion(JOB, report, to=None, status_link=None)
    assert mail.payload["template"] == "job_completed_review"
    assert json.loads(callback_body(done))["status"] == "completed"


def test_folding_the_report_the_closes_and_the_completion_gives_intakes_state() -> None:
    done, _ = completion(JOB, REPORT, to=None, status_link=None)
    spec: list[tuple[str, dict[str, Any]]] = [
        ("ErasurePlanned", {"total": 5, "per_table": {"users": 5}}),
        ("ManualTasksOpened", {"tasks": [{"task": "a"}]}),
        ("JobCompleted", REPORT),
        ("ManualTaskClosed", {"task": "a", "outcome": "done"}),
        ("JobCompleted", done.payload),
    ]
    events = [
        JobEvent(uuid.uuid4(), t, T0 + timedelta(minutes=i), "service:x", d)
        for i, (t, d) in enumerate(spec)
    ]
    assert fold(events[:3])["status"] == lifecycle.AWAITING_TASKS
    state = fold(events)
    assert (state["status"], state["phase"]) == ("completed", "completed")
    assert state["last_event_at"] == events[3].occurred_at  # the close completed it
