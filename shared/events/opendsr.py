"""OpenDSR status callbacks (sent by the notifier, recorded in the audit trail).

Callback URLs are the controller's endpoints, not personal data; events still name them by
host and a short hash, so a URL carrying a token never lands in the trail.
"""

from __future__ import annotations

from shared.events.envelope import Payload, event


@event
class OpenDSRRequestReceived(Payload):
    """A controller's request was received (on `lethe.progress.v1`): its `pending` callback
    (section 8.5: callbacks on every state change, receipt included)."""

    event_type = "OpenDSRRequestReceived"
    subject_request_id: str


@event
class OpenDSRCallbackSent(Payload):
    """A signed status callback was accepted (2xx) by the controller."""

    event_type = "OpenDSRCallbackSent"
    progress_event_id: str
    subject_request_id: str
    request_status: str
    url_host: str
    url_hash: str
    http_status: int


@event
class OpenDSRCallbackFailed(Payload):
    """Every attempt at a callback failed; the controller should be told (spec section 8.5)."""

    event_type = "OpenDSRCallbackFailed"
    progress_event_id: str
    subject_request_id: str
    request_status: str
    url_host: str
    url_hash: str
    error: str
