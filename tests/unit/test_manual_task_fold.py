"""A job's state from its events with manual tasks (pure): JobCompleted with a task open
leaves it awaiting its tasks; the last close completes it; tasks closed before the purge let
the completion through."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.intake.domain.progress import JobEvent, fold
from shared import lifecycle

pytestmark = pytest.mark.unit
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _events(*spec: tuple[str, dict[str, Any]]) -> list[JobEvent]:
    return [
        JobEvent(uuid.uuid4(), t, T0 + timedelta(minutes=i), "service:x", d)
        for i, (t, d) in enumerate(spec)
    ]


PLANNED = ("ErasurePlanned", {"total": 1, "per_table": {"users": 1}})
OPENED = ("ManualTasksOpened", {"tasks": [{"task": "a"}, {"task": "b"}]})
COMPLETED = ("JobCompleted", {"done": 1, "total": 1, "verification": {}, "needs_review": []})


def test_the_job_awaits_its_open_tasks_and_completes_with_the_last() -> None:
    state = fold(_events(PLANNED, OPENED, COMPLETED))
    assert (state["status"], state["phase"]) == (lifecycle.AWAITING_TASKS, "manual_tasks")
    state = fold(_events(PLANNED, OPENED, COMPLETED, ("ManualTaskClosed", {"task": "a"})))
    assert state["status"] == lifecycle.AWAITING_TASKS
    last = ("ManualTaskClosed", {"task": "b", "outcome": "waived", "reason": "none there"})
    state = fold(_events(PLANNED, OPENED, COMPLETED, ("ManualTaskClosed", {"task": "a"}), last))
    assert (state["status"], state["phase"]) == ("completed", "completed")


def test_tasks_closed_before_the_purge_let_the_completion_through() -> None:
    closes = [("ManualTaskClosed", {"task": t}) for t in ("a", "b")]
    review = ("JobCompleted", {**COMPLETED[1], "needs_review": [{"kind": "trace"}]})
    state = fold(_events(PLANNED, OPENED, *closes, review))
    assert state["status"] == "completed_with_errors"


def test_a_job_without_tasks_completes_as_before() -> None:
    assert fold(_events(PLANNED, COMPLETED))["status"] == "completed"
