"""The checkpoint signing key: where it comes from, and which public keys are trusted.

Production sets `LETHE_AUDIT_SIGNING_KEY` (or `..._FILE`): base64 of a 32-byte Ed25519 seed,
made with `lethe audit keygen`. Without one the auditor refuses to start, except in a dev
deployment, recognised by `LETHE_SUBJECT_HASH_KEY` still being its public dev default: there
a dev key derived from that public default is used and every start and every verification
says so. A dev key proves nothing against a database superuser, and neither does a dev
subject hash key protect anyone's identity, so the two go together.
"""

from __future__ import annotations

import base64
import hashlib
import logging

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.auditor.settings import AuditorSettings
from shared.settings import LetheSettings

log = logging.getLogger(__name__)
DEV_SUBJECT_HASH_KEY = LetheSettings.model_fields["subject_hash_key"].default.get_secret_value()


class SigningKeyMissing(RuntimeError):
    pass


def is_dev(settings: AuditorSettings) -> bool:
    return settings.on_dev_keys


def dev_seed() -> bytes:
    return hashlib.sha256(b"lethe-audit-dev-signing-key:" + DEV_SUBJECT_HASH_KEY.encode()).digest()


def _seed(settings: AuditorSettings) -> tuple[bytes, bool] | None:
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


def signing_key(settings: AuditorSettings) -> tuple[Ed25519PrivateKey, bool]:
    """(key, is_dev_key); raises when a production deployment has no key."""
    found = _seed(settings)
    if found is None:
        raise SigningKeyMissing(
            "no audit signing key: set LETHE_AUDIT_SIGNING_KEY (base64 of a 32-byte Ed25519 "
            "seed, from `lethe audit keygen`) or LETHE_AUDIT_SIGNING_KEY_FILE"
        )
    seed, dev = found
    if dev:
        log.warning(
            "audit checkpoints are signed with the PUBLIC DEV KEY (LETHE_SUBJECT_HASH_KEY is "
            "the dev default): not evidence against a database superuser; set "
            "LETHE_AUDIT_SIGNING_KEY in production"
        )
    return Ed25519PrivateKey.from_private_bytes(seed), dev


def public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public: bytes) -> str:
    return hashlib.sha256(public).hexdigest()[:16]


def trusted_public_keys(settings: AuditorSettings) -> dict[str, bytes]:
    """key_id -> raw public key: the signing key's and any listed in LETHE_AUDIT_PUBLIC_KEYS."""
    keys: dict[str, bytes] = {}
    found = _seed(settings)
    if found is not None:
        pub = public_raw(Ed25519PrivateKey.from_private_bytes(found[0]).public_key())
        keys[key_id(pub)] = pub
    for part in settings.audit_public_keys.split(","):
        if part.strip():
            pub = base64.b64decode(part.strip(), validate=True)
            keys[key_id(pub)] = pub
    return keys


def generate_seed() -> str:
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    raw = Ed25519PrivateKey.generate().private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )
    return base64.b64encode(raw).decode()
