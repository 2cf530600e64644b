"""One settings base for every service: environment variables prefixed `LETHE_`.

The infrastructure endpoints also accept the conventional unprefixed names
(`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`, ...) written by `make up` into `.local/env`.

Outside `LETHE_ENV=dev` the settings refuse public default, placeholder and short secrets
(shared/secret_checks.py): each service class lists in `required_secrets` the ones it uses,
which must then be set; any other secret that is set must pass the same rules.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import secret_checks as rules


def _env(name: str) -> AliasChoices:
    return AliasChoices(f"LETHE_{name}", name)


DEV_SUBJECT_HASH_KEY = "dev-only-subject-hash-key"

# Every secret setting (of any service class) and the rule its value must pass.
SECRET_RULES: dict[str, Callable[[str, str | None], str | None]] = {
    "master_key": rules.master_key_problem,
    "subject_hash_key": rules.key_problem,
    "download_token_key": rules.key_problem,
    "mask_hmac_key": rules.key_problem,
    "audit_signing_key": rules.seed_problem,
    "opendsr_signing_key": rules.credential_problem,
    "s3_access_key_id": rules.credential_problem,
    "s3_secret_access_key": rules.credential_problem,
}
DSN_SETTINGS = ("database_url", "platform_database_url")


class UnsafeSecrets(RuntimeError):
    """A production settings object with a default, placeholder or short secret. Not a
    ValueError, so pydantic does not wrap it (its error would print the input: the secrets)."""


class LetheSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LETHE_", extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

    # The secrets this service uses (field names): outside dev each must be set, to a value
    # that passes its rule. The base (the CLI, the migration Job) uses none of them.
    required_secrets: ClassVar[tuple[str, ...]] = ()

    env: Literal["dev", "production"] = Field(
        "production",
        description="`dev` accepts the public development secrets (`make up`, the tests, "
        "compose); otherwise a default, placeholder or short secret stops the service, "
        "naming the variable.",
    )

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
        "test",
        validation_alias=_env("AWS_ACCESS_KEY_ID"),
        description="S3 access key id (intake, eraser, exporter: each its own, README "
        '"Running it safely").',
    )
    s3_secret_access_key: SecretStr = Field(
        SecretStr("test"),
        validation_alias=_env("AWS_SECRET_ACCESS_KEY"),
        description="S3 secret access key (intake, eraser, exporter).",
    )
    s3_request_checksum_calculation: Literal["when_supported", "when_required"] = Field(
        "when_required",
        description="botocore checksum mode; some S3-compatible servers reject trailers.",
    )
    s3_max_attempts: int = Field(
        5,
        ge=1,
        description="Attempts per S3 call (botocore standard retries, backoff between them).",
    )
    exports_bucket: str = Field("lethe-exports", description="Bucket exports are written to.")
    platform_bucket: str = Field(
        "lethe-platform",
        description="Bucket of the platform's media; eraser and exporter refuse to start "
        "without it (they create it only with `LETHE_ENV=dev`).",
    )
    smtp_host: str = Field(
        "127.0.0.1", validation_alias=_env("SMTP_HOST"), description="SMTP host."
    )
    smtp_port: int = Field(25, validation_alias=_env("SMTP_PORT"), description="SMTP port.")
    subject_hash_key: SecretStr = Field(
        SecretStr(DEV_SUBJECT_HASH_KEY),
        description="HMAC key for subject hashes (audit rows never hold raw identities); "
        "intake, exporter, notifier; at least 32 bytes of key material.",
    )
    master_key: SecretStr = Field(
        SecretStr("ZGV2LW9ubHktbWFzdGVyLWtleS0zMi1ieXRlcyEhISE="),
        description="Base64 of 32 bytes; wraps the per-job AES-256-GCM keys (intake, eraser, "
        "exporter).",
    )
    download_token_key: SecretStr = Field(
        SecretStr("dev-only-download-token-key"),
        description="HMAC key of export download links and status links (exporter and "
        "intake); at least 32 bytes of key material.",
    )
    datamap_path: Path = Field(
        Path("deploy/local/sample/datamap.yaml"), description="Data map YAML of the platform."
    )
    otel_exporter: str = Field(
        "none",
        description="Span exporter: `none`, `console` or `otlp` (to OTEL_EXPORTER_OTLP_ENDPOINT).",
    )
    dlq_retries: int = Field(
        3,
        ge=1,
        description="Handler attempts before a message that fails for a reason other than an "
        "outage (a bug, bad data) is dead-lettered. Outages are retried until the horizon.",
    )
    dlq_retry_horizon_seconds: float = Field(
        120,
        gt=0,
        description="A message failing because Postgres, Kafka or S3 is unavailable is retried "
        "(backoff doubling up to 15 s, with jitter) until this many seconds after its first "
        "attempt, then dead-lettered. Consumers' max.poll.interval includes it.",
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
    log_each_message: bool = Field(
        False,
        description="Log FastStream's `Received` and `Processed` line for every Kafka message "
        "at INFO (otherwise at DEBUG, not shown): two lines per message is most of a busy "
        "service's log; progress, metrics and the audit trail tell the same.",
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

    callback_allowed_networks: list[str] = Field(
        [],
        description="Internal networks (JSON list of CIDRs) that OpenDSR status callbacks and "
        "webhooks may reach anyway: development and tests only (`make up` allows loopback). "
        "Empty in production: a callback URL whose host is or resolves to a private, loopback, "
        "link-local, CGNAT, metadata or other non-public address is refused.",
    )

    @model_validator(mode="after")
    def _refuse_unsafe_secrets(self) -> Self:
        if self.env != "dev":
            problems = secret_problems(self)
            if problems:
                raise UnsafeSecrets(
                    "; ".join(problems) + " (LETHE_ENV=dev accepts the public development "
                    "secrets: never in production)"
                )
        return self

    def group(self, name: str) -> str:
        """The consumer group id of `name` in this deployment (`kafka_group_prefix` + name)."""
        return self.kafka_group_prefix + name

    @property
    def on_dev_keys(self) -> bool:
        """A development or test deployment (`LETHE_ENV=dev`: `make up`, the tests), where the
        public development secrets are accepted. Development conveniences hang off this one
        rule: the auditor's public dev signing key, a missing platform bucket created at
        start, a self-signed OpenDSR certificate."""
        return self.env == "dev"


def env_name(cls: type[LetheSettings], field: str) -> str:
    """The variable a field is read from (the conventional unprefixed one where there is)."""
    alias = cls.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[-1])
    return f"LETHE_{field.upper()}"


def _plain(value: Any) -> str | None:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return None if value is None else str(value)


def secret_problems(settings: LetheSettings, extra: tuple[str, ...] = ()) -> list[str]:
    """`VARIABLE reason` for each secret of `settings` that production must refuse; `extra`
    names secrets required on top of the class's `required_secrets`."""
    cls = type(settings)
    problems = []
    for name, rule in SECRET_RULES.items():
        if name not in cls.model_fields:
            continue
        value = _plain(getattr(settings, name))
        default = _plain(cls.model_fields[name].default)
        required = name in cls.required_secrets or name in extra
        if value is None:
            problem = "is not set" if required else None
        elif not required and value == default:
            problem = None  # a secret this service does not use, left alone
        else:
            problem = rule(value, default)
        if problem:
            problems.append(f"{env_name(cls, name)} {problem}")
    for name in DSN_SETTINGS:
        problem = rules.dsn_password_problem(getattr(settings, name))
        if problem:
            problems.append(f"{env_name(cls, name)} {problem}")
    return problems


def require_secrets(settings: LetheSettings, *names: str) -> None:
    """For a command that uses a secret its settings class does not require (the CLI on the
    base settings): refuse it outside dev as a service would."""
    if not settings.on_dev_keys:
        problems = secret_problems(settings, names)
        if problems:
            raise UnsafeSecrets("; ".join(problems))
