"""`lethe.notifications.v1`: commands to the notifier, and what became of them.

Producers send `SendEmail` with one of TEMPLATES and the context keys it names; the notifier
picks the recipients (the requester in `to`, the organisation's owners, or both) from its
configuration unless `audience` says otherwise. Contexts carry ids, counts and links, never
the data subject's identity.
"""

from __future__ import annotations

from typing import Any, Literal

from shared.events.envelope import Payload, event, pii

# Template name -> context keys it uses (every template may also take OPTIONAL_CONTEXT_KEYS).
TEMPLATES: dict[str, tuple[str, ...]] = {
    "erasure_hidden": ("job_id", "rows", "tables", "restorable_until", "final_on"),
    "job_needs_review": ("job_id", "job_type", "review_count"),
    "job_completed": ("job_id", "job_type", "rows", "rows_purged", "rows_restored"),
    "job_completed_review": (
        "job_id",
        "job_type",
        "rows",
        "rows_purged",
        "rows_restored",
        "review_count",
    ),
    "job_not_found": ("job_id", "job_type"),
    "job_ambiguous": ("job_id", "job_type", "reason"),
    "job_failed": ("job_id", "job_type", "reason"),
    "export_ready": ("job_id", "link", "expires_at", "max_downloads"),
    "recovery_ends": ("job_id", "purge_after"),
    "deadline_approaching": ("job_id", "job_type", "due_at", "days_left"),
    "deadline_passed": ("job_id", "job_type", "due_at"),
    "deadline_extended": (
        "job_id",
        "job_type",
        "regulation",
        "due_at",
        "extended_due_at",
        "reason",
    ),
    "ccpa_receipt": ("job_id", "job_type", "received_at", "due_at", "max_due_at"),
    "request_received": ("job_id", "job_type", "received_at", "due_at", "regulation"),
    "request_approved": ("job_id", "job_type", "due_at", "reason"),
    "request_denied": ("job_id", "job_type", "reason"),
    "linked_request_done": ("job_id", "job_type", "received_at", "status", "outcome"),
    # Manual connectors (docs/datamap.md): to the system's assignee, not the subject. The
    # first one names the subject (`identities`, kept out of the audit trail): without it
    # nobody could erase by hand; reminders point back to it.
    "manual_task": ("job_id", "task", "instructions", "identities"),
    "manual_task_reminder": ("job_id", "task", "opened_at", "reminder"),
    # A bulk request's one summary, once every subject's outcome is known (job_id: the bulk's).
    "bulk_completed": (
        "job_id",
        "job_type",
        "total",
        "erased",
        "exported",
        "not_found",
        "ambiguous",
        "failed",
        "rejected",
    ),
}
# Mails about no job: the privacy centre's one-time code, mailed before any job exists to the
# address a subject gave. `code_sealed` is the code sealed for the notifier
# (shared/privacy_codes.py); the notifier opens it into `code` for the template alone.
CODE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "privacy_code": ("challenge_id", "code_sealed", "minutes", "what", "org_name"),
}
# `assignee`: only `to` (a manual task's person or team), never the owners.
Audience = Literal["requester", "owners", "both", "assignee"]
# Context values only the recipient may see (a download link carries its token, a code is a
# secret even sealed): kept out of the audit trail, which owners can read, and out of
# webhook callbacks.
SECRET_CONTEXT_KEYS = frozenset({"link", "status_link", "identities", "code_sealed", "code"})
# The data subject's status page: subject-facing mails carry it when the job has one (the
# line naming it is left out otherwise).
OPTIONAL_CONTEXT_KEYS = frozenset({"status_link"})


@event
class SendEmail(Payload):
    event_type = "SendEmail"
    template: str
    to: str | None = pii(default=None)  # the requester (staff or upstream), when known
    audience: Audience | None = None  # None: the notifier's configuration for the template
    context: dict[str, Any] = {}

    def audit_details(self) -> dict[str, Any]:
        details = super().audit_details()
        details["context"] = {
            k: "(redacted)" if k in SECRET_CONTEXT_KEYS else v for k, v in self.context.items()
        }
        return details


@event
class NotificationSent(Payload):
    event_type = "NotificationSent"
    template: str
    channel: str
    command_event_id: str
    recipient: str = "requester"  # a kind or key ('requester', 'owner:<hash>', 'webhook:<id>')


@event
class NotificationFailed(Payload):
    event_type = "NotificationFailed"
    template: str
    channel: str
    command_event_id: str
    error: str
    recipient: str = "requester"


# --- Configuration changes of the notifier (`lethe webhooks`, `lethe contacts`) -----------


@event
class WebhookRegistered(Payload):
    event_type = "WebhookRegistered"
    webhook_id: str
    host: str  # the URL's host only: paths and queries may carry tokens


@event
class WebhookRemoved(Payload):
    event_type = "WebhookRemoved"
    webhook_id: str


@event
class OwnerContactChanged(Payload):
    event_type = "OwnerContactChanged"
    change: Literal["added", "removed"]
    contact: str  # keyed hash of the address, as in deliveries ('owner:<hash>')
