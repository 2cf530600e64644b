"""The privacy centre's rules: a subject asks (erasure or export, an email address), proves the
address with a one-time code, and only then is a job planned. Pure: the clock, the counts
and the stored challenge are passed in.

Refusals name their rule (`Refusal.reason` is the audit word, `message` the page's words):
unknown or disabled centre 404, a bad address 422, too many codes 429 (per address, per
source), wrong code 422, expired 410, replayed 409, too many attempts 429.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from services.intake.domain.callers import Caller
from services.intake.domain.requests import RequestIn

SLUG = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
REQUEST_TYPES: dict[str, Literal["erasure", "export"]] = {
    "erasure": "erasure",
    "export": "export",
}
WHAT = {
    "erasure": "erase the data held on this email address",
    "export": "send a copy of the data held on this email address",
}


@dataclass(frozen=True)
class Limits:
    ttl_seconds: int
    max_attempts: int
    per_address: int
    per_source: int
    window_seconds: int


class PrivacyRefused(Exception):
    def __init__(self, status: int, reason: str, message: str, retry_after: int = 0) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message
        self.retry_after = retry_after


def slug_problem(slug: str) -> str | None:
    if not SLUG.match(slug):
        return (
            "slug: 1 to 63 lowercase letters, digits and hyphens, starting and ending with a "
            "letter or digit"
        )
    return None


def default_slug(org_id: str) -> str | None:
    """The org id as the slug when it makes one."""
    slug = org_id.strip().lower()
    return slug if SLUG.match(slug) else None


def mask_email(email: str) -> str:
    """What the page shows of the address: enough to recognise it, not to read it out."""
    local, _, domain = email.strip().partition("@")
    return f"{local[:1]}{'•' * min(max(len(local) - 1, 1), 6)}@{domain}"


def rate_refusal(by_address: int, by_source: int, limits: Limits) -> PrivacyRefused | None:
    """Codes made in the window for this address and from this source, before a new one."""
    wait = limits.window_seconds
    if by_address >= limits.per_address:
        return PrivacyRefused(
            429,
            "rate_limited_address",
            f"Too many codes were sent to this address in the last {wait // 60} minutes. "
            "Use the last code you received, or try again later.",
            wait,
        )
    if by_source >= limits.per_source:
        return PrivacyRefused(
            429,
            "rate_limited_source",
            "Too many codes were asked for from your network just now. Try again later.",
            wait,
        )
    return None


def replayed() -> PrivacyRefused:
    return PrivacyRefused(
        409,
        "replayed_code",
        "This code was already used: your request was received. Check your email for "
        "the link to follow it.",
    )


def check_code(
    row: dict[str, Any] | None,
    *,
    subject_hash: str,
    code_hash: str,
    now: datetime,
    max_attempts: int,
) -> PrivacyRefused | None:
    """The verdict on a code given back for a challenge (None: right, in time, first use).
    A wrong code counts as an attempt; the caller records it."""
    if row is None:
        return PrivacyRefused(
            404, "unknown_challenge", "This confirmation is not known. Start again."
        )
    if row["used_at"] is not None:
        return replayed()
    if row["attempts"] >= max_attempts:
        return PrivacyRefused(
            429,
            "too_many_attempts",
            f"Too many wrong codes ({max_attempts}): this code no longer works. Ask for a new one.",
        )
    if now >= row["expires_at"]:
        return PrivacyRefused(
            410, "expired_code", "This code has expired. Ask for a new one: it comes at once."
        )
    if row["subject_hash"] != subject_hash or row["code_hash"] != code_hash:
        left = max_attempts - row["attempts"] - 1
        if left <= 0:
            return PrivacyRefused(
                429,
                "too_many_attempts",
                f"That code is not right, and that was the last of {max_attempts} attempts: "
                "this code no longer works. Ask for a new one.",
            )
        return PrivacyRefused(
            422,
            "wrong_code",
            f"That code is not right. Check the email and try again "
            f"({left} attempt{'' if left == 1 else 's'} left).",
        )
    return None


def subject_caller(org: dict[str, Any], challenge_id: uuid.UUID) -> Caller:
    """The data subject, once the code proved the address: they act for themselves, through
    the centre, as an upstream service acts for the org (one subject, the org's window)."""
    return Caller(
        org_id=org["id"],
        org_name=org["name"],
        role="owner",
        key_id=challenge_id,
        recovery_window_days=org["recovery_window_days"],
        actor_kind="privacy_centre",
        actor_id=str(challenge_id),
    )


def subject_request(request_type: str, email: str, challenge_id: uuid.UUID) -> RequestIn:
    """The job a verified subject asked for: about their address, mails to it."""
    return RequestIn(
        type=REQUEST_TYPES[request_type],
        subject={"email": email},
        notify_email=email,
        request_id=f"privacy-centre:{challenge_id}",
        regulation="gdpr",
    )
