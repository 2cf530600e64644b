"""Connector decisions, pure: the body of an HTTP erasure call, which answers are worth a
retry, the backoff, and what the outcomes mean for the job (its verification and review
items). The calls themselves are services/eraser/service/connectors.py."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from services.eraser.models import ConnectorCall
from shared import netguard
from shared.datamap import DataMap, ManualConnector
from shared.events.progress import ManualTask

# Answers that may succeed later: the target is busy, overloaded or restarting.
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def call_id(job_id: uuid.UUID, connector: str) -> uuid.UUID:
    """The id of a job's call to a connector, the same on every attempt (`Lethe-Event-Id`):
    the receiver recognises a retry."""
    return uuid.uuid5(job_id, f"connector:{connector}")


def erase_body(
    job_id: uuid.UUID,
    org_id: str,
    connector: str,
    scope: str,
    identities: dict[str, str] | None,
) -> bytes:
    """What an HTTP connector receives: the job and the subject's identities (none for an
    organisation-scope erasure: the org id says whose data)."""
    body = {
        "event_id": str(call_id(job_id, connector)),
        "type": "ErasureRequested",
        "connector": connector,
        "job_id": str(job_id),
        "org_id": org_id,
        "scope": scope,
        "identities": identities,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def backoff(attempt: int, first: float) -> float:
    """Seconds before attempt `attempt + 1`: first, 2x, 4x, ... (at most a minute)."""
    return min(first * 2 ** (attempt - 1), 60.0)


def status_code(status: int) -> str | None:
    """None for a success (2xx), else the code recorded (`http_<status>`)."""
    return None if 200 <= status < 300 else f"http_{status}"


def retryable(status: int) -> bool:
    return status in RETRYABLE_STATUS


def error_code(exc: BaseException) -> tuple[str, bool]:
    """(code, worth a retry) of a call that got no answer. A refused target is final: the map
    names an address Lethe does not call."""
    if isinstance(exc, netguard.CallbackRefused):
        return f"refused:{exc.rule}", False
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return "timeout", True
    return type(exc).__name__, True


def outcomes(calls: list[ConnectorCall]) -> dict[str, dict[str, Any]]:
    """connector -> its outcome, as the job's verification shows it."""
    out: dict[str, dict[str, Any]] = {}
    for c in calls:
        o: dict[str, Any] = {"kind": c.kind, "outcome": c.outcome}
        if c.code:
            o["code"] = c.code
        if c.tokens is not None:
            o.update(tokens=c.tokens, failed_tokens=c.failed_tokens or 0)
        out[c.connector] = o
    return out


def review_items(calls: list[ConnectorCall]) -> list[dict[str, Any]]:
    """A review item per failed connector: someone must see to that system by hand."""
    items = []
    for c in calls:
        if c.outcome != "failed":
            continue
        item: dict[str, Any] = {"kind": "connector", "connector": c.connector, "code": c.code}
        if c.failed_tokens:
            item["failed_tokens"] = c.failed_tokens
        items.append(item)
    return items


def manual_tasks(dm: DataMap) -> list[ManualTask]:
    return [
        ManualTask(task=name, assignee=c.assignee, instructions=c.instructions)
        for name, c in dm.connectors.items()
        if isinstance(c, ManualConnector)
    ]


def task_context(
    t: ManualTask, scope: str, org_id: str, identities: dict[str, str] | None
) -> dict[str, Any]:
    """The assignee's mail: which system, what to do, and whom (one identity a line)."""
    if scope == "organisation" or not identities:
        who = f"every person of organisation {org_id}"
    else:
        who = "\n".join(f"  {kind}: {value}" for kind, value in sorted(identities.items()))
    return {"task": t.task, "instructions": t.instructions, "identities": who}
