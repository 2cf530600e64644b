from __future__ import annotations

import pytest

from services.notifier.templates import render
from shared import signing
from shared.events.notifications import TEMPLATES

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_template_fills_every_placeholder(name: str) -> None:
    context = {key: f"<{key}>" for key in TEMPLATES[name]}
    r = render(name, context)
    for text in (r.subject, r.text, r.html):
        assert "$" not in text
    assert "<job_id>" in r.subject and "<job_id>" in r.text
    assert "&lt;job_id&gt;" in r.html


def test_the_export_link_is_a_link() -> None:
    r = render("export_ready", {"job_id": "j", "link": "https://x/?a=1&b=2", "expires_at": "t"})
    assert "https://x/?a=1&b=2" in r.text
    assert '<a href="https://x/?a=1&amp;b=2">' in r.html


def test_webhook_signatures() -> None:
    header = signing.sign("s3cret", b'{"a":1}', t=1_000_000)
    assert signing.verify("s3cret", header, b'{"a":1}', now=1_000_010) == 1_000_000
    with pytest.raises(signing.BadSignature, match="does not match"):
        signing.verify("s3cret", header, b'{"a":2}', now=1_000_010)
    with pytest.raises(signing.BadSignature, match="does not match"):
        signing.verify("other", header, b'{"a":1}', now=1_000_010)
    with pytest.raises(signing.BadSignature, match="tolerance"):
        signing.verify("s3cret", header, b'{"a":1}', now=1_000_000 + 301)
    with pytest.raises(signing.BadSignature):
        signing.verify("s3cret", None, b"")


def test_the_audit_trail_never_sees_the_address_or_the_download_link() -> None:
    from shared.events import Actor, make_event
    from shared.events.envelope import safe_details
    from shared.events.notifications import SendEmail

    cmd = SendEmail(
        template="export_ready",
        to="dpo@example.com",
        context={"job_id": "j", "link": "https://x/dl?token=SECRET", "expires_at": "t"},
    )
    details = safe_details(make_event(cmd, actor=Actor(kind="service", id="t")))
    assert "dpo@example.com" not in str(details) and "SECRET" not in str(details)
    assert details["context"] == {"job_id": "j", "link": "(redacted)", "expires_at": "t"}


def test_the_extension_notice_says_until_when_and_why() -> None:
    r = render(
        "deadline_extended",
        {
            "job_id": "j1",
            "job_type": "erasure",
            "regulation": "GDPR Art. 12(3)",
            "due_at": "2026-02-28T10:00:00+00:00",
            "extended_due_at": "2026-04-28T10:00:00+00:00",
            "reason": "records in <7> systems & archives",
        },
    )
    assert "2026-04-28" in r.subject and "j1" in r.subject
    assert "Reason: records in <7> systems & archives" in r.text
    assert "records in &lt;7&gt; systems &amp; archives" in r.html
    assert "GDPR Art. 12(3)" in r.text and "2026-02-28" in r.text


def test_the_receipt_says_by_when() -> None:
    r = render(
        "request_received",
        {
            "job_id": "j3",
            "job_type": "erasure",
            "received_at": "2026-01-31T09:00:00+00:00",
            "due_at": "2026-02-28T09:00:00+00:00",
            "regulation": "GDPR",
        },
    )
    assert "received" in r.subject and "j3" in r.subject
    assert "2026-01-31" in r.text and "2026-02-28" in r.text
    assert "GDPR" in r.html


