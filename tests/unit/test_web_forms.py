"""The web UI's form handling: what a person typed becomes a request, or errors per field in
plain words; the subject's status link cannot be made without the server's key."""

from __future__ import annotations

import uuid

import pytest

from services.intake.web.common import WebError, status_mac
from services.intake.web.forms import submit_from_form
from services.intake.web.routes_job import grouped, parse_items

pytestmark = pytest.mark.unit

BASE = {"type": "erasure", "scope": "subject", "regulation": "gdpr", "request_id": "web-1"}


def test_a_valid_form_becomes_a_request() -> None:
    req, errors = submit_from_form(
        {**BASE, "email": " ann@example.com ", "recovery_window_days": "7"}, "Acme"
    )
    assert errors == {} and req is not None
    assert req.subject is not None and req.subject.email == "ann@example.com"
    assert req.recovery_window_days == 7


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"email": "nope"}, "email", "email address"),
        ({"email": "a@b.co", "recovery_window_days": "45"}, "recovery_window_days", "0 to 30"),
        ({"email": "a@b.co", "recovery_window_days": "soon"}, "recovery_window_days", "0 to 30"),
        ({}, "subject", "at least one identity"),
        ({"email": "a@b.co", "regulation": "custom"}, "due_in_days", "1 to 90"),
        ({"email": "a@b.co", "notify_email": "x"}, "notify_email", "email address"),
        ({"scope": "organisation", "confirm_org_name": "Acm"}, "confirm_org_name", "Acme"),
        (
            {"type": "export", "scope": "organisation", "confirm_org_name": ""},
            "confirm_org_name",
            "To export the whole organisation",
        ),
    ],
)
def test_errors_name_the_field_in_plain_words(
    fields: dict[str, str], field: str, words: str
) -> None:
    req, errors = submit_from_form({**BASE, **fields}, "Acme")
    assert req is None
    assert words in errors[field], errors


def test_items_to_restore_are_table_and_key() -> None:
    items = parse_items("users 42\n\nmessages:7 \n", ["payments:9"])
    assert [(i.table, i.key) for i in items] == [
        ("users", "42"),
        ("messages", "7"),
        ("payments", "9"),
    ]
    with pytest.raises(WebError):
        parse_items("users", [])
    with pytest.raises(WebError):
        parse_items("  ", [])


def test_status_link_depends_on_the_key_and_the_job() -> None:
    job = uuid.uuid4()
    assert status_mac(b"k1", job) == status_mac(b"k1", job)
    assert status_mac(b"k1", job) != status_mac(b"k2", job)
    assert status_mac(b"k1", job) != status_mac(b"k1", uuid.uuid4())
    assert len(status_mac(b"k1", job)) >= 32


def test_batches_are_one_timeline_line_with_a_count() -> None:
    e = [{"type": t, "actor": "service:eraser"} for t in ("A", "B", "B", "B", "C")]
    assert [(x["type"], x["count"]) for x in grouped(e)] == [("A", 1), ("B", 3), ("C", 1)]
