"""The checkpoint signing key: where it comes from, and which public keys are trusted.

Production sets `LETHE_AUDIT_SIGNING_KEY` (or `..._FILE`): base64 of a 32-byte Ed25519 seed,
made with `lethe audit keygen`. Without one the auditor refuses to start, except in a dev
deployment (`LETHE_ENV=dev`): there a dev key derived from the public dev subject hash key
is used and every start and every verification says so. A dev key proves nothing against a
database superuser, and neither does a dev subject hash key protect anyone's identity, so
the two go together.
"""

from __future__ import annotations

import base64
import logging

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)
from cryptography.hazmat.primitives.serialization import Encoding

from services.auditor.settings import AuditorSettings
from shared.auditchain.checkpoints import key_id, public_raw  # noqa: F401  (re-exported)
from shared.auditchain.keys import (  # noqa: F401  (re-exported)
    DEV_SUBJECT_HASH_KEY,
    SigningKeyMissing,
    dev_seed,
    is_dev,
    signing_seed,
    trusted_public_keys,
)

log = logging.getLogger(__name__)


def signing_key(settings: AuditorSettings) -> tuple[Ed25519PrivateKey, bool]:
    """(key, is_dev_key); raises when a production deployment has no key."""
    found = signing_seed(settings)
    if found is None:
        raise SigningKeyMissing(
            "no audit signing key: set LETHE_AUDIT_SIGNING_KEY (base64 of a 32-byte Ed25519 "
            "seed, from `lethe audit keygen`) or LETHE_AUDIT_SIGNING_KEY_FILE"
        )
    seed, dev = found
    if dev:
        log.warning(
            "audit checkpoints are signed with the PUBLIC DEV KEY (LETHE_ENV=dev): "
            "not evidence against a database superuser; set "
            "LETHE_AUDIT_SIGNING_KEY in production"
        )
    return Ed25519PrivateKey.from_private_bytes(seed), dev


def generate_seed() -> str:
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    raw = Ed25519PrivateKey.generate().private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )
    return base64.b64encode(raw).decode()
