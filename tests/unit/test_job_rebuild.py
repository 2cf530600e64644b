"""A job's state folded from its events (`services.intake.domain.progress`): the same moves
as when they arrive one by one, whatever was lost from the jobs row meanwhile."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.intake.domain.progress import JobEvent, diff, fold, merge, moved

pytestmark = pytest.mark.unit
T0 = datetime(2026, 1, 1, tzinfo=UTC)
ITEM = {"table": "messages", "chunk_no": 3, "rows": 25, "error": "legal hold"}


def _e(i: int, type_: str, **details: Any) -> JobEvent:
    return JobEvent(uuid.uuid4(), type_, T0 + timedelta(seconds=i), "service:eraser", details)


def _erasure() -> list[JobEvent]:
    batch = {"rows_per_second": 10.0, "eta_seconds": 1.0, "total": 100}
    verification = {"ok": False}
    return [
        _e(0, "ErasureRequested", scope="subject"),
        _e(1, "ErasurePlanned", total=100, per_table={"messages": 100}),
        _e(2, "BatchErased", done=40, **batch),
        _e(3, "BatchErased", done=75, **batch),
        _e(4, "ErasureSoftDeleted", done=75, total=100, verification=verification,
           purge_after=(T0 + timedelta(days=7)).isoformat(), needs_review=[ITEM]),
        _e(5, "SendEmail", template="erasure_hidden"),
        _e(6, "PurgeStarted"),
        _e(7, "JobCompleted", done=75, total=100, verification=verification,
           needs_review=[ITEM]),
    ]  # fmt: skip


def test_a_finished_erasure_is_rebuilt_with_its_counts_and_review_items() -> None:
    state = fold(_erasure())
    assert state["status"] == "completed_with_errors" and state["phase"] == "completed"
    assert (state["done"], state["total"]) == (75, 100)
    assert state["needs_review"] == [ITEM]  # reported twice, kept once
    assert state["purge_after"] == T0 + timedelta(days=7)
    assert state["last_event_at"] == T0 + timedelta(seconds=7)


def test_late_and_repeated_events_change_nothing() -> None:
    events = _erasure()
    late = _e(8, "BatchErased", done=40, rows_per_second=1.0, eta_seconds=9.0, total=100)
    assert fold([*events, late, events[3]]) == fold(events)


def test_a_job_stuck_in_erasing_differs_from_its_events() -> None:
    row = {**fold(_erasure()[:4])}  # what intake saw: the last BatchErased
    assert row["status"] == "running" and row["phase"] == "erasing"
    changes = diff(row, fold(_erasure()))
    assert changes["status"] == ("running", "completed_with_errors")
    assert changes["needs_review"] == ([], [ITEM])
    assert "done" not in changes and diff(fold(_erasure()), fold(_erasure())) == {}


def test_the_audit_trail_and_the_timeline_merge_once_in_order() -> None:
    events = _erasure()
    merged = merge(events[4:], events, events[:2])
    assert merged == events
    assert not moved([events[0], events[5]])  # a request and a mail move no job
