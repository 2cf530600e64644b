"""Which events travel on which topic: the source of the AsyncAPI document.

Every registered event type must appear here (a unit test checks), and every event published
to a job topic is also copied to the audit topic.
"""

from __future__ import annotations

from shared.events import topics as t

CATALOGUE: dict[str, tuple[str, ...]] = {
    t.REQUESTS: ("SubmitRequest",),
    t.REQUESTS_REJECTED: ("RequestRejected",),
    t.JOBS_ERASE: (
        "ErasureRequested",
        "CancelErasure",
        "RestoreErasure",
        "RetentionRequested",
    ),
    t.JOBS_EXPORT: ("ExportRequested", "CancelExport"),
    t.ERASE_TASKS: ("EraseChunk",),
    t.PROGRESS: (
        "ErasurePlanned",
        "BatchErased",
        "ErasureSoftDeleted",
        "PurgeStarted",
        "JobCompleted",
        "JobFailed",
        "SubjectNotFound",
        "SubjectAmbiguous",
        "JobCancelled",
        "JobRestored",
        "CommandRefused",
        "BatchExported",
        "ExportReady",
        "ExportExpired",
        "OpenDSRRequestReceived",
    ),
    t.NOTIFICATIONS: ("SendEmail",),
    t.AUDIT: (
        "DuplicateIgnored",
        "CancelledErasurePurged",
        "NotificationSent",
        "NotificationFailed",
        "WebhookRegistered",
        "WebhookRemoved",
        "OwnerContactChanged",
        "OpenDSRCallbackSent",
        "OpenDSRCallbackFailed",
        "CancelRequested",
        "RestoreRequested",
        "DeadlineExtended",
        "OrgDelegationChanged",
        "AuthFailed",
        "AuthFailuresCounted",
        "DownloadAttempted",
        "LinkRevoked",
        "AuditPruned",
        "SigningKeyChanged",
        "RetentionPolicyChanged",
        "RetentionCleanupRan",
    ),
    t.DLQ: (),
}
