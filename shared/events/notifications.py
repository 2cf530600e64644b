"""`lethe.notifications.v1`: commands to the notifier, and what became of them."""

from __future__ import annotations

from typing import Any

from shared.events.envelope import Payload, event, pii


@event
class SendEmail(Payload):
    event_type = "SendEmail"
    template: str
    to: str = pii()
    context: dict[str, Any] = {}


@event
class NotificationSent(Payload):
    event_type = "NotificationSent"
    template: str
    channel: str
    command_event_id: str


@event
class NotificationFailed(Payload):
    event_type = "NotificationFailed"
    template: str
    channel: str
    command_event_id: str
    error: str
