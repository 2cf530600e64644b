from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from shared.settings import LetheSettings


class EraserSettings(LetheSettings):
    # Restoration logs (master key), the `hmac` mask, the platform's media (S3).
    required_secrets: ClassVar[tuple[str, ...]] = (
        "master_key",
        "mask_hmac_key",
        "s3_access_key_id",
        "s3_secret_access_key",
    )

    erase_batch_size: int = Field(
        1000, ge=1, le=50_000, description="Rows per erase batch (one chunk, one transaction)."
    )
    erase_rate_limit_rows: float = Field(
        0, ge=0, description="Upper bound on rows erased per second per job (0: unlimited)."
    )
    verify_scan_schemas: list[str] = Field(
        ["public"],
        description="Platform schemas the map-independent verification scans for the "
        "subject's identity values (JSON list).",
    )
    verify_scan_seconds: float = Field(
        30, ge=0, description="Time budget of that scan per verification (0: scan nothing)."
    )
    erase_concurrency: int = Field(
        2, ge=1, le=32, description="Chunks one eraser process works on at once."
    )
    erase_job_concurrency: int = Field(
        4,
        ge=1,
        le=32,
        description="Job commands (plans, restores) one eraser process works on at once, each "
        "from its own partition of the job topic (order per job is kept).",
    )
    erase_inline_small_jobs: bool = Field(
        True,
        description="A job of at most one batch of rows runs its chunks in the planning "
        "handler, wave after wave, instead of through the task topic (same checkpoints).",
    )
    erase_purge_interval_seconds: float = Field(
        60, gt=0, description="How often the purge sweep looks for jobs past their window."
    )
    public_mode: bool = Field(
        False,
        description="Public instance: rows of the `anonymous` retention category older than "
        "`LETHE_PUBLIC_DATA_RETENTION_DAYS` are deleted (off: never).",
    )
    public_data_retention_days: int = Field(
        7, ge=1, le=3650, description="Public mode: age in days at which anonymous data goes."
    )
    mask_hmac_key: SecretStr = Field(
        SecretStr("dev-only-mask-hmac-key"),
        description="Key of the `hmac` mask strategy; at least 32 bytes of key material.",
    )
    connector_attempts: int = Field(
        4,
        ge=1,
        le=20,
        description="Attempts of a connector call (HTTP erasure, one token's revocation) before "
        "it is failed and becomes a review item (docs/datamap.md, Connectors).",
    )
    connector_backoff_seconds: float = Field(
        1.0, ge=0, description="First retry delay of a connector call; doubles each attempt."
    )
    connector_timeout_seconds: float = Field(
        10, gt=0, description="Timeout of one connector POST (resolution to answer)."
    )
    connector_concurrency: int = Field(
        4, ge=1, le=64, description="Token revocations sent at once for one job."
    )
