"""Email templates: a subject, a plain-text body and an HTML body per template name.

The HTML body is the text body with every value escaped, one paragraph per line, and the
`link` value (when there is one) as a link. No template mentions the data subject: mails say
which job, never whose data.
"""

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


_FOOTER = "Every action is recorded in Lethe's audit trail."
_TEMPLATES: dict[str, tuple[str, str]] = {
    "job_completed": (
        "Lethe: your $job_type request $job_id is complete",
        "Your $job_type request $job_id has been carried out.\nRows processed: $rows.\n" + _FOOTER,
    ),
    "job_completed_review": (
        "Lethe: $job_type request $job_id is complete, $review_count items need review",
        "The $job_type request $job_id has been carried out: $rows rows processed.\n"
        "$review_count items could not be processed automatically and need a manual review;\n"
        "they are listed on the job (GET /v1/jobs/$job_id).\n" + _FOOTER,
    ),
    "job_failed": (
        "Lethe: your $job_type request $job_id failed",
        "Your $job_type request $job_id could not be completed.\n"
        "Reason: $reason\n"
        "Nothing has been lost: a privacy engineer will review it.",
    ),
    "job_not_found": (
        "Lethe: $job_type request $job_id: no data held",
        "The $job_type request $job_id found no data held on the subject: nothing was erased\n"
        "or exported, because there was nothing. This is the result of the request.\n" + _FOOTER,
    ),
    "job_ambiguous": (
        "Lethe: $job_type request $job_id was not carried out: identities disagree",
        "The $job_type request $job_id was not carried out: $reason.\n"
        "Nothing was erased or exported. Submit it again with identities of one person.\n"
        + _FOOTER,
    ),
    "export_ready": (
        "Lethe: export $job_id is ready to download",
        "The export $job_id is ready.\nDownload it here: $link\n"
        "The link needs no sign-in. It works until $expires_at, for up to $max_downloads\n"
        "downloads, and every download is recorded.",
    ),
    "recovery_ends": (
        "Lethe: erasure $job_id becomes final tomorrow",
        "The recovery window of erasure $job_id ends at $purge_after.\n"
        "After that the held copy is purged and nothing can be restored: the purge is final.\n"
        "To restore anything, do it before then.",
    ),
    "deadline_approaching": (
        "Lethe: $job_type request $job_id is due in $days_left days",
        "The legal deadline of $job_type request $job_id is $due_at ($days_left days left).\n"
        "If it cannot be met, extend it with reasons before then.",
    ),
    "deadline_passed": (
        "Lethe: $job_type request $job_id is past its legal deadline",
        "The legal deadline of $job_type request $job_id was $due_at and it is not complete.\n"
        "Please act on it now.",
    ),
    # GDPR Art. 12(3) / 11 CCR 7021(b): the requester is told of an extension and why.
    "deadline_extended": (
        "Lethe: the deadline of your $job_type request $job_id is extended to $extended_due_at",
        "Your $job_type request $job_id was due on $due_at.\n"
        "It needs more time: the deadline is extended once, to $extended_due_at,\n"
        "as $regulation allows.\n"
        "Reason: $reason\n"
        "There will be no further extension. " + _FOOTER,
    ),
    # 11 CCR 7021(a): receipt confirmed within 10 business days, with how it is processed.
    "ccpa_receipt": (
        "Lethe: we received your $job_type request $job_id",
        "We received your $job_type request $job_id on $received_at.\n"
        "How we process it: we verify the request, then carry it out across every system\n"
        "that holds your personal information, and confirm when it is done.\n"
        "We will respond by $due_at (45 calendar days, CCPA). If we need longer we will tell\n"
        "you why before then; we may extend once, to no later than $max_due_at.\n" + _FOOTER,
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
    if "link" in values:
        url = html.escape(values["link"], quote=True)
        escaped["link"] = f'<a href="{url}">{url}</a>'
    html_body = "".join(
        f"<p>{line}</p>" for line in Template(body_t).safe_substitute(escaped).splitlines()
    )
    return Rendered(
        subject=" ".join(Template(subject_t).safe_substitute(values).split()),
        text=text,
        html=f"<html><body>{html_body}</body></html>",
    )
