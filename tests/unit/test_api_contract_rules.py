"""The contract's pure pieces: time-range values, bounded rejections, and schemas that say
what the models accept (a value the schema allows is accepted, one it refuses is refused)."""

from __future__ import annotations

import re

import pytest
from fastapi import HTTPException
from pydantic import ValidationError

from services.intake import opendsr
from services.intake.domain import Rejection, RequestIn
from services.intake.domain.requests import EMAIL_PATTERN, SOMETHING
from services.intake.http.contract import instant
from services.intake.http.opendsr_contract import request_schema

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "value, ok",
    [
        ("2026-01-01T00:00:00Z", True),
        ("2026-01-01T00:00:00.5+02:00", True),
        ("2026-01-01T00:00Z", True),
        ("2026-01-01T00:00", False),  # no zone
        ("0.5", False),  # not a Unix time
        ("1700000000", False),
        ("yesterday", False),
    ],
)
def test_time_range_values_are_rfc3339_with_a_zone(value: str, ok: bool) -> None:
    if ok:
        at = instant(value, "from")
        assert at is not None and at.tzinfo is not None
    else:
        with pytest.raises(HTTPException) as refused:
            instant(value, "from")
        assert refused.value.status_code == 400 and "from" in str(refused.value.detail)


def test_a_rejection_stays_small_whatever_the_message() -> None:
    errors = [f"request.field_{i}: Extra inputs are not permitted" for i in range(40_000)]
    r = Rejection("; ".join(errors), errors, "r" * 5000)
    assert len(r.reason) == 2000 and r.reason.endswith("...")
    assert len(r.errors) == 20 and r.errors[-1] == "... and 39981 more"
    assert r.request_id is not None and len(r.request_id) == 200


@pytest.mark.parametrize(
    "email, ok",
    [
        ("ann@example.com", True),
        ("  ann@example.com\n", True),
        ("ann@example", False),
        ("\x1cann@example.com", False),  # kept by the trim, refused by the check
        ("", False),
    ],
)
def test_the_email_pattern_is_the_models_rule(email: str, ok: bool) -> None:
    assert bool(re.search(EMAIL_PATTERN, email)) is ok
    body = {"type": "erasure", "subject": {"email": email}}
    if ok:
        RequestIn.model_validate(body)
    else:
        with pytest.raises(ValidationError):
            RequestIn.model_validate(body)


@pytest.mark.parametrize("value", ["", "   ", "\u3000\t"])
def test_an_identity_of_only_spaces_is_none(value: str) -> None:
    assert not re.search(SOMETHING, value)
    with pytest.raises(ValidationError):
        RequestIn.model_validate({"type": "erasure", "subject": {"user_id": value}})


@pytest.mark.parametrize("value", ["true", "30", True, 30.5])
def test_numbers_and_flags_are_not_read_from_other_types(value: object) -> None:
    for field in ("link_ttl_hours", "include_media"):
        if field == "include_media" and value is True:
            continue
        with pytest.raises(ValidationError):
            RequestIn.model_validate(
                {"type": "erasure", "subject": {"email": "a@b.co"}, field: value}
            )


def test_the_opendsr_schema_names_the_identities_the_processor_uses() -> None:
    items = request_schema()["properties"]["subject_identities"]["items"]["anyOf"]
    kinds = {
        (i["properties"]["identity_type"]["const"], i["properties"]["identity_format"]["const"])
        for i in items
    }
    assert kinds == set(opendsr.IDENTITIES)


@pytest.mark.parametrize("submitted", [0, "0", "1700000000", True])
def test_an_opendsr_time_is_text(submitted: object) -> None:
    body = {
        "subject_request_id": "a7551968-d5d6-44b2-9831-815ac9017798",
        "subject_request_type": "erasure",
        "submitted_time": submitted,
        "subject_identities": [
            {"identity_type": "email", "identity_value": "a@b.co", "identity_format": "raw"}
        ],
    }
    with pytest.raises(ValidationError):
        opendsr.OpenDSRRequest.model_validate(body)
