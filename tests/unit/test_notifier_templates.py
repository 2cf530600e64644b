from __future__ import annotations

import pytest

from services.notifier import signing
from services.notifier.templates import render
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