def test_the_ccpa_receipt_says_how_and_by_when() -> None:
    r = render(
        "ccpa_receipt",
        {
            "job_id": "j2",
            "job_type": "export",
            "received_at": "2026-01-02T09:00:00+00:00",
            "due_at": "2026-02-16T09:00:00+00:00",
            "max_due_at": "2026-04-02T09:00:00+00:00",
        },
    )
    assert "received" in r.subject and "j2" in r.subject
    assert "2026-01-02" in r.text and "2026-02-16" in r.text and "2026-04-02" in r.text
    assert "How we process it" in r.text and "<p>How we process it" in r.html


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_template_carries_the_status_link_when_given_and_no_trace_of_it_otherwise(
    name: str,
) -> None:
    context = {key: f"<{key}>" for key in TEMPLATES[name]}
    link = "https://lethe.example/status/j/MAC?a=1&b=2"
    r = render(name, {**context, "status_link": link})
    if name in ("manual_task", "manual_task_reminder"):  # to a task's assignee: no link
        assert link not in r.text and "$" not in r.text + r.html
        return
    if name in ("recovery_ends", "job_needs_review", "deadline_approaching", "deadline_passed"):
        return  # owner-facing: no subject status link
    assert link in r.text
    assert '<a href="https://lethe.example/status/j/MAC?a=1&amp;b=2">' in r.html
    bare = render(name, context)
    assert "status_link" not in bare.text and "Follow the request" not in bare.text
    assert "$" not in bare.text + bare.html


def test_the_soft_delete_notice_says_what_until_when_and_when_final() -> None:
    r = render(
        "erasure_hidden",
        {
            "job_id": "j3",
            "rows": 42,
            "tables": "messages: 40, users: 2",
            "restorable_until": "2026-03-08 10:00 UTC",
            "final_on": "2026-03-08",
        },
    )
    assert "j3" in r.subject and "2026-03-08" in r.subject
    assert "42 rows (messages: 40, users: 2)" in r.text
    assert "restored until 2026-03-08 10:00 UTC" in r.text
    assert "becomes final on 2026-03-08" in r.text
    assert "<p>" in r.html and "messages: 40" in r.html


def test_the_completion_reports_rows_purged_and_rows_restored() -> None:
    ctx = {"job_id": "j4", "job_type": "erasure", "rows": 9, "rows_purged": 9, "rows_restored": 3}
    r = render("job_completed", ctx)
    assert "Rows purged: 9." in r.text
    assert "Rows restored on request before the purge: 3." in r.text
    review = render("job_completed_review", {**ctx, "review_count": 2})
    assert "Rows purged: 9." in review.text and "restored on request before the purge: 3" in (
        review.text
    )
    assert "2 items" in review.text and "2 items need review" in review.subject


def test_the_recovery_window_notice_names_the_moment_it_becomes_final() -> None:
    r = render("recovery_ends", {"job_id": "j5", "purge_after": "2026-03-08 10:00 UTC"})
    assert "tomorrow" in r.subject and "j5" in r.subject
    assert "2026-03-08 10:00 UTC" in r.text and "nothing can be restored" in r.text


def test_failure_not_found_ambiguous_and_review_notices() -> None:
    failed = render("job_failed", {"job_id": "j6", "job_type": "retention", "reason": "boom"})
    assert "retention request j6 failed" in failed.subject and "Reason: boom" in failed.text
    nf = render("job_not_found", {"job_id": "j7", "job_type": "export"})
    assert "no data held" in nf.subject and "nothing was erased" in nf.text
    amb = render(
        "job_ambiguous", {"job_id": "j8", "job_type": "erasure", "reason": "two users match"}
    )
    assert "two users match" in amb.text and "identities disagree" in amb.subject
    rv = render("job_needs_review", {"job_id": "j9", "job_type": "erasure", "review_count": 4})
    assert "4 items need a manual review" in rv.subject and "GET /v1/jobs/j9" in rv.text


def test_the_status_link_never_reaches_the_audit_trail() -> None:
    from shared.events import Actor, make_event
    from shared.events.envelope import safe_details
    from shared.events.notifications import SendEmail

    cmd = SendEmail(
        template="job_failed",
        context={"job_id": "j", "reason": "r", "status_link": "https://x/status/j/SECRETMAC"},
    )
    details = safe_details(make_event(cmd, actor=Actor(kind="service", id="t")))
    assert "SECRETMAC" not in str(details)
