"""Intake's decisions: what a valid request is, when it is due, which event it becomes."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from services.intake import deadlines
from services.intake.links import StatusLinks
from shared.events import Actor, Envelope, Payload, make_event
from shared.events.jobs import (
    CancelErasure,
    CancelExport,
    ErasureRequested,
    ExportRequested,
    Subject,
)
from shared.events.notifications import SendEmail
from shared.events.requests import SubmitRequest
from shared.events.topics import JOBS_ERASE, JOBS_EXPORT
from shared.hashing import subject_hash

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Hashed identities (as OpenDSR controllers send them): the hex digest of the trimmed,
# lowercased email. Kind -> hex length.
HASHED_EMAIL = {"email_sha256": 64, "email_sha1": 40, "email_md5": 32}
_HEX = re.compile(r"^[0-9a-f]+$")


class SubjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    email: str | None = Field(None, max_length=320)
    user_id: str | None = Field(None, max_length=200)
    phone: str | None = Field(None, max_length=50)
    external_id: str | None = Field(None, max_length=200)
    email_sha256: str | None = Field(
        None, description="hex SHA-256 of the trimmed, lowercased email"
    )
    email_sha1: str | None = Field(None, description="hex SHA-1 of the trimmed, lowercased email")
    email_md5: str | None = Field(None, description="hex MD5 of the trimmed, lowercased email")

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and not _EMAIL.match(v):
            raise ValueError("not an email address")
        return v

    @field_validator("email_sha256", "email_sha1", "email_md5")
    @classmethod
    def _hashed(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        size = HASHED_EMAIL[str(info.field_name)]
        v = v.lower()
        if len(v) != size or not _HEX.match(v):
            raise ValueError(f"not a hex digest: {size} hex characters expected")
        return v

    @model_validator(mode="after")
    def _at_least_one(self) -> SubjectIn:
        if not any(self.model_dump().values()):
            raise ValueError(
                "give at least one identity: email, user_id, phone, external_id, "
                "email_sha256, email_sha1 or email_md5"
            )
        return self


class RequestIn(BaseModel):
    """A data-subject request as submitted over HTTP (or, later, Kafka)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    type: Literal["erasure", "export"]
    scope: Literal["subject", "organisation"] = "subject"
    subject: SubjectIn | None = None
    confirm_org_name: str | None = None
    regulation: Literal["gdpr", "ccpa", "custom"] = "gdpr"
    due_in_days: int | None = Field(None, ge=1, le=90, description="Only with regulation=custom")
    recovery_window_days: int | None = Field(None, ge=0, le=30)
    request_id: str | None = Field(None, min_length=1, max_length=200)
    notify_email: str | None = Field(None, max_length=320)
    reason: str | None = Field(None, max_length=2000)
    format: Literal["json", "csv", "both"] = "both"
    include_media: bool = False
    link_ttl_hours: int = Field(24, ge=1, le=168, description="Export link lifetime: 1 h..7 days")

    @field_validator("notify_email")
    @classmethod
    def _notify(cls, v: str | None) -> str | None:
        if v is not None and not _EMAIL.match(v):
            raise ValueError("not an email address")
        return v

    @model_validator(mode="after")
    def _scope(self) -> RequestIn:
        if self.scope == "subject" and self.subject is None:
            raise ValueError("subject: required when scope is 'subject'")
        if self.scope == "organisation" and self.subject is not None:
            raise ValueError("subject: not allowed when scope is 'organisation'")
        if (self.regulation == "custom") != (self.due_in_days is not None):
            raise ValueError("due_in_days: required with regulation 'custom', and only with it")
        return self


@dataclass(frozen=True)
class Caller:
    org_id: str
    org_name: str
    role: str
    key_id: uuid.UUID
    recovery_window_days: int
    actor_kind: str = "api_key"
    actor_id: str | None = None
    # The org lets admins submit subject-level erasure and export requests (an owner's
    # audited choice; off by default: privacy operations are the owners').
    admins_submit_subject_requests: bool = False

    @property
    def actor(self) -> Actor:
        return Actor(kind=self.actor_kind, id=self.actor_id or str(self.key_id))


def field_errors(exc: ValidationError) -> list[str]:
    """One line per problem, each naming the field: `subject.email: not an email address`."""
    out = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        # Model-level checks name their field at the start of the message.
        out.append(f"{where}: {msg}" if where else msg)
    return out


@dataclass(frozen=True)
class Rejection:
    reason: str
    errors: list[str]
    request_id: str | None = None


def parse_upstream(raw: bytes) -> tuple[SubmitRequest, RequestIn] | Rejection:
    """Decode a message from `lethe.requests.v1`; anything wrong becomes a Rejection."""
    try:
        msg = SubmitRequest.model_validate_json(raw)
    except ValidationError as exc:
        errors = field_errors(exc)
        return Rejection(f"invalid message: {'; '.join(errors)}", errors)
    request_id = (
        msg.request.get("request_id") if isinstance(msg.request.get("request_id"), str) else None
    )
    try:
        req = RequestIn.model_validate(msg.request)
    except ValidationError as exc:
        errors = [f"request.{e}" for e in field_errors(exc)]
        return Rejection(f"invalid request: {'; '.join(errors)}", errors, request_id)
    return msg, req


