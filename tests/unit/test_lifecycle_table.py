"""The lifecycle tables, walked pair by pair against what the product promises.

Intake's table (shared/lifecycle.py) decides which commands a person may send and
which worker events move a job; the eraser's (services/eraser/fence.py) which operation its
own job record allows. The expectations are written out here, independently of the tables.
"""

from __future__ import annotations

import pytest

from services.eraser import fence
from shared import lifecycle

pytestmark = pytest.mark.unit

# Which states each command is allowed in (everything else: 409 naming the state).
EXPECTED_COMMANDS = {
    "cancel": {"pending", "running"},
    "restore": {"soft_deleted", "cancelled"},
    "extend": {
        "awaiting_approval",
        "pending",
        "running",
        "soft_deleted",
        "purging",
        "awaiting_tasks",
    },
    "approve": {"awaiting_approval"},
    "deny": {"awaiting_approval"},
}
# States nothing leaves: no command, no worker event.
TERMINAL = {"restored", "completed", "completed_with_errors", "failed", "expired", "denied"}


@pytest.mark.parametrize("state", lifecycle.STATES)
@pytest.mark.parametrize("command", sorted(EXPECTED_COMMANDS))
def test_every_state_and_command_pair(state: str, command: str) -> None:
    if state in EXPECTED_COMMANDS[command]:
        lifecycle.check_command(command, state, "erasure")
        return
    with pytest.raises(lifecycle.IllegalTransition) as refused:
        lifecycle.check_command(command, state, "erasure")
    assert refused.value.status == state and state in str(refused.value)


def test_the_table_has_exactly_the_commands_walked() -> None:
    assert set(lifecycle.COMMANDS) == set(EXPECTED_COMMANDS)
    assert all(set(allowed) <= set(lifecycle.STATES) for allowed in lifecycle.COMMANDS.values())


@pytest.mark.parametrize("state", lifecycle.STATES)
def test_only_erasures_can_be_restored(state: str) -> None:
    for job_type in ("export", "retention"):
        with pytest.raises(lifecycle.IllegalTransition, match="only erasures"):
            lifecycle.check_command("restore", state, job_type)


@pytest.mark.parametrize("state", sorted(TERMINAL))
@pytest.mark.parametrize("event_type", sorted(lifecycle.PROGRESS))
def test_terminal_states_take_no_event(state: str, event_type: str) -> None:
    move = lifecycle.move_for(event_type, {"whole_job": True, "fully_restored": True})
    assert move is None or state not in move.from_states


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_terminal_states_take_no_command(state: str) -> None:
    for command in lifecycle.COMMANDS:
        with pytest.raises(lifecycle.IllegalTransition):
            lifecycle.check_command(command, state, "erasure")


@pytest.mark.parametrize("event_type", ["PurgeStarted", "JobCompleted"])
def test_a_restored_job_is_never_purged_nor_completed(event_type: str) -> None:
    move = lifecycle.move_for(event_type, {"needs_review": []})
    assert move is not None and "restored" not in move.from_states


@pytest.mark.parametrize(
    ("payload", "ends_restored"),
    [
        ({"whole_job": True, "fully_restored": True}, True),
        # Some rows could not come back: they stay held and are purged with the window.
        ({"whole_job": True, "fully_restored": False}, False),
        # Items that happened to be everything held.
        ({"whole_job": False, "fully_restored": True}, True),
        ({"whole_job": False, "fully_restored": False}, False),
        # Events from before `fully_restored` existed.
        ({"whole_job": True}, True),
        ({"whole_job": False}, False),
    ],
)
def test_a_restore_ends_the_job_only_when_nothing_is_held(
    payload: dict[str, object], ends_restored: bool
) -> None:
    move = lifecycle.move_for("JobRestored", payload)
    if ends_restored:
        assert move is not None and move.to == "restored"
        assert set(move.from_states) == {"soft_deleted", "cancelled", "running"}
    else:
        assert move is None


# ------------------------------------------------------------------ the eraser's own table

EXPECTED_ERASER = {
    "chunk": {"erasing"},
    "hide": {"planning"},
    "cancel": {"planning", "erasing"},
    "restore": {"soft_deleted", "cancelled"},
    "purge": {"soft_deleted", "cancelled", "purging"},
}


@pytest.mark.parametrize("state", fence.STATES)
@pytest.mark.parametrize("operation", sorted(EXPECTED_ERASER))
def test_eraser_every_state_and_operation_pair(state: str, operation: str) -> None:
    assert fence.allowed(operation, state) is (state in EXPECTED_ERASER[operation])
    if state in fence.TERMINAL:
        assert not fence.allowed(operation, state)


def test_eraser_table_has_exactly_the_operations_walked() -> None:
    assert set(fence.ALLOWED) == set(EXPECTED_ERASER)
    assert not any(fence.allowed(op, None) for op in fence.ALLOWED)  # unknown job
