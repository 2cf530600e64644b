"""The approval step and linked requests, as decisions and events. Pure.

Channels are the entry points a request came through; an org names the ones whose new jobs
wait for an admin's approval (none by default).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from services.intake.domain.callers import Caller
from services.intake.domain.jobs import NewJob
from services.intake.domain.notices import notice
from shared import lifecycle
from shared.events import Envelope, make_event
from shared.events.requests import (
    ApprovalRequired,
    RequestApproved,
    RequestDenied,
    RequestLinked,
)

# Every entry point: the REST API, the web form, upstream services on Kafka, OpenDSR, the
# privacy centre, bulk requests.
Channel = Literal["api", "web", "kafka", "opendsr", "privacy_centre", "bulk"]
CHANNELS: tuple[Channel, ...] = ("api", "web", "kafka", "opendsr", "privacy_centre", "bulk")


class BadChannels(ValueError):
    pass


def channels_setting(given: list[str]) -> list[str]:
    """An owner's choice, checked and in a stable order."""
    unknown = sorted(set(given) - set(CHANNELS))
    if unknown:
        raise BadChannels(
            f"channels: unknown {', '.join(unknown)}; choose among {', '.join(CHANNELS)}"
        )
    return [c for c in CHANNELS if c in given]


def default_channel(transport: str) -> Channel:
    """The channel of a request whose entry point did not name one."""
    return "kafka" if transport == "kafka" else "api"


def held_event(job: NewJob, channel: str) -> Envelope:
    """The job waits: audited, and in its timeline (a rebuild moves it to awaiting_approval)."""
    return make_event(
        ApprovalRequired(channel=channel, due_at=job.due_at),
        actor=job.event.actor,
        job_id=job.job_id,
        org_id=job.org_id,
        subject_hash=job.subject_hash,
        trace=job.event.trace,
    )


@dataclass(frozen=True)
class Decision:
    event: Envelope  # RequestApproved (audit) or RequestDenied (progress)
    notice: Envelope  # the requester's mail (the owners' without a requester)
    error: str | None  # what the job row shows (a denial's reason)


def decide(
    row: dict[str, Any],
    who: Caller,
    *,
    approve: bool,
    reason: str | None,
    to: str | None,
    status_link: str | None,
) -> Decision:
    """An admin's decision on a held job, and the mail that tells the requester."""
    job_id = row["id"]
    note = (reason or "").strip()[:2000]
    payload = RequestApproved(reason=note or None) if approve else RequestDenied(reason=note)
    env = make_event(
        payload,
        actor=who.actor,
        job_id=job_id,
        org_id=who.org_id,
        subject_hash=row["subject_hash"],
    )
    context: dict[str, object] = {"job_id": str(job_id), "job_type": row["type"]}
    context["reason"] = note or "(none given)"
    if approve:
        context["due_at"] = row["extended_due_at"] or row["due_at"]
    mail = notice(
        "request_approved" if approve else "request_denied",
        to=to,
        context=context,
        caller=who,
        job_id=job_id,
        subject_hash=row["subject_hash"],
        status_link=status_link,
    )
    return Decision(env, mail, None if approve else note)


def linked_event(
    job: NewJob, open_row: dict[str, Any], link_id: uuid.UUID, channel: str
) -> Envelope:
    """The audit of a request linked to the subject's open job (under that job's id)."""
    return make_event(
        RequestLinked(link_id=str(link_id), channel=channel, status=open_row["status"]),
        actor=job.event.actor,
        job_id=open_row["id"],
        org_id=job.org_id,
        subject_hash=job.subject_hash,
        trace=job.event.trace,
    )


def done_for_links(status: str) -> bool:
    """The open job is done as far as its linked requesters are concerned: the data is out of
    reach (hidden, exported) or the job ended."""
    return status not in lifecycle.OPEN


def linked_notice(
    row: dict[str, Any], link: dict[str, Any], caller: Caller, at: datetime
) -> Envelope:
    """The mail to a linked request's requester once the job it joined is done (sent once:
    its event id is derived from the link)."""
    status = str(row["status"])
    outcome = lifecycle.OUTCOME_WORDS.get(status) or {
        "soft_deleted": "the data is erased (held for the recovery window, then purged)",
        "purging": "the data is erased and being purged",
        "ready": "the export is ready for its requester",
    }.get(status, status.replace("_", " "))
    env = notice(
        "linked_request_done",
        to=link["requester_email"],
        context={
            "job_id": str(row["id"]),
            "job_type": row["type"],
            "received_at": link["received_at"],
            "status": status,
            "outcome": outcome,
        },
        caller=caller,
        job_id=row["id"],
        subject_hash=row["subject_hash"],
    )
    once = uuid.uuid5(uuid.NAMESPACE_URL, f"lethe:linked:{link['id']}")
    return env.model_copy(update={"event_id": once, "occurred_at": at})
