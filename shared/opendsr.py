"""OpenDSR (formerly OpenGDPR), what both sides of Lethe speak: statuses, bodies, signing.

Specification: https://github.com/opengdpr/OpenDSR/blob/master/specification.md (v2.0; the
v1 text, named OpenGDPR, is on the `opengdpr_v1` branch). Section links below point there.

- A Lethe job status becomes an OpenDSR `request_status` (section 8).
- Responses (intake) and callbacks (notifier) are signed with the processor's RSA key:
  RSA-SHA256 (PKCS#1 v1.5) over the raw body bytes, base64, in `X-OpenDSR-Signature` (and the
  older `X-OpenGDPR-Signature`), with the domain in `X-OpenDSR-Processor-Domain` (sections
  4.2, 8.3, 8.6, 10.1).

The request side (parsing, mapping identities to a Lethe request) is intake's:
services/intake/opendsr.py. Nothing here touches HTTP, Kafka or the database.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from shared import lifecycle

SPEC = "https://github.com/opengdpr/OpenDSR/blob/master/specification.md"
API_VERSION = "2.0"
SUPPORTED_MAJOR_VERSIONS = ("1", "2")  # 1.x: OpenGDPR; 2.x: OpenDSR (section 3.4)
REQUEST_TYPES = ("erasure", "access", "portability")  # section 6.2

# Headers, current names first, then the OpenGDPR names kept working (section 10.1).
SIGNATURE_HEADERS = ("X-OpenDSR-Signature", "X-OpenGDPR-Signature")
DOMAIN_HEADERS = ("X-OpenDSR-Processor-Domain", "X-OpenGDPR-Processor-Domain")

# (identity_type, identity_format) Lethe can act on -> the subject field it fills. Hashed
# emails are the hex digest of the trimmed, lowercased address; the resolver hashes the
# column in SQL to match them (shared/resolver.py).
IDENTITIES: dict[tuple[str, str], str] = {
    ("email", "raw"): "email",
    ("email", "sha256"): "email_sha256",
    ("email", "sha1"): "email_sha1",
    ("email", "md5"): "email_md5",
    ("controller_customer_id", "raw"): "external_id",
}
# A second raw email goes into a free hashed slot (hashed here), so both are looked for.
# --- statuses (section 8) ---------------------------------------------------------------

RequestStatus = Literal["pending", "in_progress", "completed", "cancelled"]

# Every Lethe job status -> the OpenDSR one (section 8.2 has four). Erasures complete when
# purged, not when merely hidden for the recovery window. Every final Lethe state is final
# for the controller too (a controller polls until then): `completed_with_errors` (purged,
# some items left for people to review) and `not_found` (nothing held: the request is
# answered) complete; `failed` and `ambiguous` (identities of more than one person) did
# nothing and will not go on by themselves, so they read as cancelled. `processor_status`
# in bodies and callbacks says which it is. A restore undoes the request: cancelled.
REQUEST_STATUS: dict[str, RequestStatus] = {
    "pending": "pending",
    "running": "in_progress",
    "soft_deleted": "in_progress",
    "purging": "in_progress",
    "completed": "completed",
    "completed_with_errors": "completed",
    "ready": "completed",
    "expired": "completed",
    "not_found": "completed",
    "failed": "cancelled",
    "ambiguous": "cancelled",
    "cancelled": "cancelled",
    "restored": "cancelled",
}
assert set(REQUEST_STATUS) == set(lifecycle.STATES), "every job status needs an OpenDSR one"
assert all(REQUEST_STATUS[s] in ("completed", "cancelled") for s in lifecycle.FINAL)


def request_status(job_status: str) -> RequestStatus:
    return REQUEST_STATUS[job_status]


RECEIVED = "OpenDSRRequestReceived"  # the receipt: a `pending` callback


def status_after(event_type: str, payload: dict[str, Any]) -> str | None:
    """The job status a progress event moves a job to; None when it moves nothing."""
    if event_type == RECEIVED:
        return "pending"
    move = lifecycle.move_for(event_type, payload)
    if move is None:
        return None
    return move.to or lifecycle.completed_status(payload.get("needs_review", []))


def status_changes(event_type: str) -> bool:
    """Progress events that change a job's state (not the per-batch ones), and the receipt."""
    if event_type == RECEIVED:
        return True
    move = lifecycle.PROGRESS.get(event_type)
    return move is not None and not (move.to is not None and move.to in move.from_states)


# --- bodies (sections 6.3, 7.3, 8.3, 8.6, 9.2) ---------------------------------------------


def rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def dumps(body: dict[str, Any]) -> bytes:
    """The bytes sent (and signed): compact, keys in a fixed order."""
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class JobFacts:
    """What the bodies need to know about a job."""

    controller_id: str
    subject_request_id: str
    job_status: str
    expected_completion_time: datetime
    api_version: str | None
    results_count: int | None = None
    results_url: str | None = None


