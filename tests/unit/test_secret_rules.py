"""Production settings refuse public default, placeholder and short secrets, naming the
variable; `LETHE_ENV=dev` accepts them. Each service requires exactly the secrets it uses."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from services.auditor.settings import AuditorSettings
from services.eraser.settings import EraserSettings
from services.exporter.settings import ExporterSettings
from services.intake.settings import IntakeSettings
from services.notifier.settings import NotifierSettings
from shared.secret_checks import is_placeholder, key_material
from shared.settings import (
    SECRET_RULES,
    LetheSettings,
    UnsafeSecrets,
    env_name,
    require_secrets,
)
from tests.production import PRODUCTION_SECRETS

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
SERVICES: dict[str, type[LetheSettings]] = {
    "intake": IntakeSettings,
    "eraser": EraserSettings,
    "exporter": ExporterSettings,
    "notifier": NotifierSettings,
    "auditor": AuditorSettings,
}


def production(cls: type[LetheSettings], **kw: str) -> LetheSettings:
    return cls(**{"env": "production", **PRODUCTION_SECRETS, **kw})


def refusal(cls: type[LetheSettings], **kw: str) -> str:
    with pytest.raises(UnsafeSecrets) as err:
        production(cls, **kw)
    return str(err.value)


@pytest.mark.parametrize("cls", SERVICES.values(), ids=SERVICES.keys())
def test_real_secrets_start_every_service(cls: type[LetheSettings]) -> None:
    assert production(cls).env == "production"
    assert not production(cls).on_dev_keys


@pytest.mark.parametrize("cls", SERVICES.values(), ids=SERVICES.keys())
def test_without_lethe_env_dev_a_required_default_is_refused_naming_it(
    cls: type[LetheSettings],
) -> None:
    for name in cls.required_secrets:
        kept = {k: v for k, v in PRODUCTION_SECRETS.items() if k != name}
        with pytest.raises(UnsafeSecrets) as err:
            cls(env="production", **kept)
        assert f"{env_name(cls, name)} is the public development default" in str(err.value)


@pytest.mark.parametrize("cls", SERVICES.values(), ids=SERVICES.keys())
def test_dev_accepts_the_public_defaults(cls: type[LetheSettings]) -> None:
    s = cls(env="dev")
    assert s.on_dev_keys


def test_the_default_is_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LETHE_ENV")
    with pytest.raises(UnsafeSecrets, match="LETHE_MASTER_KEY is the public development"):
        EraserSettings()
    monkeypatch.setenv("LETHE_ENV", "dev")
    assert EraserSettings().on_dev_keys


@pytest.mark.parametrize(
    "value",
    [
        "CHANGE-ME",
        "change_me_please",
        "CHANGE-ME-base64-of-32-bytes-0123456789abcdef",
        "your-key-here-0123456789abcdef0123456789",
        "example-key-0123456789abcdef0123456789ab",
    ],
)
def test_placeholders_are_refused(value: str) -> None:
    text = refusal(IntakeSettings, subject_hash_key=value)
    assert "LETHE_SUBJECT_HASH_KEY is a placeholder" in text


@pytest.mark.parametrize(
    ("value", "got"),
    [
        ("short-but-real", 14),
        ("k!" * 15 + "k", 31),  # neither hex nor base64: its characters count
        ("ab" * 31, 31),  # hex: 31 bytes of key material, not 62 characters
        (base64.b64encode(os.urandom(16)).decode(), 16),  # `openssl rand -base64 16`
    ],
    # Named, not by value: a random value would differ between pytest-xdist workers.
    ids=["short", "not-encoded", "hex", "base64"],
)
def test_short_keys_are_refused(value: str, got: int) -> None:
    text = refusal(ExporterSettings, download_token_key=value)
    assert f"LETHE_DOWNLOAD_TOKEN_KEY is too short ({got} bytes of key material" in text


def test_key_material_counts_decoded_bytes() -> None:
    assert len(key_material(os.urandom(32).hex())) == 32
    assert len(key_material(base64.b64encode(os.urandom(32)).decode())) == 32
    assert len(key_material(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))) == 32
    assert key_material("a passphrase with spaces in it, long enough") == (
        b"a passphrase with spaces in it, long enough"
    )


def test_the_master_key_must_be_base64_of_32_bytes() -> None:
    assert "LETHE_MASTER_KEY is not base64" in refusal(EraserSettings, master_key="not base64!")
    short = base64.b64encode(os.urandom(16)).decode()
    assert "LETHE_MASTER_KEY must be base64 of 32 bytes, got 16" in refusal(
        EraserSettings, master_key=short
    )


def test_every_problem_is_named_at_once() -> None:
    text = refusal(EraserSettings, master_key="CHANGE-ME", mask_hmac_key="short")
    assert "LETHE_MASTER_KEY is a placeholder" in text
    assert "LETHE_MASK_HMAC_KEY is too short" in text
    assert "LETHE_ENV=dev" in text  # the way out for development, said once


def test_the_message_holds_no_secret_value() -> None:
    secret = "a-leaked-value-that-is-too-short"[:20]
    assert secret not in refusal(IntakeSettings, download_token_key=secret)


def test_s3_credentials_may_not_be_the_defaults_or_placeholders() -> None:
    assert "AWS_SECRET_ACCESS_KEY is the public development default" in refusal(
        EraserSettings, s3_secret_access_key="test"
    )
    assert "AWS_ACCESS_KEY_ID is a placeholder" in refusal(
        IntakeSettings, s3_access_key_id="CHANGE-ME"
    )


def test_database_urls_may_not_carry_a_placeholder_password() -> None:
    url = "postgresql://lethe:CHANGE-ME@db.internal:5432/lethe"
    assert "DATABASE_URL has a placeholder password" in refusal(NotifierSettings, database_url=url)
    query = "postgresql://db.internal/platform?user=x&password=changeme"
    assert "PLATFORM_DATABASE_URL has a placeholder password" in refusal(
        EraserSettings, platform_database_url=query
    )
    # No password at all (certificates, IAM, .pgpass) is not refused.
    assert production(NotifierSettings, database_url="postgresql://lethe@db/lethe")


def test_a_secret_a_service_does_not_use_may_stay_unset_but_not_be_a_placeholder() -> None:
    auditor = AuditorSettings(env="production")  # no master key, hash or token key
    assert "master_key" not in AuditorSettings.required_secrets
    assert auditor.master_key.get_secret_value()  # the unused default, never read
    assert "LETHE_MASTER_KEY is a placeholder" in refusal(AuditorSettings, master_key="CHANGE-ME")


def test_the_audit_signing_key_is_checked_when_set() -> None:
    assert "LETHE_AUDIT_SIGNING_KEY is a placeholder" in refusal(
        AuditorSettings, audit_signing_key="CHANGE-ME-base64-ed25519-seed"
    )
    seed = base64.b64encode(os.urandom(32)).decode()
    assert production(AuditorSettings, audit_signing_key=seed)


def test_the_opendsr_key_may_not_be_a_placeholder() -> None:
    assert "LETHE_OPENDSR_SIGNING_KEY is a placeholder" in refusal(
        NotifierSettings, opendsr_signing_key="-----BEGIN PRIVATE KEY----- CHANGE-ME"
    )


def test_require_secrets_refuses_a_default_the_base_settings_leave_alone() -> None:
    base = LetheSettings(env="production")  # the CLI and the migration Job use no key
    with pytest.raises(UnsafeSecrets, match="LETHE_SUBJECT_HASH_KEY is the public development"):
        require_secrets(base, "subject_hash_key")
    require_secrets(LetheSettings(env="dev"), "subject_hash_key")
    require_secrets(LetheSettings(env="production", **PRODUCTION_SECRETS), "subject_hash_key")


def test_placeholder_words_do_not_match_random_keys() -> None:
    for _ in range(2000):
        assert not is_placeholder(base64.b64encode(os.urandom(32)).decode())


def test_every_secret_field_has_a_rule() -> None:
    fields = set()
    for cls in SERVICES.values():
        for name, field in cls.model_fields.items():
            if "SecretStr" in str(field.annotation):
                fields.add(name)
    assert fields <= set(SECRET_RULES), fields - set(SECRET_RULES)


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_requires_every_key_its_code_reads(service: str) -> None:
    """A service that starts reading a key must require it, or production would run on the
    public default unnoticed."""
    cls = SERVICES[service]
    text = "\n".join(p.read_text() for p in (REPO / "services" / service).rglob("*.py"))
    read = set(re.findall(r"\.(\w+_key)\.get_secret_value\(\)", text))
    if "s3_client(" in text:  # shared/storage.py reads the S3 credentials
        read |= {"s3_access_key_id", "s3_secret_access_key"}
    optional = {"opendsr_signing_key", "audit_signing_key"}  # optional, or checked at start
    assert read - optional <= set(cls.required_secrets), read - set(cls.required_secrets)


@pytest.mark.parametrize("service", ["eraser", "intake"])
def test_a_service_process_refuses_to_start_naming_the_variable(service: str) -> None:
    """What an operator sees: exit 2 and one line, before any connection is tried."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LETHE_", "AWS_"))}
    env |= {"LETHE_ENV": "production", "LETHE_MASTER_KEY": "CHANGE-ME-base64-of-32-bytes"}
    done = subprocess.run(
        [sys.executable, "-m", f"services.{service}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "cannot start: LETHE_MASTER_KEY is a placeholder" in done.stderr
    assert "Traceback" not in done.stderr and "CHANGE-ME" not in done.stderr
