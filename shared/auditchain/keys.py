"""Which checkpoint keys are trusted, and the signing seed they come from.

Production sets `LETHE_AUDIT_SIGNING_KEY` (or `..._FILE`): base64 of a 32-byte Ed25519 seed,
made with `lethe audit keygen`. In a dev deployment (`LETHE_ENV=dev`), a dev key derived
from the public dev subject hash key is used
(services/auditor/keys.py says more). Whoever verifies the chain (the auditor, intake's web
UI, the CLI) reads the same three settings: `AuditKeySettings`.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field, SecretStr

from shared.auditchain.checkpoints import key_id, public_raw
from shared.settings import LetheSettings


class AuditKeySettings(LetheSettings):
    """The settings of the audit keys, for every service that signs or verifies the chain."""

    audit_signing_key: SecretStr | None = Field(
        None,
        description=(
            "Ed25519 private key (base64 of the 32-byte seed) signing audit checkpoints. "
            "Required by the auditor unless `LETHE_ENV=dev` (then a public dev key is used); "
            "intake verifies with `LETHE_AUDIT_PUBLIC_KEYS` instead."
        ),
    )
    audit_signing_key_file: Path | None = Field(
        None, description="File holding `LETHE_AUDIT_SIGNING_KEY` instead (a mounted secret)."
    )
    audit_public_keys: str = Field(
        "",
        description=(
            "Extra trusted checkpoint public keys (base64, comma separated): retired keys "
            "after a rotation, or the only keys where verification runs without the private "
            "key."
        ),
    )


DEV_SUBJECT_HASH_KEY = LetheSettings.model_fields["subject_hash_key"].default.get_secret_value()


class SigningKeyMissing(RuntimeError):
    pass


def is_dev(settings: AuditKeySettings) -> bool:
    return settings.on_dev_keys


def dev_seed() -> bytes:
    return hashlib.sha256(b"lethe-audit-dev-signing-key:" + DEV_SUBJECT_HASH_KEY.encode()).digest()


def signing_seed(settings: AuditKeySettings) -> tuple[bytes, bool] | None:
    """(seed, is_dev_seed) from the settings; None: no key and not a dev deployment."""
    text = None
    if settings.audit_signing_key is not None:
        text = settings.audit_signing_key.get_secret_value()
    elif settings.audit_signing_key_file is not None:
        text = settings.audit_signing_key_file.read_text()
    if text is not None:
        seed = base64.b64decode(text.strip(), validate=True)
        if len(seed) != 32:
            raise SigningKeyMissing("LETHE_AUDIT_SIGNING_KEY must be base64 of 32 bytes")
        return seed, False
    if is_dev(settings):
        return dev_seed(), True
    return None


def trusted_public_keys(settings: AuditKeySettings) -> dict[str, bytes]:
    """key_id -> raw public key: the signing key's and any listed in LETHE_AUDIT_PUBLIC_KEYS."""
    keys: dict[str, bytes] = {}
    found = signing_seed(settings)
    if found is not None:
        pub = public_raw(Ed25519PrivateKey.from_private_bytes(found[0]).public_key())
        keys[key_id(pub)] = pub
    for part in settings.audit_public_keys.split(","):
        if part.strip():
            pub = base64.b64decode(part.strip(), validate=True)
            keys[key_id(pub)] = pub
    return keys
