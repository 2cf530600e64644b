"""OpenDSR (formerly OpenGDPR), the processor side: pure mapping, validation and signing.

Specification: https://github.com/opengdpr/OpenDSR/blob/master/specification.md (v2.0; the
v1 text, named OpenGDPR, is on the `opengdpr_v1` branch). Section links below point there.

- A request (section 7.1) becomes Lethe's `RequestIn`: `erasure` -> an erasure, `access` and
  `portability` -> an export; identities (section 5) map onto the subject's fields.
- A Lethe job status becomes an OpenDSR `request_status` (section 8).
- Responses and callbacks are signed with the processor's RSA key: RSA-SHA256 (PKCS#1 v1.5)
  over the raw body bytes, base64, in `X-OpenDSR-Signature` (and the older
  `X-OpenGDPR-Signature`), with the domain in `X-OpenDSR-Processor-Domain` (sections 4.2, 8.3,
  8.6, 10.1).

Nothing here touches HTTP, Kafka or the database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from services.intake.domain import HASHED_EMAIL as HASHED
from services.intake.domain import RequestIn
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
SPARE_EMAIL_SLOTS = (("email_sha256", "sha256"), ("email_md5", "md5"), ("email_sha1", "sha1"))
IDENTITY_TYPES = (  # section 5.1
    "controller_customer_id",
    "android_advertising_id",
    "android_id",
    "email",
    "fire_advertising_id",
    "ios_advertising_id",
    "ios_vendor_id",
    "microsoft_advertising_id",
    "microsoft_publisher_id",
    "roku_publisher_id",
    "roku_advertising_id",
)
IDENTITY_FORMATS = ("raw", "sha1", "md5", "sha256")  # section 5.2

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SPACES = re.compile(r"\s*")
_HEX = re.compile(r"^[0-9a-f]+$")


# --- the request (section 7.1) ----------------------------------------------------------


class Identity(BaseModel):
    """Section 5.3. Types and formats are checked when mapped (`to_request_in`): one this
    processor cannot use is ignored when another in the request is usable."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    identity_type: str = Field(max_length=100)
    identity_value: str = Field(min_length=1, max_length=320)
    identity_format: str = Field(max_length=20)


