from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr

from shared.settings import LetheSettings


class NotifierSettings(LetheSettings):
    # Recipient keys of webhooks are subject hashes (the OpenDSR key is optional).
    required_secrets: ClassVar[tuple[str, ...]] = ("subject_hash_key",)

    mail_from: str = Field("Lethe <lethe@localhost>", description="From address of emails.")
    smtp_timeout_seconds: float = Field(15, description="SMTP connect/send timeout.")
    notify_requester_templates: list[str] = Field(
        [
            "erasure_hidden",
            "job_completed",
            "job_completed_review",
            "job_failed",
            "job_not_found",
            "job_ambiguous",
            "export_ready",
            "recovery_ends",
            "deadline_extended",
            "ccpa_receipt",
            "request_received",
            "request_approved",
            "request_denied",
            "linked_request_done",
            "bulk_completed",
        ],
        description="Templates mailed to the requester (JSON list), unless the command says; "
        "a job without a requester address has them mailed to the owner contacts.",
    )
    notify_owner_templates: list[str] = Field(
        [
            "job_completed_review",
            "job_needs_review",
            "job_failed",
            "recovery_ends",
            "deadline_approaching",
            "deadline_passed",
        ],
        description="Templates mailed to each of the organisation's owner contacts (JSON list).",
    )
    notify_retries: int = Field(
        6,
        ge=1,
        description="Delivery attempts of an email (then the dead-letter topic) or of a "
        "webhook (then recorded failed, audited).",
    )
    notify_backoff_seconds: float = Field(
        1.0, description="First retry delay; doubles on each attempt (1, 2, 4, 8, 16 s)."
    )
    webhook_timeout_seconds: float = Field(
        10, gt=0, description="Timeout of one webhook POST (the whole of it, body included)."
    )
    webhook_per_org_concurrency: int = Field(
        2,
        ge=1,
        description="Webhooks sent at once for one organisation (per notifier replica); "
        "organisations take turns, so a slow or dead endpoint delays only its own "
        "organisation's webhooks.",
    )
    webhook_retry_horizon_seconds: float = Field(
        3600,
        gt=0,
        description="A webhook not delivered this long after the state change is given up "
        "(recorded failed, audited), even with attempts left.",
    )
    webhook_max_backoff_seconds: float = Field(
        300, gt=0, description="Longest delay between two attempts of a webhook."
    )
    opendsr_processor_domain: str = Field(
        "localhost",
        description="OpenDSR: this processor's domain, sent in X-OpenDSR-Processor-Domain.",
    )
    opendsr_signing_key: SecretStr | None = Field(
        None, description="OpenDSR: the processor's RSA private key (PEM) signing its answers."
    )
    opendsr_signing_key_file: Path | None = Field(
        None, description="OpenDSR: file holding `LETHE_OPENDSR_SIGNING_KEY` instead."
    )
    opendsr_callback_retries: int = Field(
        12, ge=1, description="OpenDSR: attempts per status callback before it is given up."
    )
    opendsr_callback_backoff_seconds: float = Field(
        1.0, description="OpenDSR: first callback retry delay; doubles on each attempt."
    )
    opendsr_callback_max_backoff_seconds: float = Field(
        600, gt=0, description="OpenDSR: longest delay between two attempts of a callback."
    )
    opendsr_callback_timeout_seconds: float = Field(
        10, gt=0, description="OpenDSR: timeout of one status callback POST."
    )
    opendsr_callback_deadline_seconds: float = Field(
        6 * 3600,
        gt=0,
        description="OpenDSR: a callback not delivered this long after the state change is "
        "given up (recorded failed, audited).",
    )
    opendsr_callback_per_endpoint: int = Field(
        4,
        ge=1,
        description="OpenDSR: callbacks sent at once to one endpoint (scheme://host:port); a "
        "slow or dead endpoint holds only these.",
    )
