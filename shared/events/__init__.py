"""Event schemas: one module per topic, all in one envelope. Importing registers them."""

from shared.events import (
    audit,
    exports,
    jobs,
    keys,
    notifications,
    opendsr,
    privacy,
    progress,
    requests,
    retention,
)
from shared.events.envelope import (
    Actor,
    Envelope,
    Payload,
    make_event,
    payload_model,
    registered_types,
)

__all__ = [
    "Actor",
    "Envelope",
    "Payload",
    "audit",
    "exports",
    "jobs",
    "keys",
    "make_event",
    "notifications",
    "opendsr",
    "payload_model",
    "privacy",
    "progress",
    "registered_types",
    "requests",
    "retention",
]
