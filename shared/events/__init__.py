"""Event schemas: one module per topic, all in one envelope. Importing registers them."""

from shared.events import jobs, notifications, progress, requests
from shared.events.envelope import Actor, Envelope, Payload, make_event, payload_model

__all__ = [
    "Actor",
    "Envelope",
    "Payload",
    "jobs",
    "make_event",
    "notifications",
    "payload_model",
    "progress",
    "requests",
]
