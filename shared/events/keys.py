"""Key management in the audit trail: who made or withdrew which key, with which role.

A key's secret (an API key, a signing seed) is never in an event: only its id.
"""

from __future__ import annotations

from shared.events.envelope import Payload, event


@event
class ApiKeyCreated(Payload):
    """An organisation got a new API key (web admin page, CLI, or `lethe orgs create`)."""

    event_type = "ApiKeyCreated"
    key_id: str
    role: str
    name: str


@event
class ApiKeyRevoked(Payload):
    """An API key stopped working."""

    event_type = "ApiKeyRevoked"
    key_id: str
    role: str
    name: str


@event
class AuditSigningKeyGenerated(Payload):
    """`lethe audit keygen` made a checkpoint signing key (its id: the public key's hash)."""

    event_type = "AuditSigningKeyGenerated"
    key_id: str


@event
class AuditTrustedKeysChanged(Payload):
    """The public keys trusted to verify checkpoints changed: a key added, or withdrawn."""

    event_type = "AuditTrustedKeysChanged"
    added: list[str]
    removed: list[str]
    trusted: list[str]  # the whole set now, to compare the next start with
