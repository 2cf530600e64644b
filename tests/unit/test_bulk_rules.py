"""Bulk request rules, pure: the 5,000 limit (counted before any row is read), a bad row
rejected on its own, the CSV form's list, outcomes from member events, the summary mail."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.intake.domain import RequestIn
from services.intake.domain import bulk as rules

pytestmark = pytest.mark.unit


def test_more_than_5000_subjects_is_refused_naming_the_limit() -> None:
    with pytest.raises(ValidationError) as exc:
        rules.BulkRequestIn.model_validate(
            {"type": "erasure", "subjects": [{"user_id": str(i)} for i in range(5001)]}
        )
    message = rules.is_too_many(exc.value)
    assert message is not None and "5,000" in message and "5,001" in message
    ok = rules.BulkRequestIn.model_validate(
        {"type": "erasure", "subjects": [{"user_id": str(i)} for i in range(5000)]}
    )
    assert len(ok.subjects) == 5000


def test_each_row_is_a_single_request_or_its_reason() -> None:
    body = rules.BulkRequestIn.model_validate(
        {"type": "export", "subjects": [{"email": "a@b.co"}], "notify_email": "dpo@x.co"}
    )
    member = body.member({"email": " ann@example.com ", "user_id": "7"})
    assert isinstance(member, RequestIn)
    assert member.subject is not None and member.subject.email == "ann@example.com"
    assert member.notify_email is None and member.type == "export"  # the summary, not per row
    assert "email" in str(body.member({"email": "nope"}))
    assert "shoe_size" in str(body.member({"shoe_size": "9"}))
    assert "identity" in str(body.member({}))


def test_custom_regulation_needs_its_days_once_for_the_list() -> None:
    with pytest.raises(ValidationError, match="due_in_days"):
        rules.BulkRequestIn.model_validate(
            {"type": "erasure", "subjects": [{"user_id": "1"}], "regulation": "custom"}
        )


def test_the_csv_form_reads_identity_columns_and_stops_past_the_limit() -> None:
    rows = rules.parse_csv("Email,user_id\nann@example.com,\n\n,42\nx@y.co,1,extra\n")
    assert rows == [
        {"email": "ann@example.com"},
        {"user_id": "42"},
        {"email": "x@y.co", "user_id": "1", "extra_cells": ["extra"]},
    ]
    with pytest.raises(rules.CsvRefused, match="shoe"):
        rules.parse_csv("email,shoe\n")
    with pytest.raises(rules.CsvRefused) as exc:
        rules.parse_csv("user_id\n" + "\n".join(str(i) for i in range(5001)))
    assert exc.value.too_many and "5,000" in str(exc.value)


@pytest.mark.parametrize(
    "event, erasure, export",
    [
        ("ErasureSoftDeleted", "erased", "exported"),  # the done event of its type
        ("JobCompleted", "erased", "exported"),
        ("ExportReady", "erased", "exported"),
        ("SubjectNotFound", "not_found", "not_found"),
        ("SubjectAmbiguous", "ambiguous", "ambiguous"),
        ("JobFailed", "failed", "failed"),
        ("JobCancelled", "failed", "failed"),
        ("BatchErased", None, None),
        ("ErasurePlanned", None, None),
    ],
)
def test_outcomes_follow_terminal_events(event: str, erasure: str, export: str) -> None:
    assert rules.outcome_of(event, "erasure") == erasure
    assert rules.outcome_of(event, "export") == export


def test_the_summary_is_one_mail_per_bulk_job() -> None:
    summary = rules.Summary.of([("erased", 3), ("rejected", 1), ("pending", 0)])
    assert summary.total == 4 and summary.decided == 4
    bulk = {"id": "7d1c3c53-0b51-4a9a-9d3e-54a8f2a53c01", "org_id": "o", "type": "erasure"}
    first = rules.summary_notice({**bulk, "requester_email": "dpo@x.co"}, summary)
    again = rules.summary_notice({**bulk, "requester_email": "dpo@x.co"}, summary)
    assert first.event_id == again.event_id  # written twice, mailed once
    assert first.payload["to"] == "dpo@x.co" and first.payload["context"]["erased"] == 3
    owners = rules.summary_notice({**bulk, "requester_email": None}, summary)
    assert owners.payload["audience"] == "owners"


def test_only_a_request_with_a_subject_list_takes_the_bulk_path() -> None:
    from services.intake.service.bulk import is_bulk_message

    assert is_bulk_message(b'{"org_id": "o", "request": {"subjects": []}}')
    assert not is_bulk_message(b'{"org_id": "o", "request": {"subject": {}}}')
    for raw in (b"", b"\xff", b"[" * 5000 + b"]" * 5000, b"42", b'{"request": "x"}'):
        assert not is_bulk_message(raw)  # the single path rejects these with their reason
