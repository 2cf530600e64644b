"""The protocol's fixed parts (versions, request types, identities) and the bodies Lethe
sends: status, callback, error, discovery (sections 6.3, 7.3, 8.3, 8.6, 9.2)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from shared.opendsr.signing import sign
from shared.opendsr.statuses import request_status

SPEC = "https://github.com/opengdpr/OpenDSR/blob/master/specification.md"
API_VERSION = "2.0"
SUPPORTED_MAJOR_VERSIONS = ("1", "2")  # 1.x: OpenGDPR; 2.x: OpenDSR (section 3.4)
REQUEST_TYPES = ("erasure", "access", "portability")  # section 6.2

# (identity_type, identity_format) Lethe can act on -> the subject field it fills. Hashed
# emails are the hex digest of the trimmed, lowercased address; the resolver hashes the
# column in SQL to match them (shared/resolver/).
IDENTITIES: dict[tuple[str, str], str] = {
    ("email", "raw"): "email",
    ("email", "sha256"): "email_sha256",
    ("email", "sha1"): "email_sha1",
    ("email", "md5"): "email_md5",
    ("controller_customer_id", "raw"): "external_id",
}


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
