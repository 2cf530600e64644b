from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.intake import deadlines
from services.intake.domain import Caller, Refused, RequestIn, plan_job
from shared.events.jobs import ErasureRequested
from shared.events.topics import JOBS_ERASE
from shared.hashing import subject_hash

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
    assert _plan(gdpr).due_at == deadlines.add_months(NOW, 1) == datetime(2026, 2, 1, tzinfo=UTC)
    assert _plan(ccpa).due_at == NOW + timedelta(days=45)


@pytest.mark.parametrize("kind", ["erasure", "export"])
def test_org_scope_needs_owner_and_the_org_name(kind: str) -> None:
    req = RequestIn.model_validate(
        {"type": kind, "scope": "organisation", "confirm_org_name": "Acme"}
    )
    admin = Caller(**{**OWNER.__dict__, "role": "admin"})
    for who in (admin, DELEGATED):
        with pytest.raises(Refused) as err:
            _plan(req, who)
        assert err.value.status == 403
    for confirm in ("acme", None):
        wrong = req.model_copy(update={"confirm_org_name": confirm})
        with pytest.raises(Refused, match="confirm_org_name") as err:
            _plan(wrong)
        assert err.value.status == 422
    job = _plan(req)
    assert job.scope == "organisation" and job.type == kind


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


def test_the_same_person_in_two_orgs_gets_two_unrelated_hashes() -> None:
    """A subject hash is keyed per org: one tenant's audit trail cannot be joined with another's."""
    ids = {"email": "ann@example.com", "user_id": "42"}
    acme, other = subject_hash(b"k", "o1", ids), subject_hash(b"k", "o2", ids)
    assert acme != other and len(acme) == len(other) == 64
    assert subject_hash(b"k", "o1", {"user_id": "42", "email": " ANN@example.com"}) == acme
    # An identity cannot pose as the org line.
    assert subject_hash(b"k", "o1", {"org": "o2", **ids}) != other
    req = RequestIn.model_validate({"type": "erasure", "subject": ids})
    elsewhere = Caller(**{**OWNER.__dict__, "org_id": "o2"})
    assert _plan(req).subject_hash == acme and _plan(req, elsewhere).subject_hash == other
    # The request's fingerprint (the body holds identities) is per org too.
    assert _plan(req).fingerprint == _plan(req).fingerprint != _plan(req, elsewhere).fingerprint


# --- Who may ask (issue 13, item 7) ---------------------------------------------------------

ADMIN = Caller(**{**OWNER.__dict__, "role": "admin"})
DELEGATED = Caller(**{**ADMIN.__dict__, "admins_submit_subject_requests": True})
ERASE = {"type": "erasure", "subject": {"email": "a@b.co"}}


@pytest.mark.parametrize("kind", ["erasure", "export"])
def test_privacy_requests_are_owner_only_by_default(kind: str) -> None:
    req = RequestIn.model_validate({**ERASE, "type": kind})
    with pytest.raises(Refused, match="owner-only") as err:
        _plan(req, ADMIN)
    assert err.value.status == 403 and "delegate" in err.value.reason
    assert _plan(req, DELEGATED).type == kind  # an owner delegated subject-level requests
    assert _plan(req).type == kind


def test_delegation_covers_subject_requests_only() -> None:
    req = RequestIn.model_validate({"type": "export", "scope": "organisation"})
    with pytest.raises(Refused, match="only an owner") as err:
        _plan(req, DELEGATED)
    assert err.value.status == 403


def test_only_owners_shorten_the_recovery_window() -> None:
    short = RequestIn.model_validate({**ERASE, "recovery_window_days": 0})
    with pytest.raises(Refused, match="only an owner may shorten the recovery window") as err:
        _plan(short, DELEGATED)
    assert err.value.status == 403 and "default of 7 days" in err.value.reason
    assert _plan(short).recovery_window_days == 0  # an owner may
    longer = short.model_copy(update={"recovery_window_days": 14})
    assert _plan(longer, DELEGATED).recovery_window_days == 14
    same = short.model_copy(update={"recovery_window_days": None})
    assert _plan(same, DELEGATED).recovery_window_days == 7