def status_body(job: JobFacts) -> dict[str, Any]:
    """Section 8.3 (GET of a request), plus `processor_status`, Lethe's own job status."""
    body: dict[str, Any] = {
        "controller_id": job.controller_id,
        "expected_completion_time": rfc3339(job.expected_completion_time),
        "subject_request_id": job.subject_request_id,
        "request_status": request_status(job.job_status),
        "api_version": job.api_version or API_VERSION,
        "processor_status": job.job_status,
    }
    if job.results_url:
        body["results_url"] = job.results_url
    if job.results_count is not None and body["request_status"] == "completed":
        body["results_count"] = job.results_count
    return body


def callback_body(job: JobFacts, url: str) -> dict[str, Any]:
    """Section 8.6: the status body, plus the URL it is sent to."""
    body = status_body(job)
    body["status_callback_url"] = url
    return body


def with_processor_signature(body: dict[str, Any], key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """Sections 7.3 and 9.2: `processor_signature` signs the body as `dumps` writes it without
    that field; the whole body (with it) is then signed again in the header."""
    return {**body, "processor_signature": sign(key, dumps(body))}


def error_body(code: int, message: str, errors: list[str], reason: str) -> dict[str, Any]:
    """Sections 7.6 and 7.7. Messages name fields, never identity values."""
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [
                {
                    "domain": "Validation" if code == 400 else "Request",
                    "reason": reason,
                    "message": e,
                }
                for e in errors
            ],
        }
    }


def discovery(certificate_url: str) -> dict[str, Any]:
    """Section 6.3."""
    return {
        "api_version": API_VERSION,
        "supported_identities": [
            {"identity_type": t, "identity_format": f} for (t, f) in IDENTITIES
        ],
        "supported_subject_request_types": list(REQUEST_TYPES),
        "processor_certificate": certificate_url,
    }


# --- signing (sections 4.2, 8.8) ------------------------------------------------------------


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


# --- the processor certificate (sections 4.1, 6.3) -------------------------------------------


def dev_certificate(key: rsa.RSAPrivateKey, domain: str, *, days: int = 365) -> bytes:
    """A self-signed X.509 certificate for the signing key, issued for `domain` (development
    and tests; production configures a CA-issued one: `LETHE_OPENDSR_CERTIFICATE_FILE`)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(domain))
    except ValueError:
        alt = x509.DNSName(domain)
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    if not names:  # no SAN: the subject's common name (older certificates)
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return names


def _covers(pattern: str, domain: str) -> bool:
    pattern, domain = pattern.lower().rstrip("."), domain.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = domain.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == domain


def check_certificate(pem: bytes, key: rsa.RSAPrivateKey, domain: str) -> x509.Certificate:
    """The processor's certificate, checked: X.509, for the signing key, issued for the
    domain in `X-OpenDSR-Processor-Domain` (section 8.3) and currently valid. `NotConfigured`
    names what does not match."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise NotConfigured(
            "the OpenDSR certificate is not a PEM X.509 certificate "
            "(LETHE_OPENDSR_CERTIFICATE_FILE)"
        ) from None
    public = cert.public_key()
    if (
        not isinstance(public, rsa.RSAPublicKey)
        or public.public_numbers() != key.public_key().public_numbers()
    ):
        raise NotConfigured(
            "the OpenDSR certificate is not for the signing key: its public key differs from "
            "LETHE_OPENDSR_SIGNING_KEY(_FILE)'s"
        )
    names = _names(cert)
    if not any(_covers(n, domain) for n in names):
        raise NotConfigured(
            f"the OpenDSR certificate is issued for {', '.join(names) or 'no name'}, not for "
            f"the processor domain {domain!r} (LETHE_OPENDSR_PROCESSOR_DOMAIN)"
        )
    now = datetime.now(UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise NotConfigured(
            f"the OpenDSR certificate is valid only from {cert.not_valid_before_utc:%Y-%m-%d} "
            f"to {cert.not_valid_after_utc:%Y-%m-%d}"
        )
    return cert


def processor_certificate(
    key: rsa.RSAPrivateKey, domain: str, configured: bytes | None, *, development: bool
) -> bytes:
    """The certificate `/opendsr/cert.pem` publishes: the configured one, checked; in
    development without one, a self-signed one. Production without one is refused."""
    if configured is None:
        if not development:
            raise NotConfigured(
                "OpenDSR needs the processor's X.509 certificate for its signing key and "
                f"domain {domain!r}: set LETHE_OPENDSR_CERTIFICATE_FILE"
            )
        configured = dev_certificate(key, domain)
    check_certificate(configured, key, domain)
    return configured


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
