"""Email templates: a subject, a plain-text body and an HTML body per template name.

The HTML body is the text body with every value escaped, one paragraph per line, and the
`link` and `status_link` values (when there are) as links. A line naming an optional value
(`status_link`) is left out when the context has none. No template mentions the data
subject: mails say which job, never whose data; except `manual_task`, to the staff member
who must erase the subject by hand in a system Lethe cannot reach.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from string import Template
from typing import Any

from shared.events.notifications import OPTIONAL_CONTEXT_KEYS


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


_FOOTER = "Every action is recorded in Lethe's audit trail."
_STATUS = "\nFollow the request here: $status_link"
_TEMPLATES: dict[str, tuple[str, str]] = {
    "manual_task": (
        "Lethe: erasure $job_id: please erase the subject from $task",
        "You are named in Lethe's data map as the person who erases data from $task by hand.\n"
        "Erasure request $job_id asks to erase this subject's data there:\n"
        "$identities\n"
        "$instructions\n"
        "When it is done, an administrator confirms the task on the job's page (or\n"
        "POST /v1/jobs/$job_id/tasks/$task/done); the request stays open until then.\n" + _FOOTER,
    ),
    "manual_task_reminder": (
        "Lethe: reminder $reminder: erasure $job_id is waiting for $task",
        "Erasure request $job_id has been waiting since $opened_at for the subject's data\n"
        "to be erased from $task by hand (the first mail named the subject).\n"
        "When it is done, an administrator confirms the task on the job's page (or\n"
        "POST /v1/jobs/$job_id/tasks/$task/done); the request stays open until then.\n" + _FOOTER,
    ),
    "erasure_hidden": (
        "Lethe: erasure $job_id: the data is hidden, final on $final_on",
        "Your erasure request $job_id has been carried out: $rows rows ($tables)\n"
        "are hidden from the platform now and held, encrypted, for the recovery window.\n"
        "They can be restored until $restorable_until.\n"
        "The erasure becomes final on $final_on: then the held copy and its key are destroyed\n"
        "and nothing can be restored." + _STATUS + "\n" + _FOOTER,
    ),
    "job_needs_review": (
        "Lethe: $job_type request $job_id: $review_count items need a manual review",
        "The $job_type request $job_id left $review_count items it could not process\n"
        "automatically; they need a manual review and are listed on the job\n"
        "(GET /v1/jobs/$job_id).\n" + _FOOTER,
    ),
    "job_completed": (
        "Lethe: your $job_type request $job_id is complete",
        "Your $job_type request $job_id has been carried out and verified.\n"
        "Rows purged: $rows_purged.\n"
        "Rows restored on request before the purge: $rows_restored." + _STATUS + "\n" + _FOOTER,
    ),
    "job_completed_review": (
        "Lethe: $job_type request $job_id is complete, $review_count items need review",
        "The $job_type request $job_id has been carried out.\n"
        "Rows purged: $rows_purged.\n"
        "Rows restored on request before the purge: $rows_restored.\n"
        "$review_count items could not be processed automatically and need a manual review;\n"
        "they are listed on the job (GET /v1/jobs/$job_id)." + _STATUS + "\n" + _FOOTER,
    ),
    "job_failed": (
        "Lethe: your $job_type request $job_id failed",
        "Your $job_type request $job_id could not be completed.\n"
        "Reason: $reason\n"
        "Nothing has been lost: a privacy engineer will review it." + _STATUS,
    ),
    "job_not_found": (
        "Lethe: $job_type request $job_id: no data held",
        "The $job_type request $job_id found no data held on the subject: nothing was erased\n"
        "or exported, because there was nothing. This is the result of the request."
        + _STATUS
        + "\n"
        + _FOOTER,
    ),
    "job_ambiguous": (
        "Lethe: $job_type request $job_id was not carried out: identities disagree",
        "The $job_type request $job_id was not carried out: $reason.\n"
        "Nothing was erased or exported. Submit it again with identities of one person."
        + _STATUS
        + "\n"
        + _FOOTER,
    ),
    "export_ready": (
        "Lethe: export $job_id is ready to download",
        "The export $job_id is ready.\nDownload it here: $link\n"
        "The link needs no sign-in. It works until $expires_at, for up to $max_downloads\n"
        "downloads, and every download is recorded." + _STATUS,
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
        "There will be no further extension. " + _FOOTER + _STATUS,
    ),
    "request_received": (
        "Lethe: we received your $job_type request $job_id",
        "We received your $job_type request $job_id on $received_at.\n"
        "It will be carried out by $due_at ($regulation). If it needs longer you will be told\n"
        "why before then.\n" + _FOOTER + _STATUS,
    ),
    # The privacy centre's one-time code (no job yet): the subject types it on the page.
    "privacy_code": (
        "Your confirmation code for $org_name's privacy centre",
        "Someone, hopefully you, asked $org_name's privacy centre to $what.\n"
        "To confirm it is you, type this code on the page where you asked:\n"
        "$code\n"
        "It works once, for $minutes minutes. If you did not ask, ignore this mail:\n"
        "nothing happens without the code.\n" + _FOOTER,
    ),
    # 11 CCR 7021(a): receipt confirmed within 10 business days, with how it is processed.
    "ccpa_receipt": (
        "Lethe: we received your $job_type request $job_id",
        "We received your $job_type request $job_id on $received_at.\n"
        "How we process it: we verify the request, then carry it out across every system\n"
        "that holds your personal information, and confirm when it is done.\n"
        "We will respond by $due_at (45 calendar days, CCPA). If we need longer we will tell\n"
        "you why before then; we may extend once, to no later than $max_due_at.\n"
        + _FOOTER
        + _STATUS,
    ),
    # Issue 17: the approval step's decisions, and a request linked to an open job.
    "request_approved": (
        "Lethe: your $job_type request $job_id was approved",
        "Your $job_type request $job_id was approved and is being carried out now.\n"
        "Approver's note: $reason\n"
        "It is due by $due_at." + _STATUS + "\n" + _FOOTER,
    ),
    "request_denied": (
        "Lethe: your $job_type request $job_id was denied",
        "Your $job_type request $job_id was denied by an approver: nothing was erased or\n"
        "exported.\n"
        "Reason: $reason" + _STATUS + "\n" + _FOOTER,
    ),
    "linked_request_done": (
        "Lethe: $job_type request $job_id, which yours was linked to, is done ($status)",
        "You asked on $received_at for a $job_type of a subject who already had an open\n"
        "request, job $job_id. Yours was linked to it rather than run twice.\n"
        "That job is now $status: $outcome" + _STATUS + "\n" + _FOOTER,
    ),
    "bulk_completed": (
        "Lethe: bulk $job_type request $job_id is done ($total subjects)",
        "Every subject of the bulk $job_type request $job_id has its outcome:\n"
        "erased: $erased\nexported: $exported\n"
        "no data held (not found): $not_found\n"
        "not carried out, identities of more than one person (ambiguous): $ambiguous\n"
        "failed: $failed\nrejected (not a valid subject): $rejected\n"
        "Each subject's outcome: GET /v1/bulk-requests/$job_id/subjects" + _STATUS + "\n" + _FOOTER,
    ),
}


class UnknownTemplate(ValueError):
    pass


def render(name: str, context: dict[str, Any]) -> Rendered:
    if name not in _TEMPLATES:
        raise UnknownTemplate(f"no email template named {name!r}")
    subject_t, body_t = _TEMPLATES[name]
    values = {k: str(v) for k, v in context.items() if v is not None}
    missing = [f"${k}" for k in OPTIONAL_CONTEXT_KEYS if k not in values]
    body_t = "\n".join(line for line in body_t.splitlines() if not any(m in line for m in missing))
    text = Template(body_t).safe_substitute(values)
    escaped = {k: html.escape(v) for k, v in values.items()}
    for key in ("link", "status_link"):
        if key in values:
            url = html.escape(values[key], quote=True)
            escaped[key] = f'<a href="{url}">{url}</a>'
    html_body = "".join(
        f"<p>{line}</p>" for line in Template(body_t).safe_substitute(escaped).splitlines()
    )
    return Rendered(
        subject=" ".join(Template(subject_t).safe_substitute(values).split()),
        text=text,
        html=f"<html><body>{html_body}</body></html>",
    )
