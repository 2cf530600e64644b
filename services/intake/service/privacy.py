"""The privacy centre's use cases: a subject asks for a code, gives it back, and the job is
created through the one submit use case (channel `privacy_centre`); owners turn the centre
on and off. Every step is audited (the code never, the address as the subject hash).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.intake.domain import privacy as rules
from services.intake.domain.callers import Caller
from services.intake.service import requests
from services.intake.service.errors import Conflict, Invalid
from services.intake.service.orgs import own_org
from services.intake.service.requests import SubmitPolicy, Submitted
from services.intake.service.uow import UnitOfWork
from services.intake.settings import IntakeSettings
from services.intake.store import privacy as store
from shared import privacy_codes as codes
from shared.events import Actor, Payload, make_event
from shared.events.notifications import SendEmail
from shared.events.privacy import (
    PrivacyCentreChanged,
    PrivacyCodeRefused,
    PrivacyCodeRequested,
    PrivacyCodeVerified,
)
from shared.events.topics import AUDIT, NOTIFICATIONS
from shared.hashing import subject_hash


@dataclass(frozen=True)
class CentrePolicy:
    hash_key: bytes
    code_key: bytes
    limits: rules.Limits
    submit: SubmitPolicy

    @classmethod
    def from_settings(cls, s: IntakeSettings) -> CentrePolicy:
        key = s.subject_hash_key.get_secret_value().encode()
        return cls(
            hash_key=key,
            code_key=codes.code_key(key),
            limits=rules.Limits(
                ttl_seconds=s.privacy_code_ttl_seconds,
                max_attempts=s.privacy_code_max_attempts,
                per_address=s.privacy_codes_per_address,
                per_source=s.privacy_codes_per_source,
                window_seconds=s.privacy_code_window_seconds,
            ),
            submit=SubmitPolicy.from_settings(s),
        )


@dataclass(frozen=True)
class Asked:
    """Who asks, as the audit trail may hold it: the per-org subject hash of the address and
    a keyed hash of the client address."""

    org: dict[str, Any]
    email: str
    subject_hash: str
    source_hash: str

    @classmethod
    def of(cls, p: CentrePolicy, org: dict[str, Any], email: str, client: str) -> Asked:
        email = email.strip()
        s_hash = subject_hash(p.hash_key, org["id"], {"email": email})
        return cls(org, email, s_hash, codes.keyed(p.hash_key, "source", client))


def _event(asked: Asked, payload: Payload, actor_id: str) -> Any:
    return make_event(
        payload,
        actor=Actor(kind="privacy_centre", id=actor_id),
        org_id=asked.org["id"],
        subject_hash=asked.subject_hash,
    )


async def _refuse(
    uow: UnitOfWork, asked: Asked, refusal: rules.PrivacyRefused, challenge: str | None
) -> rules.PrivacyRefused:
    """Audit a refusal (its own transaction, when none is open) and hand it back to raise."""
    env = _event(
        asked,
        PrivacyCodeRefused(
            reason=refusal.reason,
            challenge_id=challenge,
            source_hash=asked.source_hash,
        ),
        challenge or "-",
    )
    async with uow:
        await uow.emit(AUDIT, env, timeline=False)
    return refusal


async def request_code(
    uow: UnitOfWork, p: CentrePolicy, asked: Asked, request_type: str, now: datetime
) -> uuid.UUID:
    """A new challenge and its code mailed (sealed, via the notifier); raises PrivacyRefused
    when a rate limit is reached (audited, nothing else written)."""
    lim = p.limits
    challenge_id = uuid.uuid4()
    code = codes.new_code()
    expires = now + timedelta(seconds=lim.ttl_seconds)
    address_key = codes.keyed(p.hash_key, "address", asked.email)
    async with uow:
        since = now - timedelta(seconds=lim.window_seconds)
        counts = await store.recent_counts(uow.conn, address_key, asked.source_hash, since)
        refusal = rules.rate_refusal(*counts, lim)
        if refusal is None:
            await store.insert_challenge(
                uow.conn,
                {
                    "id": challenge_id,
                    "org_id": asked.org["id"],
                    "request_type": request_type,
                    "subject_hash": asked.subject_hash,
                    "address_key": address_key,
                    "source_key": asked.source_hash,
                    "code_hash": codes.code_hash(p.hash_key, challenge_id, code),
                    "expires_at": expires,
                },
            )
            mail = SendEmail(
                template="privacy_code",
                to=asked.email,
                audience="requester",
                context={
                    "challenge_id": str(challenge_id),
                    "code_sealed": codes.seal_code(p.code_key, challenge_id, code),
                    "minutes": lim.ttl_seconds // 60,
                    "what": rules.WHAT[request_type],
                    "org_name": asked.org["name"],
                },
            )
            await uow.emit(NOTIFICATIONS, _event(asked, mail, str(challenge_id)), timeline=False)
            requested = PrivacyCodeRequested(
                challenge_id=str(challenge_id),
                request_type=rules.REQUEST_TYPES[request_type],
                source_hash=asked.source_hash,
                expires_at=expires.isoformat(),
            )
            await uow.emit(AUDIT, _event(asked, requested, str(challenge_id)), timeline=False)
    if refusal is not None:
        raise await _refuse(uow, asked, refusal, None)
    return challenge_id


async def verify_code(
    uow: UnitOfWork, p: CentrePolicy, asked: Asked, challenge_id: uuid.UUID, code: str
) -> Submitted:
    """The code given back: the job created (and the challenge used) in one transaction, or
    PrivacyRefused naming the rule (a wrong code counted and audited, no job)."""
    lim = p.limits
    async with uow:
        row = await store.lock_challenge(uow.conn, asked.org["id"], challenge_id)
        refusal = rules.check_code(
            row,
            subject_hash=asked.subject_hash,
            code_hash=codes.code_hash(p.hash_key, challenge_id, code),
            now=datetime.now(UTC),
            max_attempts=lim.max_attempts,
        )
        if refusal is not None and refusal.reason in ("wrong_code", "too_many_attempts"):
            if row is not None and row["attempts"] < lim.max_attempts:
                await store.count_attempt(uow.conn, challenge_id)
    if refusal is not None:
        raise await _refuse(uow, asked, refusal, str(challenge_id))
    assert row is not None
    req = rules.subject_request(row["request_type"], asked.email, challenge_id)
    who: Caller = rules.subject_caller(asked.org, challenge_id)

    async def consume(u: UnitOfWork, job: Any) -> None:
        attempts = await store.consume(u.conn, challenge_id, job.job_id, lim.max_attempts)
        if attempts is None:  # used (or dead) since the check: the job goes back too
            raise Conflict("replayed")
        verified = PrivacyCodeVerified(
            challenge_id=str(challenge_id),
            request_type=row["request_type"],
            source_hash=asked.source_hash,
            attempts=attempts,
        )
        env = make_event(
            verified,
            actor=who.actor,
            job_id=job.job_id,
            org_id=who.org_id,
            subject_hash=asked.subject_hash,
        )
        await u.emit(AUDIT, env, timeline=True)

    try:
        done = await requests.submit(
            uow, req, who, p.submit, channel="privacy_centre", with_job=consume
        )
    except Conflict:
        done = None
    if done is None or not done.created:  # another submission of the same code won
        raise await _refuse(uow, asked, rules.replayed(), str(challenge_id))
    return done


# --- the owner's setting ----------------------------------------------------------------


async def centre(uow: UnitOfWork, who: Caller, org: str) -> tuple[bool, str | None]:
    own_org(who, org, "privacy centre")
    return await store.centre_setting(uow.pool, org)


async def set_centre(
    uow: UnitOfWork, who: Caller, org: str, enabled: bool, slug: str | None
) -> tuple[bool, str | None]:
    """Turn the centre on or off (slug: given, kept, or the org id); audited when it
    changes. Raises Invalid for a bad slug, Conflict for one another org has."""
    own_org(who, org, "privacy centre")
    _, current = await store.centre_setting(uow.pool, org)
    slug = (slug or "").strip().lower() or current or rules.default_slug(org)
    if slug is None:
        raise Invalid("slug: the organisation id makes no slug; give one", ["slug: required"])
    if problem := rules.slug_problem(slug):
        raise Invalid(problem, [problem])
    async with uow:
        old = await store.set_centre(uow.conn, org, enabled, slug)
        if old is None:
            raise Conflict(f"slug: {slug!r} is taken by another organisation; choose another")
        if old != (enabled, slug):
            changed = PrivacyCentreChanged(
                old_enabled=old[0], new_enabled=enabled, old_slug=old[1], new_slug=slug
            )
            env = make_event(changed, actor=who.actor, org_id=org)
            await uow.emit(AUDIT, env, timeline=False)
    return enabled, slug
