"""One-time codes of the privacy centre: made and checked by intake, mailed by the notifier.

Services meet only on Kafka, so the code has to travel to the notifier in a `SendEmail`
command; it never travels in clear. Intake seals it (AES-256-GCM, bound to its challenge id)
under a key both services derive from `LETHE_SUBJECT_HASH_KEY`, which both already hold, with
a label of its own (HKDF), so no new secret is handed out and the derived key serves nothing
else. The Kafka topics, the audit topic, the outbox and dead letters see only the sealed
blob; the audit store not even that (`code_sealed` is a secret context key). Intake stores
the code only as an HMAC, so a copy of the database does not give it away either.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.crypto import open_sealed, seal

DIGITS = 8  # 10^8 codes; with 5 attempts per code a guess succeeds once in 20 million
_LABEL = b"lethe privacy-centre code v1"


def new_code() -> str:
    return f"{secrets.randbelow(10**DIGITS):0{DIGITS}d}"


def code_key(subject_hash_key: bytes) -> bytes:
    """The key sealing codes for the notifier: derived, so it is no other key's twin."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL)
    return hkdf.derive(subject_hash_key)


def code_hash(subject_hash_key: bytes, challenge_id: uuid.UUID, code: str) -> str:
    """What intake stores: keyed, so the 10^8 codes cannot be tried against a stolen row."""
    text = f"privacy-code:{challenge_id}:{code.strip()}".encode()
    return hmac.new(subject_hash_key, text, hashlib.sha256).hexdigest()


def seal_code(key: bytes, challenge_id: uuid.UUID, code: str) -> str:
    blob = seal(key, code.encode(), f"privacy-code:{challenge_id}".encode())
    return base64.urlsafe_b64encode(blob).decode()


def open_code(key: bytes, challenge_id: uuid.UUID, sealed: str) -> str:
    """Raises shared.crypto.CryptoError when the blob was altered or belongs elsewhere."""
    blob = base64.urlsafe_b64decode(sealed.encode())
    return open_sealed(key, blob, f"privacy-code:{challenge_id}".encode()).decode()


def keyed(subject_hash_key: bytes, purpose: str, value: str) -> str:
    """A keyed hash of a value (an address, a client address) for one purpose."""
    text = f"lethe-privacy-{purpose}:{value.strip().lower()}".encode()
    return hmac.new(subject_hash_key, text, hashlib.sha256).hexdigest()[:32]
