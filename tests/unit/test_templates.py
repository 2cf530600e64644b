from __future__ import annotations

import pytest

from services.notifier.templates import UnknownTemplate, render

pytestmark = pytest.mark.unit


def test_html_is_escaped_and_text_is_not() -> None:
    r = render("job_failed", {"job_id": "j1", "job_type": "erasure", "reason": "<b>x</b>"})
    assert "j1" in r.subject
    assert "<b>x</b>" in r.text and "&lt;b&gt;x&lt;/b&gt;" in r.html


def test_unknown_template_is_an_error() -> None:
    with pytest.raises(UnknownTemplate):
        render("nope", {})
