"""Signing (sections 4.2, 8.8, 10.1): the processor's RSA key, RSA-SHA256 (PKCS#1 v1.5)
signatures over the raw body bytes, and the signed headers under both the OpenDSR and the
older OpenGDPR names."""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# Headers, current names first, then the OpenGDPR names kept working (section 10.1).
SIGNATURE_HEADERS = ("X-OpenDSR-Signature", "X-OpenGDPR-Signature")
DOMAIN_HEADERS = ("X-OpenDSR-Processor-Domain", "X-OpenGDPR-Processor-Domain")


class NotConfigured(RuntimeError):
    pass


def load_signing_key(pem: str | None, path: Path | None) -> rsa.RSAPrivateKey:
    """The processor's RSA private key, from PEM text or a PEM file (a mounted secret)."""
    if pem:
        data = pem.encode()
    elif path is not None:
        data = path.read_bytes()
    else:
        raise NotConfigured(
            "OpenDSR needs the processor's RSA key: set LETHE_OPENDSR_SIGNING_KEY_FILE (a PEM "
            "file) or LETHE_OPENDSR_SIGNING_KEY (the PEM itself)"
        )
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise NotConfigured("the OpenDSR signing key must be an RSA key of at least 2048 bits")
    return key


def new_signing_key_pem() -> bytes:
    """A fresh 2048-bit key (development and tests; production mounts a real one)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def sign(key: rsa.RSAPrivateKey, body: bytes) -> str:
    """RSA-SHA256 (PKCS#1 v1.5) over the raw bytes, base64."""
    return base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()


def verify(public_key: rsa.RSAPublicKey, body: bytes, signature: str) -> bool:
    """What a controller does with a callback (section 8.8, step 4), before parsing it."""
    try:
        public_key.verify(base64.b64decode(signature), body, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def signed_headers(key: rsa.RSAPrivateKey, domain: str, body: bytes) -> dict[str, str]:
    """Both the OpenDSR and the older OpenGDPR header names (section 10.1)."""
    signature = sign(key, body)
    headers = {"Content-Type": "application/json"}
    for name in DOMAIN_HEADERS:
        headers[name] = domain
    for name in SIGNATURE_HEADERS:
        headers[name] = signature
    return headers