def test_a_ccpa_request_carries_its_receipt_confirmation() -> None:
    req = RequestIn.model_validate({**ERASE, "regulation": "ccpa", "notify_email": "dpo@acme.test"})
    job = _plan(req)
    # 1 Jan 2026 is a Thursday: 10 business days later is Thursday 15 January.
    assert job.receipt_due_at == datetime(2026, 1, 15, tzinfo=UTC)
    (notice,) = job.notices
    assert notice.type == "SendEmail" and notice.job_id == job.job_id
    assert notice.payload["template"] == "ccpa_receipt"
    assert notice.payload["to"] == "dpo@acme.test" and notice.payload["audience"] == "requester"
    assert notice.payload["context"]["due_at"] == job.due_at.isoformat()
    # Without a requester address it goes to the org's owner contacts; GDPR has no receipt.
    anon = _plan(req.model_copy(update={"notify_email": None}))
    assert anon.notices[0].payload["audience"] == "owners"
    assert _plan(RequestIn.model_validate(ERASE)).notices == ()


def test_a_gdpr_requester_gets_a_receipt_with_the_due_date() -> None:
    req = RequestIn.model_validate({**ERASE, "notify_email": "dpo@acme.test"})
    job = _plan(req)
    (notice,) = job.notices
    assert notice.payload["template"] == "request_received"
    assert notice.payload["to"] == "dpo@acme.test" and notice.payload["audience"] == "requester"
    assert notice.payload["context"]["due_at"] == job.due_at.isoformat()
    assert notice.payload["context"]["regulation"] == "GDPR"


def test_the_subject_status_link_travels_in_the_job_event_and_its_notices() -> None:
    from services.intake.links import StatusLinks, status_mac
    from shared.events.envelope import safe_details

    links = StatusLinks("https://privacy.acme.test/", b"k2")
    req = RequestIn.model_validate({**ERASE, "regulation": "ccpa", "notify_email": "d@acme.test"})
    job = plan_job(
        req, OWNER, received_at=NOW, hash_key=b"k", channel="http", trace={}, links=links
    )
    want = f"https://privacy.acme.test/status/{job.job_id}/{status_mac(b'k2', job.job_id)}"
    assert job.event.payload_as(ErasureRequested).status_link == want
    assert job.notices[0].payload["context"]["status_link"] == want
    # A bearer link: kept out of the audit trail like the subject's identities.
    assert want not in str(safe_details(job.event))
    assert want not in str(safe_details(job.notices[0]))
    assert _plan(RequestIn.model_validate(ERASE)).event.payload.get("status_link") is None


def test_a_cancel_goes_to_the_worker_that_can_stop_the_job() -> None:
    from services.intake.domain import cancel_command
    from shared.events.jobs import CancelErasure, CancelExport
    from shared.events.topics import JOBS_EXPORT

    payload, topic = cancel_command("export", "asked by the subject")
    assert isinstance(payload, CancelExport) and topic == JOBS_EXPORT
    assert payload.reason == "asked by the subject"
    for kind in ("erasure", "retention"):
        payload, topic = cancel_command(kind, None)
        assert isinstance(payload, CancelErasure) and topic == JOBS_ERASE


@pytest.mark.parametrize(
    "status, says", [("ready", "revoke the download link"), ("expired", "already deleted")]
)
def test_cancelling_a_finished_export_is_refused_with_the_reason(status: str, says: str) -> None:
    from shared import lifecycle

    with pytest.raises(lifecycle.IllegalTransition, match=says) as err:
        lifecycle.check_command("cancel", status, "export")
    assert f"cannot cancel a job that is {status}" in str(err.value)
    lifecycle.check_command("cancel", "running", "export")  # a running export may be
