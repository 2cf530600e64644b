"""One settings base for every service: environment variables prefixed `LETHE_`.

The infrastructure endpoints also accept the conventional unprefixed names
(`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`, ...) written by `make up` into `.local/env`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(name: str) -> AliasChoices:
    return AliasChoices(f"LETHE_{name}", name)


DEV_SUBJECT_HASH_KEY = "dev-only-subject-hash-key"


class LetheSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LETHE_", extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS"),
        description="Kafka bootstrap servers, comma separated.",
    )
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/lethe",
        validation_alias=_env("DATABASE_URL"),
        description="Lethe's own PostgreSQL database (schema `lethe`).",
    )
    platform_database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/platform",
        validation_alias=_env("PLATFORM_DATABASE_URL"),
        description="The platform database Lethe erases from and exports.",
    )
    s3_endpoint_url: str | None = Field(
        None,
        validation_alias=_env("S3_ENDPOINT_URL"),
        description="S3 API endpoint; unset means AWS.",
    )
    s3_region: str = Field("us-east-1", description="S3 region.")
    s3_access_key_id: str = Field(
        "test", validation_alias=_env("AWS_ACCESS_KEY_ID"), description="S3 access key id."
    )
    s3_secret_access_key: SecretStr = Field(
        SecretStr("test"),
        validation_alias=_env("AWS_SECRET_ACCESS_KEY"),
        description="S3 secret access key.",
    )
    s3_request_checksum_calculation: Literal["when_supported", "when_required"] = Field(
        "when_required",
        description="botocore checksum mode; some S3-compatible servers reject trailers.",
    )
    exports_bucket: str = Field("lethe-exports", description="Bucket exports are written to.")
    platform_bucket: str = Field(
        "lethe-platform",
        description="Bucket of the platform's media; eraser and exporter refuse to start "
        "without it (they create it only while `LETHE_SUBJECT_HASH_KEY` is the dev default).",
    )
    smtp_host: str = Field(
        "127.0.0.1", validation_alias=_env("SMTP_HOST"), description="SMTP host."
    )
    smtp_port: int = Field(25, validation_alias=_env("SMTP_PORT"), description="SMTP port.")
    subject_hash_key: SecretStr = Field(
        SecretStr(DEV_SUBJECT_HASH_KEY),
        description="HMAC key for subject hashes (audit rows never hold raw identities).",
    )
    master_key: SecretStr = Field(
        SecretStr("ZGV2LW9ubHktbWFzdGVyLWtleS0zMi1ieXRlcyEhISE="),
        description="Base64 of 32 bytes; wraps the per-job AES-256-GCM keys.",
    )
    download_token_key: SecretStr = Field(
        SecretStr("dev-only-download-token-key"),
        description="HMAC key of export download links (shared by exporter and intake).",
    )
    datamap_path: Path = Field(
        Path("deploy/local/sample/datamap.yaml"), description="Data map YAML of the platform."
    )
    otel_exporter: str = Field(
        "none",
        description="Span exporter: `none`, `console` or `otlp` (to OTEL_EXPORTER_OTLP_ENDPOINT).",
    )
    dlq_retries: int = Field(3, description="Handler attempts before a message is dead-lettered.")
    dlq_retry_horizon_seconds: float = Field(
        120,
        gt=0,
        description="Retries of a failing message (backoff doubling, with jitter) never wait "
        "past this many seconds after its first attempt; then it is dead-lettered.",
    )
    ops_host: str = Field(
        "127.0.0.1",
        description="Address of the ops endpoint (/healthz, /readyz, /metrics) of the Kafka-only "
        "services; intake serves them on its HTTP port.",
    )
    ops_port: int = Field(
        0, ge=0, le=65535, description="Port of the ops endpoint (0: no ops endpoint)."
    )
    shutdown_grace_seconds: float = Field(
        25,
        gt=0,
        description="On SIGTERM: stop taking messages, let the current ones finish for most of "
        "this, abandon the rest (redelivered elsewhere), exit within it.",
    )
    kafka_group_prefix: str = Field(
        "",
        description="Prepended to every consumer group id (`lethe-eraser` becomes "
        "`<prefix>lethe-eraser`): two deployments on one cluster, or a test stack, keep apart "
        "their offsets and partitions. Kafka ACLs can then grant groups by prefix.",
    )
    topic_replication_factor: int = Field(
        1,
        ge=1,
        description="Replication factor `lethe topics apply` creates topics with (3 on a cluster,"
        " which makes min.insync.replicas 2).",
    )

    def group(self, name: str) -> str:
        """The consumer group id of `name` in this deployment (`kafka_group_prefix` + name)."""
        return self.kafka_group_prefix + name

    @property
    def on_dev_keys(self) -> bool:
        """Still on the public development subject hash key: a development or test deployment
        (`make up`, the tests). Development conveniences hang off this one rule: the auditor's
        public dev signing key, a missing platform bucket created at start."""
        return self.subject_hash_key.get_secret_value() == DEV_SUBJECT_HASH_KEY
