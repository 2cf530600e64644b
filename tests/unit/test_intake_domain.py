from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.intake.domain import Caller, Refused, RequestIn, due_at, plan_job
from shared.events.jobs import ErasureRequested
from shared.events.topics import JOBS_ERASE

pytestmark = pytest.mark.unit
OWNER = Caller(
    org_id="o1", org_name="Acme", role="owner", key_id=uuid.uuid4(), recovery_window_days=7
)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _plan(req: RequestIn, caller: Caller = OWNER):  # type: ignore[no-untyped-def]
    return plan_job(
        req,
        caller,
        received_at=NOW,
        hash_key=b"k",
        gdpr_days=30,
        ccpa_days=45,
        channel="http",
        trace={},
    )


@pytest.mark.parametrize(
    "body, message",
    [
        ({"type": "erasure", "subject": {}}, "at least one identity"),
        ({"type": "erasure", "subject": {"email": "nope"}}, "not an email"),
        ({"type": "erasure"}, "subject: required"),
        (
            {"type": "erasure", "subject": {"email": "a@b.co"}, "recovery_window_days": 31},
            "less than or equal to 30",
        ),
        (
            {"type": "erasure", "subject": {"email": "a@b.co"}, "regulation": "custom"},
            "due_in_days",
        ),
        ({"type": "shred", "subject": {"email": "a@b.co"}}, "erasure"),
    ],
)
def test_bad_requests_say_what_is_wrong(body: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RequestIn.model_validate(body)


def test_due_dates_follow_the_regulation() -> None:
    gdpr = RequestIn.model_validate({"type": "erasure", "subject": {"email": "a@b.co"}})
    ccpa = gdpr.model_copy(update={"regulation": "ccpa"})
    assert due_at(NOW, gdpr, 30, 45) == NOW + timedelta(days=30)
    assert due_at(NOW, ccpa, 30, 45) == NOW + timedelta(days=45)


def test_org_erasure_needs_owner_and_the_org_name() -> None:
    req = RequestIn.model_validate(
        {"type": "erasure", "scope": "organisation", "confirm_org_name": "Acme"}
    )
    admin = Caller(**{**OWNER.__dict__, "role": "admin"})
    with pytest.raises(Refused) as err:
        _plan(req, admin)
    assert err.value.status == 403
    wrong = req.model_copy(update={"confirm_org_name": "acme"})
    with pytest.raises(Refused, match="confirm_org_name"):
        _plan(wrong)
    assert _plan(req).scope == "organisation"


def test_a_subject_erasure_becomes_an_erasure_requested_event() -> None:
    req = RequestIn.model_validate(
        {
            "type": "erasure",
            "subject": {"email": "Ann@Example.com"},
            "notify_email": "dpo@acme.test",
        }
    )
    job = _plan(req)
    assert job.topic == JOBS_ERASE and job.event.job_id == job.job_id
    payload = job.event.payload_as(ErasureRequested)
    assert payload.recovery_window_days == 7 and payload.requester_email == "dpo@acme.test"
    assert job.subject_hash and "ann" not in job.subject_hash.lower()
    # The same person, written differently, hashes the same.
    again = _plan(
        RequestIn.model_validate({"type": "erasure", "subject": {"email": " ann@example.COM "}})
    )
    assert again.subject_hash == job.subject_hash
