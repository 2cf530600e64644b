"""Email templates: a subject, a plain-text body and an HTML body per template name."""

from __future__ import annotations

import html
from dataclasses import dataclass
from string import Template
from typing import Any


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


_TEMPLATES: dict[str, tuple[str, str]] = {
    "job_completed": (
        "Lethe: your $job_type request $job_id is complete",
        "Your $job_type request $job_id has been carried out.\n"
        "Rows processed: $rows.\n"
        "Every action is recorded in Lethe's audit trail.",
    ),
    "job_failed": (
        "Lethe: your $job_type request $job_id failed",
        "Your $job_type request $job_id could not be completed.\n"
        "Reason: $reason\n"
        "Nothing has been lost: a privacy engineer will review it.",
    ),
}


class UnknownTemplate(ValueError):
    pass


def render(name: str, context: dict[str, Any]) -> Rendered:
    if name not in _TEMPLATES:
        raise UnknownTemplate(f"no email template named {name!r}")
    subject_t, body_t = _TEMPLATES[name]
    values = {k: str(v) for k, v in context.items()}
    text = Template(body_t).safe_substitute(values)
    escaped = {k: html.escape(v) for k, v in values.items()}
    html_body = "".join(
        f"<p>{line}</p>" for line in Template(body_t).safe_substitute(escaped).splitlines()
    )
    return Rendered(
        subject=Template(subject_t).safe_substitute(values),
        text=text,
        html=f"<html><body>{html_body}</body></html>",
    )
