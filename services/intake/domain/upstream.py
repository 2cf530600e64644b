"""Requests from upstream services on `lethe.requests.v1`: decoding, and the caller they
act as. Pure."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from pydantic import ValidationError

from services.intake.domain.callers import Caller
from services.intake.domain.requests import RequestIn, field_errors
from shared.events.requests import SubmitRequest

MAX_ERRORS, MAX_REASON = 20, 2000


@dataclass(frozen=True)
class Rejection:
    """Bounded, whatever the message: 40 000 wrong fields must not make a rejection larger
    than the broker takes (it would never be published, and the consumer would stall)."""

    reason: str
    errors: list[str]
    request_id: str | None = None

    def __post_init__(self) -> None:
        errors = self.errors[:MAX_ERRORS]
        if len(self.errors) > MAX_ERRORS:
            errors[-1] = f"... and {len(self.errors) - MAX_ERRORS + 1} more"
        reason = self.reason if len(self.reason) <= MAX_REASON else self.reason[: MAX_REASON - 3]
        object.__setattr__(self, "errors", [e[:MAX_REASON] for e in errors])
        object.__setattr__(self, "reason", reason + ("..." if reason != self.reason else ""))
        if self.request_id is not None:
            object.__setattr__(self, "request_id", self.request_id[:200])


def parse_upstream(raw: bytes) -> tuple[SubmitRequest, RequestIn] | Rejection:
    """Decode a message from `lethe.requests.v1`; anything wrong becomes a Rejection."""
    try:
        msg = SubmitRequest.model_validate_json(raw)
    except ValidationError as exc:
        errors = field_errors(exc)
        return Rejection(f"invalid message: {'; '.join(errors)}", errors)
    request_id = (
        msg.request.get("request_id") if isinstance(msg.request.get("request_id"), str) else None
    )
    try:
        req = RequestIn.model_validate(msg.request)
    except ValidationError as exc:
        errors = [f"request.{e}" for e in field_errors(exc)]
        return Rejection(f"invalid request: {'; '.join(errors)}", errors, request_id)
    return msg, req


def upstream_caller(org_id: str, org_name: str, window: int, source: str) -> Caller:
    """Upstream services act for the org they name (Kafka ACLs authenticate them)."""
    return Caller(
        org_id=org_id,
        org_name=org_name,
        role="owner",
        key_id=uuid.uuid5(uuid.NAMESPACE_URL, f"lethe-upstream:{source}"),
        recovery_window_days=window,
        actor_kind="upstream",
        actor_id=source,
    )