def upstream_caller(org_id: str, org_name: str, window: int, source: str) -> Caller:
    """Upstream services act for the org they name (Kafka ACLs authenticate them)."""
    return Caller(
        org_id=org_id,
        org_name=org_name,
        role="owner",
        key_id=uuid.uuid5(uuid.NAMESPACE_URL, f"lethe-upstream:{source}"),
        recovery_window_days=window,
        actor_kind="upstream",
        actor_id=source,
    )


class Refused(Exception):
    """A request that is well-formed but not allowed (maps to 403/422 with the reason)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


OWNER_ONLY = (
    "erasure and export requests are owner-only in this organisation; an owner may delegate "
    "subject-level requests to admins (PUT /v1/orgs/{org}/delegation)"
)


def submit_refusal(caller: Caller) -> str | None:
    """Why this caller may not submit requests at all, or None. The one home of the rule
    every entry point (API, web form, OpenDSR, Kafka) goes through."""
    if caller.role == "owner":
        return None
    if caller.role == "viewer":
        return "viewers cannot submit requests"
    if caller.admins_submit_subject_requests:
        return None
    return OWNER_ONLY.format(org=caller.org_id)


def authorise(req: RequestIn, caller: Caller) -> None:
    """Who may ask what (403 naming the rule; 422 for a wrong confirmation):

    - erasure and export requests are owner-only unless the org delegates subject-level
      requests to admins; organisation-wide requests (erasure and export: both take every
      person's data of the org) stay owner-only and need the org's name typed to confirm;
    - only an owner may shorten the recovery window below the organisation's default.
    """
    refusal = submit_refusal(caller)
    if refusal:
        raise Refused(403, refusal)
    if req.scope == "organisation" and caller.role != "owner":
        raise Refused(403, f"only an owner may request an {req.type} of a whole organisation")
    if req.scope == "organisation" and req.confirm_org_name != caller.org_name:
        raise Refused(
            422,
            f"confirm_org_name must equal the organisation's name to confirm an {req.type} "
            "of the whole organisation",
        )
    window = req.recovery_window_days
    if (
        req.type == "erasure"
        and window is not None
        and window < caller.recovery_window_days
        and caller.role != "owner"
    ):
        raise Refused(
            403,
            f"recovery_window_days: only an owner may shorten the recovery window below the "
            f"organisation's default of {caller.recovery_window_days} days (asked: {window})",
        )


@dataclass(frozen=True)
class NewJob:
    job_id: uuid.UUID
    org_id: str
    type: str
    scope: str
    subject_hash: str | None
    request_id: str | None
    channel: str
    actor: str
    regulation: str
    received_at: datetime
    due_at: datetime
    recovery_window_days: int
    topic: str
    event: Envelope
    requester_email: str | None = None
    fingerprint: str | None = None
    reason: str | None = None
    receipt_due_at: datetime | None = None  # CCPA: confirm receipt by then
    notices: tuple[Envelope, ...] = ()  # SendEmail commands written with the job


def plan_job(
    req: RequestIn,
    caller: Caller,
    *,
    received_at: datetime,
    hash_key: bytes,
    holidays: tuple[date, ...] = (),
    channel: Literal["http", "kafka"],
    trace: dict[str, str],
    links: StatusLinks | None = None,
    results_link: bool = False,
) -> NewJob:
    """`results_link`: an export also gets a link for the controller (OpenDSR results_url)."""
    authorise(req, caller)
    job_id = uuid.uuid4()
    # The data subject's status page: the workers put it in their mails (and so does this).
    status_link = links.url(job_id) if links is not None else None
    subject = Subject(**req.subject.model_dump()) if req.subject else None
    s_hash = subject_hash(hash_key, subject.identities()) if subject else None
    due = deadlines.due_at(received_at, req.regulation, req.due_in_days)
    window = (
        req.recovery_window_days
        if req.recovery_window_days is not None
        else caller.recovery_window_days
    )
    payload: ErasureRequested | ExportRequested
    if req.type == "erasure":
        payload = ErasureRequested(
            scope=req.scope,
            subject=subject,
            requester_email=req.notify_email,
            regulation=req.regulation,
            due_at=due,
            recovery_window_days=window,
            channel=channel,
            status_link=status_link,
        )
        topic = JOBS_ERASE
    else:
        payload = ExportRequested(
            scope=req.scope,
            subject=subject,
            requester_email=req.notify_email,
            regulation=req.regulation,
            due_at=due,
            format=req.format,
            include_media=req.include_media,
            link_ttl_hours=req.link_ttl_hours,
            channel=channel,
            status_link=status_link,
            results_link=results_link,
        )
        topic = JOBS_EXPORT
    env = make_event(
        payload,
        actor=caller.actor,
        job_id=job_id,
        org_id=caller.org_id,
        subject_hash=s_hash,
        trace=trace,
    )
    receipt_due = deadlines.receipt_confirmation_due(received_at, req.regulation, holidays)
    notices: tuple[Envelope, ...] = ()
    if receipt_due is not None:
        notices = (
            ccpa_receipt(
                req,
                caller,
                job_id=job_id,
                received_at=received_at,
                due=due,
                subject_hash=s_hash,
                trace=trace,
                status_link=status_link,
            ),
        )
    elif req.notify_email:
        # Every requester learns that the request arrived and by when it is due (CCPA has
        # its own, statutory confirmation above). Without a requester address (upstream
        # requests) no receipt is mailed: the owners would get one per request.
        notices = (
            notice(
                "request_received",
                to=req.notify_email,
                context={
                    "job_id": str(job_id),
                    "job_type": req.type,
                    "received_at": received_at,
                    "due_at": due,
                    "regulation": req.regulation.upper(),
                },
                caller=caller,
                job_id=job_id,
                subject_hash=s_hash,
                trace=trace,
                status_link=status_link,
            ),
        )
    return NewJob(
        job_id=job_id,
        org_id=caller.org_id,
        type=req.type,
        scope=req.scope,
        subject_hash=s_hash,
        request_id=req.request_id,
        channel=channel,
        actor=f"{caller.actor.kind}:{caller.actor.id}",
        regulation=req.regulation,
        received_at=received_at,
        due_at=due,
        recovery_window_days=window,
        topic=topic,
        event=env,
        requester_email=req.notify_email,
        fingerprint=fingerprint(req, hash_key),
        reason=req.reason,
        receipt_due_at=receipt_due,
        notices=notices,
    )


def fingerprint(req: RequestIn, key: bytes) -> str:
    """What was asked, independent of formatting: a repeated id with another body is a 409.
    Keyed, because the body holds identities."""
    body = req.model_dump(mode="json", exclude={"request_id"})
    return hmac.new(key, json.dumps(body, sort_keys=True).encode(), hashlib.sha256).hexdigest()


def notice(
    template: str,
    *,
    to: str | None,
    context: dict[str, object],
    caller: Caller,
    job_id: uuid.UUID,
    subject_hash: str | None,
    trace: dict[str, str] | None = None,
    status_link: str | None = None,
) -> Envelope:
    """A SendEmail to the requester, or, when the job has none, to the org's owner contacts."""
    if status_link:
        context = {**context, "status_link": status_link}
    return make_event(
        SendEmail(
            template=template,
            to=to,
            audience="requester" if to else "owners",
            context={
                k: v.isoformat() if isinstance(v, datetime) else v for k, v in context.items()
            },
        ),
        actor=caller.actor,
        job_id=job_id,
        org_id=caller.org_id,
        subject_hash=subject_hash,
        trace=trace,
    )


def ccpa_receipt(
    req: RequestIn,
    caller: Caller,
    *,
    job_id: uuid.UUID,
    received_at: datetime,
    due: datetime,
    subject_hash: str | None,
    trace: dict[str, str],
    status_link: str | None = None,
) -> Envelope:
    """11 CCR 7021(a): the receipt confirmation, with how and by when it will be handled."""
    return notice(
        "ccpa_receipt",
        to=req.notify_email,
        context={
            "job_id": str(job_id),
            "job_type": req.type,
            "received_at": received_at,
            "due_at": due,
            "max_due_at": deadlines.max_extended_due("ccpa", due),
        },
        caller=caller,
        job_id=job_id,
        subject_hash=subject_hash,
        trace=trace,
        status_link=status_link,
    )


def extension_notice(
    row: dict[str, object],
    caller: Caller,
    *,
    to: str | None,
    extended_due_at: datetime,
    reason: str,
    status_link: str | None = None,
) -> Envelope:
    """GDPR Art. 12(3) / 11 CCR 7021(b): the requester is told of the extension and why."""
    regulation = str(row["regulation"])
    job_id = row["id"]
    assert isinstance(job_id, uuid.UUID)
    return notice(
        "deadline_extended",
        to=to,
        context={
            "job_id": str(job_id),
            "job_type": row["type"],
            "regulation": deadlines.source(regulation),
            "due_at": row["due_at"],
            "extended_due_at": extended_due_at,
            "reason": reason,
        },
        caller=caller,
        job_id=job_id,
        subject_hash=row["subject_hash"] if isinstance(row["subject_hash"], str) else None,
        status_link=status_link,
    )


def cancel_command(job_type: str, reason: str | None) -> tuple[Payload, str]:
    """The cancel command for a job and the topic of the worker that stops it: exports go to
    the exporter; erasures and retention jobs to the eraser."""
    if job_type == "export":
        return CancelExport(reason=reason), JOBS_EXPORT
    return CancelErasure(reason=reason), JOBS_ERASE


def command_topic(job_type: str) -> str:
    return JOBS_EXPORT if job_type == "export" else JOBS_ERASE
