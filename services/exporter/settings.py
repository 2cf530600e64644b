from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from shared.settings import LetheSettings


class ExporterSettings(LetheSettings):
    # Sealed exports (master key, S3), download links, subject hashes.
    required_secrets: ClassVar[tuple[str, ...]] = (
        "master_key",
        "download_token_key",
        "subject_hash_key",
        "s3_access_key_id",
        "s3_secret_access_key",
    )

    export_part_bytes: int = Field(
        8 * 1024 * 1024, ge=5 * 1024 * 1024, description="Multipart upload part size."
    )
    export_batch_rows: int = Field(2000, ge=1, description="Rows fetched per cursor batch.")
    export_rate_limit_rows: float = Field(
        0, ge=0, description="Upper bound on rows exported per second (0: unlimited)."
    )
    export_sweep_seconds: float = Field(
        60, gt=0, description="How often expired exports are deleted."
    )
    export_link_max_downloads: int = Field(
        5,
        ge=1,
        le=100,
        description="Downloads one emailed export link allows (it works without an API key; "
        "org members downloading with their key do not use them up).",
    )
    public_api_url: str = Field(
        "http://127.0.0.1:8080",
        description="Intake's public base URL, for download links and the data subject's "
        "status link in mails.",
    )
