"""Who is asking and what they may ask: the one home of the submit rules every entry point
(API, web form, OpenDSR, Kafka) goes through. Pure."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from services.intake.domain.requests import RequestIn
from shared.events import Actor


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
