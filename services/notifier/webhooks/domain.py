"""Webhooks, the decisions (pure): how a failed attempt is described and what the audit trail
says of a delivery sent or given up. The body and the signed headers are the notifier's
(services/notifier/domain.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.notifier.domain import ACTOR, describe
from shared.events import Envelope, make_event
from shared.events.notifications import NotificationFailed, NotificationSent

if TYPE_CHECKING:
    from services.notifier.webhooks.store import Queued

CHANNEL = "webhook"


def failure(q: Queued, exc: BaseException) -> str:
    """A failed attempt, named by the webhook's id and the error's kind (never the URL)."""
    return f"webhook {q.hook_id}: {describe(exc)}"


def removed(q: Queued) -> str:
    return f"webhook {q.hook_id}: removed before it was sent"


def _audit(q: Queued, payload: NotificationSent | NotificationFailed) -> Envelope:
    return make_event(
        payload, actor=ACTOR, job_id=q.job_id, org_id=q.org_id, subject_hash=q.subject_hash
    )


def sent_event(q: Queued) -> Envelope:
    return _audit(
        q,
        NotificationSent(
            template=q.template,
            channel=CHANNEL,
            command_event_id=str(q.event_id),
            recipient=q.recipient,
        ),
    )


def failed_event(q: Queued, error: str) -> Envelope:
    return _audit(
        q,
        NotificationFailed(
            template=q.template,
            channel=CHANNEL,
            command_event_id=str(q.event_id),
            error=error[:500],
            recipient=q.recipient,
        ),
    )
