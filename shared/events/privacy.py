"""The privacy centre in the audit trail: a subject asks for a one-time code, gives it back
(right, wrong, late, again), and the job is created; owners turn the centre on and off.

No event holds the code or the address: the subject appears as the envelope's subject hash
(keyed per organisation, the hash the job will carry), the client as a keyed hash.
"""

from __future__ import annotations

from typing import Literal

from shared.events.envelope import Payload, event

Refusal = Literal[
    "rate_limited_address",
    "rate_limited_source",
    "wrong_code",
    "expired_code",
    "replayed_code",
    "too_many_attempts",
    "unknown_challenge",
]


@event
class PrivacyCodeRequested(Payload):
    """A code was made and mailed (sealed) for a challenge."""

    event_type = "PrivacyCodeRequested"
    challenge_id: str
    request_type: Literal["erasure", "export"]
    source_hash: str
    expires_at: str


@event
class PrivacyCodeRefused(Payload):
    """A step refused, with the rule: nothing else was written."""

    event_type = "PrivacyCodeRefused"
    reason: Refusal
    challenge_id: str | None = None
    source_hash: str
    attempts: int | None = None


@event
class PrivacyCodeVerified(Payload):
    """The right code, in time, once: the job is created in the same transaction."""

    event_type = "PrivacyCodeVerified"
    challenge_id: str
    request_type: Literal["erasure", "export"]
    source_hash: str
    attempts: int


@event
class PrivacyCentreChanged(Payload):
    """An owner turned the organisation's privacy centre on or off, or moved its slug."""

    event_type = "PrivacyCentreChanged"
    old_enabled: bool
    new_enabled: bool
    old_slug: str | None = None
    new_slug: str | None = None
