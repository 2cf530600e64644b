"""How jobs look over HTTP (the API's JSON, also what the web pages show) and the jobs
list's keyset cursors."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any

from fastapi import HTTPException

from shared import lifecycle


def public_result(result: Any) -> Any:
    """A job's result as the API shows it: without the controller's bearer export link (only
    the OpenDSR status answers the controller with it)."""
    if isinstance(result, dict) and "results_url" in result:
        return {k: v for k, v in result.items() if k != "results_url"}
    return result


def job_view(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    total, done = row["total"], row["done"]
    due = row["extended_due_at"] or row["due_at"]
    return {
        "id": str(row["id"]),
        "org_id": row["org_id"],
        "type": row["type"],
        "scope": row["scope"],
        "status": row["status"],
        "phase": row["phase"],
        "request_id": row["request_id"],
        "regulation": row["regulation"],
        "received_at": row["received_at"].isoformat(),
        "due_at": row["due_at"].isoformat(),
        "extended_due_at": row["extended_due_at"].isoformat() if row["extended_due_at"] else None,
        "days_left": (due - now).days,
        "done": done,
        "total": total,
        "percent": round(100 * done / total, 1)
        if total
        else (100.0 if row["status"] == "completed" else 0.0),
        "rows_per_second": row["rows_per_second"],
        "eta_seconds": row["eta_seconds"],
        "result": public_result(row["result"]),
        "outcome": lifecycle.OUTCOME_WORDS.get(row["status"]),
        "purge_after": row["purge_after"].isoformat() if row["purge_after"] else None,
        "needs_review": row["needs_review"],
        "error": row["error"],
        "subject_hash": row["subject_hash"],
        "overdue": row["status"] not in lifecycle.DONE_FOR_DEADLINE and due < now,
        "reason": row["reason"],
        "extension_reason": row["extension_reason"],
        "extension_notified_at": _iso(row.get("extension_notified_at")),
        "receipt_confirmation": (
            {
                "due_by": _iso(row["receipt_due_at"]),
                "sent_at": _iso(row.get("receipt_confirmed_at")),
            }
            if row.get("receipt_due_at")
            else None
        ),
    }


def task_view(t: dict[str, Any]) -> dict[str, Any]:
    return {
        "task": t["task"],
        "assignee": t["assignee"],
        "instructions": t["instructions"],
        "status": t["status"],
        "reason": t["reason"],
        "closed_by": t["closed_by"],
        "opened_at": t["opened_at"].isoformat(),
        "closed_at": _iso(t["closed_at"]),
        "reminders": t["reminders"],
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def encode_cursor(row: dict[str, Any]) -> str:
    raw = json.dumps([row["received_at"].isoformat(), str(row["id"])]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        at, job_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(at), uuid.UUID(job_id)
    except (ValueError, TypeError) as exc:
        raise HTTPException(400, "cursor: not a cursor this API returned") from exc
