"""The approval step's rules and fold, without infrastructure: which channels an owner may
name, which states take a decision, and the state `lethe jobs rebuild` folds from the events
of a held job (approved, then run; or denied)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.intake.domain import approvals
from services.intake.domain.progress import JobEvent, fold
from shared import lifecycle

pytestmark = pytest.mark.unit
T0 = datetime(2026, 1, 31, 9, 0, tzinfo=UTC)


def _events(*kinds: tuple[str, dict[str, object]]) -> list[JobEvent]:
    return [
        JobEvent(uuid.uuid4(), kind, T0 + timedelta(seconds=i), "api_key:x", details)
        for i, (kind, details) in enumerate(kinds)
    ]


def test_owners_name_known_channels_only_in_a_stable_order() -> None:
    assert approvals.channels_setting(["web", "api", "web"]) == ["api", "web"]
    assert approvals.channels_setting([]) == []
    with pytest.raises(approvals.BadChannels, match="unknown fax"):
        approvals.channels_setting(["api", "fax"])


def test_a_held_job_folds_to_awaiting_then_runs_once_approved() -> None:
    held = _events(("ApprovalRequired", {"channel": "api"}))
    assert fold(held)["status"] == "awaiting_approval"
    approved = held + _events(("RequestApproved", {"reason": "ok"}))
    assert fold(approved)["status"] == "pending"
    running = approved + _events(("ErasurePlanned", {"total": 10}))
    state = fold(running)
    assert state["status"] == "running" and state["total"] == 10


def test_a_denied_job_ends_denied_with_its_reason_and_takes_nothing_more() -> None:
    state = fold(
        _events(
            ("ApprovalRequired", {"channel": "web"}),
            ("RequestDenied", {"reason": "not a customer"}),
            ("ErasurePlanned", {"total": 3}),  # cannot happen; and would change nothing
        )
    )
    assert state["status"] == "denied" and state["error"] == "not a customer"
    assert "denied" in lifecycle.FINAL


@pytest.mark.parametrize("state", lifecycle.STATES)
def test_only_a_job_awaiting_approval_takes_a_decision(state: str) -> None:
    for command in ("approve", "deny"):
        if state == "awaiting_approval":
            lifecycle.check_command(command, state, "erasure")
        else:
            with pytest.raises(lifecycle.IllegalTransition, match=state):
                lifecycle.check_command(command, state, "erasure")


def test_linked_requesters_hear_once_the_job_is_out_of_the_open_states() -> None:
    assert not any(approvals.done_for_links(s) for s in lifecycle.OPEN)
    assert all(approvals.done_for_links(s) for s in ("soft_deleted", "ready", *lifecycle.FINAL))
