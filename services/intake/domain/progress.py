"""How a job's row follows its events, written once: the columns a progress event sets
(`progress_columns`, used as each event arrives) and the whole fold (`fold`, used to rebuild
a job's state from its recorded events when some were lost on the way). Pure."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared import lifecycle

# The job columns that follow from its events (and nothing else).
STATE_FIELDS = (
    "status",
    "phase",
    "done",
    "total",
    "rows_per_second",
    "eta_seconds",
    "result",
    "error",
    "needs_review",
    "purge_after",
    "last_event_at",
)


@dataclass(frozen=True)
class JobEvent:
    """One recorded event of a job: from the audit trail or from the job's timeline (both keep
    the payload without personal data, which is all the fold reads)."""

    event_id: uuid.UUID
    type: str
    occurred_at: datetime
    actor: str
    details: dict[str, Any] = field(default_factory=dict)


def progress_columns(event_type: str, p: dict[str, Any]) -> dict[str, Any]:
    """Job columns a progress event sets (beyond status and phase)."""
    t = event_type
    cols: dict[str, Any] = {}
    if "total" in p:
        cols["total"] = p["total"]
    if "done" in p:
        cols["done"] = p["done"]
    if t in ("BatchErased", "BatchExported"):
        cols.update(rows_per_second=p["rows_per_second"], eta_seconds=p["eta_seconds"])
    if t in ("ErasureSoftDeleted", "JobCompleted"):
        cols.update(eta_seconds=0, result={"verification": p["verification"]})
    if t == "ErasureSoftDeleted":
        cols["purge_after"] = datetime.fromisoformat(p["purge_after"])
    if t == "ExportReady":
        cols["result"] = p
    if t in ("JobFailed", "JobCancelled", "SubjectAmbiguous", "RequestDenied"):
        cols["error"] = p.get("reason")
    if t == "SubjectNotFound":
        cols["result"] = {"outcome": "not_found"}
    if t == "SubjectAmbiguous":
        cols["result"] = {"outcome": "ambiguous"}
    if p.get("needs_review") or (t == "JobCompleted" and "needs_review" in p):
        cols["needs_review"] = p["needs_review"]  # JobCompleted's replaces the list
    return cols


def initial_state() -> dict[str, Any]:
    """A job as intake writes it, before any worker reported."""
    return {
        "status": "pending",
        "phase": "requested",
        "done": 0,
        "total": None,
        "rows_per_second": None,
        "eta_seconds": None,
        "result": None,
        "error": None,
        "needs_review": [],
        "purge_after": None,
        "last_event_at": None,
    }


def merge(*sources: Iterable[JobEvent]) -> list[JobEvent]:
    """Every event once (by event_id), in the order they happened."""
    seen: dict[uuid.UUID, JobEvent] = {}
    for source in sources:
        for e in source:
            seen.setdefault(e.event_id, e)
    return sorted(seen.values(), key=lambda e: (e.occurred_at, str(e.event_id)))


def fold(events: Iterable[JobEvent]) -> dict[str, Any]:
    """The job's state after its events, exactly as `store.apply_progress` moves it: an event
    outside its allowed states changes nothing; `done` never goes back; review items kept once."""
    state = initial_state()
    open_tasks: set[str] = set()
    for e in events:
        if e.type in ("ManualTasksOpened", "ManualTaskClosed"):
            _fold_task(state, open_tasks, e)
            continue
        move = lifecycle.move_for(e.type, e.details)
        if move is None or state["status"] not in move.from_states:
            continue
        state["status"] = move.to or lifecycle.status_on_completion(
            e.details.get("needs_review", []), len(open_tasks)
        )
        state["phase"] = "manual_tasks" if state["status"] == "awaiting_tasks" else move.phase
        state["last_event_at"] = e.occurred_at
        for name, value in progress_columns(e.type, e.details).items():
            if name == "done":
                state["done"] = max(state["done"], value)
            elif name == "needs_review" and e.type == "JobCompleted":
                state["needs_review"] = list(value)  # the worker's final list
            elif name == "needs_review":
                state["needs_review"] = state["needs_review"] + [
                    i for i in value if i not in state["needs_review"]
                ]
            else:
                state[name] = value
    return state


def _fold_task(state: dict[str, Any], open_tasks: set[str], e: JobEvent) -> None:
    """Manual tasks: opened with the plan, closed by an admin; the last one to close lets a
    job awaiting its tasks complete (as `service.tasks.close` does)."""
    if e.type == "ManualTasksOpened":
        open_tasks.update(t["task"] for t in e.details.get("tasks", []))
        return
    open_tasks.discard(e.details.get("task", ""))
    if state["status"] == lifecycle.AWAITING_TASKS and not open_tasks:
        state["status"] = lifecycle.completed_status(state["needs_review"])
        state["phase"] = "completed"
        state["last_event_at"] = e.occurred_at


def moved(events: Iterable[JobEvent]) -> bool:
    """Whether any of the events moves a job (without one, there is nothing to rebuild from)."""
    return any(lifecycle.move_for(e.type, e.details) is not None for e in events)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def diff(row: dict[str, Any], state: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Column: (in the jobs table, from the events), for each column that differs."""
    return {
        name: (row.get(name), state[name])
        for name in STATE_FIELDS
        if not _same(row.get(name), state[name])
    }
