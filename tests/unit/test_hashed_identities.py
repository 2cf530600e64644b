"""Hashed email identities and OpenDSR's identities, as controllers send them (pure logic)."""

from __future__ import annotations

import hashlib
import json

import pytest
from pydantic import ValidationError

from services.intake import opendsr
from services.intake.domain import RequestIn, SubjectIn
from shared import lifecycle

pytestmark = pytest.mark.unit
EMAIL = "johndoe@example.com"  # the specification's subject (section 7.2)
SHA256 = hashlib.sha256(EMAIL.encode()).hexdigest()


@pytest.mark.parametrize(
    "kind, algo, size",
    [("email_sha256", "sha256", 64), ("email_sha1", "sha1", 40), ("email_md5", "md5", 32)],
)
def test_hashed_emails_are_hex_digests_of_their_length(kind: str, algo: str, size: int) -> None:
    digest = hashlib.new(algo, EMAIL.encode()).hexdigest()
    assert len(digest) == size
    assert SubjectIn.model_validate({kind: digest.upper()}).model_dump()[kind] == digest
    for bad in (digest[:-1], digest + "0", "z" * size, EMAIL):
        with pytest.raises(ValidationError, match=f"{kind}[\\s\\S]*{size} hex characters"):
            SubjectIn.model_validate({kind: bad})


def test_a_request_with_only_a_hashed_email_is_valid() -> None:
    req = RequestIn.model_validate({"type": "export", "subject": {"email_sha256": SHA256}})
    assert req.subject is not None and req.subject.email_sha256 == SHA256
    with pytest.raises(ValidationError, match="email_sha256"):
        RequestIn.model_validate({"type": "erasure", "subject": {}})


def _request(*identities: dict[str, str], **extra: object) -> bytes:
    body = {
        "subject_request_id": "a7551968-d5d6-44b2-9831-815ac9017798",
        "subject_request_type": "erasure",
        "submitted_time": "2018-10-02T15:00:00Z",
        "subject_identities": list(identities),
        "api_version": "2.0",
        "status_callback_urls": ["https://examplecontroller.com/opendsr/callbacks"],
        **extra,
    }
    return json.dumps(body).encode()


def ident(kind: str, value: str, fmt: str = "raw") -> dict[str, str]:
    return {"identity_type": kind, "identity_value": value, "identity_format": fmt}


def _subject(raw: bytes) -> tuple[dict[str, str], str]:
    lethe = opendsr.to_request_in(opendsr.parse_request(raw, "example-processor.com"))
    assert lethe.subject is not None and lethe.reason is not None
    return lethe.subject.model_dump(exclude_none=True), lethe.reason


@pytest.mark.parametrize("fmt", ["sha256", "sha1", "md5"])
def test_hashed_email_formats_map_onto_hashed_kinds(fmt: str) -> None:
    digest = hashlib.new(fmt, EMAIL.encode()).hexdigest()
    subject, _ = _subject(_request(ident("email", digest.upper(), fmt)))
    assert subject == {f"email_{fmt}": digest}
    supported = opendsr.discovery("https://p.example/cert.pem")["supported_identities"]
    assert {"identity_type": "email", "identity_format": fmt} in supported


def test_several_identities_use_what_can_be_resolved_and_ignore_the_rest() -> None:
    # Two emails, raw + sha256, and an advertising id: accepted; the ad id is ignored and
    # named (by type only) in the job's reason; the second email is looked for too (hashed).
    subject, reason = _subject(
        _request(
            ident("email", EMAIL),
            ident("email", SHA256, "sha256"),
            ident("email", "John.Doe@Example.org "),
            ident("ios_advertising_id", "6D92078A-8246-4BA4-AE5B-76104861E7DC"),
        )
    )
    assert subject == {
        "email": EMAIL,
        "email_sha256": SHA256,
        "email_md5": hashlib.md5(b"john.doe@example.org").hexdigest(),
    }
    assert "ios_advertising_id/raw" in reason and "6D92078A" not in reason


def test_a_request_with_nothing_usable_is_refused_naming_why() -> None:
    with pytest.raises(opendsr.Invalid, match=r"ios_advertising_id/raw is not supported"):
        _subject(_request(ident("ios_advertising_id", "6D92078A")))
    with pytest.raises(opendsr.Invalid, match=r"identity_value: not a sha256 hex digest"):
        _subject(_request(ident("email", "not-hex", "sha256")))


def test_unknown_fields_and_null_optionals_are_ignored() -> None:
    raw = _request(
        ident("email", EMAIL) | {"identity_note": "from the app"},
        regulation=None,
        api_version=None,
        status_callback_urls=None,
        extensions=None,
        property_id=None,
        colour="blue",
        request_source="web",
    )
    req = opendsr.parse_request(raw, "example-processor.com")
    assert (req.regulation, req.status_callback_urls, req.api_version) == ("gdpr", [], None)
    with pytest.raises(opendsr.Invalid, match="subject_request_id"):
        opendsr.parse_request(
            raw.replace(b'"a7551968-d5d6-44b2-9831-815ac9017798"', b"null"), "p.example"
        )


def test_every_final_job_state_is_final_for_the_controller() -> None:
    for state in lifecycle.FINAL:
        assert opendsr.request_status(state) in ("completed", "cancelled"), state
    assert opendsr.request_status("not_found") == "completed"
    assert opendsr.request_status("ambiguous") == "cancelled"
    assert opendsr.request_status("failed") == "cancelled"
    assert opendsr.request_status("completed_with_errors") == "completed"
