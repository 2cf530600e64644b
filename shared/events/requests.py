"""`lethe.requests.v1` (upstream commands) and `lethe.requests.rejected.v1`."""

from __future__ import annotations

from shared.events.envelope import Payload, event


@event
class RequestRejected(Payload):
    event_type = "RequestRejected"
    reason: str
    errors: list[str] = []
    original_key: str | None = None
    request_id: str | None = None