class OpenDSRRequest(BaseModel):
    """An OpenDSR request as a controller sends it (section 7.1.1). Unknown fields are
    ignored (a newer minor version may add some; section 3.4), and so is `null` in an
    optional field (`parse_request`)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    subject_request_id: str
    subject_request_type: Literal["erasure", "access", "portability"]
    submitted_time: AwareDatetime
    subject_identities: list[Identity] = Field(default_factory=list, max_length=20)
    # REQUIRED since 2.0, yet the 2.0 example itself omits it, and 1.x never had it: gdpr.
    regulation: Literal["gdpr", "ccpa"] = "gdpr"
    api_version: str | None = Field(None, max_length=20)
    status_callback_urls: list[str] = Field(default_factory=list, max_length=10)
    extensions: dict[str, dict[str, Any]] | None = None
    property_id: str | int | None = None  # a top-level field up to 0.1.x, later an extension

    @field_validator("subject_request_id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not UUID4.match(v):
            raise ValueError("must be a lowercase UUID v4 (section 1.1)")
        return v

    @field_validator("api_version")
    @classmethod
    def _version(cls, v: str | None) -> str | None:
        if v is not None and v.split(".")[0] not in SUPPORTED_MAJOR_VERSIONS:
            raise ValueError(f"unsupported; this processor speaks {API_VERSION} (and 1.x)")
        return v

    @field_validator("status_callback_urls")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        for url in v:
            if not re.match(r"^https?://[^\s/]+", url) or len(url) > 2000:
                raise ValueError("each must be an http(s) URL")
        if len(set(v)) != len(v):
            raise ValueError("a URL is listed twice")
        return v

    @model_validator(mode="after")
    def _identities(self) -> OpenDSRRequest:
        if not self.subject_identities:
            raise ValueError("subject_identities: give at least one identity (section 5.3)")
        return self


class Invalid(Exception):
    """A request the processor refuses (400), each error naming the field."""

    def __init__(self, message: str, errors: list[str]) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors


def _next_char(text: str, start: int) -> str:
    m = _SPACES.match(text, start)
    end = m.end() if m else start
    return text[end : end + 1]


def loads_lenient(raw: bytes) -> Any:
    """JSON, tolerating trailing commas: the specification's own request example (7.2) has
    one after `"property_id": "123456"`, and a request made exactly as shown must work."""
    try:
        return json.loads(raw)
    except ValueError as first:
        text = raw.decode("utf-8", errors="strict") if raw else ""
        out: list[str] = []
        in_string = escaped = False
        for i, ch in enumerate(text):
            if in_string:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch == "," and _next_char(text, i + 1) in ("}", "]"):
                continue  # a trailing comma
            out.append(ch)
        try:
            return json.loads("".join(out))
        except ValueError:
            raise first from None


def _field_errors(exc: ValidationError) -> list[str]:
    out = []
    for e in exc.errors():
        where = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in e["loc"])
        where = where.replace(".[", "[")
        msg = e["msg"].removeprefix("Value error, ")
        out.append(f"{where}: {msg}" if where and not msg.startswith(where) else msg)
    return out


def _without_optional_nulls(data: dict[str, Any]) -> dict[str, Any]:
    """`null` in an optional field means "not given" (controllers serialise it so)."""
    fields = OpenDSRRequest.model_fields
    out = {k: v for k, v in data.items() if not (v is None and not _required(fields.get(k)))}
    idents = out.get("subject_identities")
    if isinstance(idents, list):
        out["subject_identities"] = [
            {k: v for k, v in i.items() if v is not None} if isinstance(i, dict) else i
            for i in idents
        ]
    return out


def _required(info: Any) -> bool:
    return bool(info is not None and info.is_required())


def check_callback_urls(urls: list[str]) -> list[str]:
    """Problems with callback URLs a production processor should not call: plain http, or a
    host that is a loopback, private or link-local address (the notifier would otherwise
    POST wherever an API key asks, inside our own network too)."""
    errors = []
    for i, url in enumerate(urls):
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        try:
            ip = ipaddress.ip_address(host)
            internal = ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved
        except ValueError:
            internal = host == "localhost" or host.endswith((".localhost", ".internal", ".local"))
        if parts.scheme != "https":
            errors.append(f"status_callback_urls[{i}]: must be an https URL (section 3.3)")
        elif internal:
            errors.append(f"status_callback_urls[{i}]: must not point at an internal address")
    return errors


def parse_request(
    raw: bytes, processor_domain: str, *, allow_insecure_callbacks: bool = False
) -> OpenDSRRequest:
    """The request body, validated; `Invalid` names every problem's field."""
    if not raw.strip():
        raise Invalid("the request body is empty", ["body: a JSON object is required"])
    try:
        data = loads_lenient(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid("the request body is not JSON", [f"body: not JSON ({exc})"]) from None
    if not isinstance(data, dict):
        raise Invalid("the request body must be a JSON object", ["body: not an object"])
    data = _without_optional_nulls(data)
    try:
        req = OpenDSRRequest.model_validate(data)
    except ValidationError as exc:
        errors = _field_errors(exc)
        raise Invalid(errors[0], errors) from None
    if not allow_insecure_callbacks and (errors := check_callback_urls(req.status_callback_urls)):
        raise Invalid(errors[0], errors)
    ours = (req.extensions or {}).get(processor_domain) or {}
    if req.property_id is None and ours.get("property_id") is not None:
        req = req.model_copy(update={"property_id": ours["property_id"]})
    return req


@dataclass(frozen=True)
class Mapped:
    """The subject's fields; the identities left aside (types only, never values); and the
    errors that refuse the request (a malformed value, or nothing usable)."""

    subject: dict[str, str]
    ignored: list[str]
    errors: list[str]


def _unusable(where: str, ident: Identity) -> str:
    if ident.identity_type not in IDENTITY_TYPES:
        return f"{where}.identity_type: unknown identity_type {ident.identity_type[:40]!r}"
    if ident.identity_format not in IDENTITY_FORMATS:
        return (
            f"{where}.identity_format: unknown identity_format {ident.identity_format[:20]!r}; "
            f"one of {', '.join(IDENTITY_FORMATS)}"
        )
    return (
        f"{where}: {ident.identity_type}/{ident.identity_format} is not supported by this "
        "processor (see GET /opendsr/discovery)"
    )


def _malformed(where: str, target: str, ident: Identity) -> str | None:
    value = ident.identity_value
    if target == "email" and not _EMAIL.match(value):
        return f"{where}.identity_value: not an email address"
    if target in HASHED and (len(value) != HASHED[target] or not _HEX.match(value.lower())):
        return (
            f"{where}.identity_value: not a {ident.identity_format} hex digest "
            f"({HASHED[target]} hex characters)"
        )
    if target == "external_id" and len(value) > 200:
        return f"{where}.identity_value: longer than 200 characters"
    return None


def map_identities(identities: list[Identity]) -> Mapped:
    """Section 5 -> the subject's fields. Identities this processor cannot use (an ad id, an
    unknown type or format) are ignored as long as one is usable; a second raw email takes a
    free hashed slot, so both addresses are looked for; a malformed value of a usable kind is
    an error naming it. One subject per request: the resolver refuses identities of two
    people (`ambiguous`)."""
    subject: dict[str, str] = {}
    ignored: list[str] = []
    unusable: list[str] = []
    errors: list[str] = []
    for i, ident in enumerate(identities):
        where = f"subject_identities[{i}]"
        kind = f"{ident.identity_type}/{ident.identity_format}"
        target = IDENTITIES.get((ident.identity_type, ident.identity_format))
        if target is None:
            unusable.append(_unusable(where, ident))
            ignored.append(kind)
            continue
        if problem := _malformed(where, target, ident):
            errors.append(problem)
            continue
        value = ident.identity_value.lower() if target in HASHED else ident.identity_value
        if subject.get(target, value) == value:
            subject[target] = value
            continue
        spare = next((slot for slot, _ in SPARE_EMAIL_SLOTS if slot not in subject), None)
        if target == "email" and spare is not None:
            subject[spare] = hash_email(value, spare.removeprefix("email_"))
        else:
            ignored.append(f"{kind} (another one)")
    if not subject and not errors:
        errors = unusable or ["subject_identities: give at least one identity (section 5.3)"]
    return Mapped(subject, ignored, errors)


def hash_email(email: str, algo: str) -> str:
    """How a controller hashes an email (section 5.2): hex digest of the trimmed, lowercased
    address."""
    return hashlib.new(algo, email.strip().lower().encode()).hexdigest()


def to_request_in(req: OpenDSRRequest) -> RequestIn:
    """Section 7.1 -> Lethe's request, from the identities this processor can use."""
    mapped = map_identities(req.subject_identities)
    if mapped.errors:
        raise Invalid(mapped.errors[0], mapped.errors)
    kind = req.subject_request_type
    reason = f"OpenDSR {kind} request, submitted {req.submitted_time.isoformat()}"
    if mapped.ignored:
        reason += f"; identities ignored: {', '.join(mapped.ignored)}"
    try:
        return RequestIn(
            type="erasure" if kind == "erasure" else "export",
            subject=mapped.subject,
            regulation=req.regulation,
            request_id=req.subject_request_id,
            reason=reason,
            # Portability means a machine-readable copy (GDPR Art. 20); access, a readable one.
            format="json" if kind == "portability" else "both",
        )
    except ValidationError as exc:  # Lethe's own rules, should the two ever disagree
        errors = _field_errors(exc)
        raise Invalid(errors[0], errors) from None


def fingerprint(req: OpenDSRRequest, key: bytes) -> str:
    """Keyed (the body holds identities): what was asked, to tell a repeat from a conflict."""
    body = json.dumps(req.model_dump(mode="json"), sort_keys=True).encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


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
