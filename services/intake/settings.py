from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr

from services.intake.links import StatusLinks
from shared.auditchain.keys import AuditKeySettings


class IntakeSettings(AuditKeySettings):  # the web UI verifies the audit chain
    # Export downloads (S3, master key), download and status links, subject hashes. Not the
    # audit signing key: intake verifies with LETHE_AUDIT_PUBLIC_KEYS.
    required_secrets: ClassVar[tuple[str, ...]] = (
        "master_key",
        "download_token_key",
        "subject_hash_key",
        "s3_access_key_id",
        "s3_secret_access_key",
    )

    http_host: str = Field("127.0.0.1", description="Address intake's HTTP API listens on.")
    http_port: int = Field(8080, description="Port of intake's HTTP API.")
    public_api_url: str = Field(
        "http://127.0.0.1:8080",
        description="Intake's public base URL, for download links and the data subject's "
        "status link in mails.",
    )
    business_holidays: list[date] = Field(
        [],
        description="Days that are not business days (JSON list of dates), for the CCPA "
        "receipt confirmation due within 10 business days (11 CCR 7021(a)).",
    )
    submit_rate_per_minute: int = Field(
        120, ge=1, description="Submissions per API key per minute."
    )
    submit_burst: int = Field(30, ge=1, description="Submissions per API key allowed at once.")
    max_body_bytes: int = Field(
        65536,
        ge=1024,
        description="Largest request body accepted (counted as it arrives, chunked too).",
    )
    max_bulk_body_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="Largest body of a bulk request (`POST /v1/bulk-requests`, the web UI's "
        "CSV upload): room for 5,000 subjects.",
    )
    sse_max_per_key: int = Field(
        10, ge=1, description="Live progress streams one API key (web session) may hold open."
    )
    sse_max_per_status_link: int = Field(
        3, ge=1, description="Live progress streams one data subject's status link may hold open."
    )
    auth_failure_window_seconds: int = Field(
        60,
        ge=1,
        description="Requests refused without a known key are audited as one count per source "
        "and window of this length.",
    )
    auth_failure_max_sources: int = Field(
        1000,
        ge=1,
        description="Sources counted apart per window (the rest together as `*`): bounds the "
        "audit events refused requests make.",
    )
    outbox_relay_enabled: bool = Field(
        True, description="Run the outbox relay in this replica (any number may run it)."
    )
    outbox_poll_seconds: float = Field(0.5, description="Outbox relay polling interval.")
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
    opendsr_certificate_file: Path | None = Field(
        None,
        description="OpenDSR: the processor's X.509 certificate (PEM) for the signing key, "
        "issued for `LETHE_OPENDSR_PROCESSOR_DOMAIN`; served at /opendsr/cert.pem and checked "
        "at start. Required in production; unset in development: a self-signed one.",
    )
    opendsr_certificate_url: str | None = Field(
        None,
        description="OpenDSR: URL discovery names as `processor_certificate`; unset: "
        "/opendsr/cert.pem on this API.",
    )
    opendsr_allow_insecure_callbacks: bool = Field(
        False,
        description="OpenDSR: accept http:// and internal-address callback URLs "
        "(development and tests only).",
    )
    retention_schedule: str = Field(
        "0 3 * * *",
        description="When the retention run happens (cron: minute hour day month weekday, UTC).",
    )
    scheduler_enabled: bool = Field(
        True,
        description="Run the scheduler (retention jobs, deadline reminders) in this replica; "
        "one replica leads at a time (Postgres advisory lock).",
    )
    scheduler_poll_seconds: float = Field(
        30, gt=0, description="How often the scheduler checks for a due run and reminders."
    )
    deadline_reminder_days: int = Field(
        7, ge=1, le=60, description="Remind the requester this many days before a job is due."
    )
    manual_task_reminder_hours: float = Field(
        72,
        gt=0,
        description="A manual task (docs/datamap.md, Connectors) still open this long after it "
        "was opened or last reminded: its assignee is mailed again.",
    )
    public_mode: bool = Field(
        False,
        description="Public instance: rows of the `anonymous` retention category older than "
        "`LETHE_PUBLIC_DATA_RETENTION_DAYS` are deleted (off: never).",
    )
    public_data_retention_days: int = Field(
        7, ge=1, le=3650, description="Public mode: age in days at which anonymous data goes."
    )
    privacy_code_ttl_seconds: int = Field(
        900,
        ge=60,
        le=86400,
        description="Privacy centre: how long a mailed one-time code works (15 min).",
    )
    privacy_code_max_attempts: int = Field(
        5, ge=1, le=20, description="Privacy centre: wrong codes allowed before a code dies."
    )
    privacy_codes_per_address: int = Field(
        3,
        ge=1,
        description="Privacy centre: codes mailed to one address (any org) per "
        "`LETHE_PRIVACY_CODE_WINDOW_SECONDS`.",
    )
    privacy_codes_per_source: int = Field(
        20,
        ge=1,
        description="Privacy centre: codes asked for from one client address per window.",
    )
    privacy_code_window_seconds: int = Field(
        3600, ge=60, description="Privacy centre: the window of both code rate limits."
    )

    def status_links(self) -> StatusLinks:
        """The subject status links (keyed with `LETHE_DOWNLOAD_TOKEN_KEY`, as the web UI)."""
        return StatusLinks(self.public_api_url, self.download_token_key.get_secret_value().encode())
