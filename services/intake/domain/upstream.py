"""Requests from upstream services on `lethe.requests.v1`: decoding, and the caller they
act as. Pure."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from pydantic import ValidationError

from services.intake.domain.callers import Caller
from services.intake.domain.requests import RequestIn, field_errors
from shared.events.requests import SubmitRequest


@dataclass(frozen=True)
class Rejection:
    reason: str
    errors: list[str]
    request_id: str | None = None


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
