"""Export downloads and link revocation. Every download attempt is checked and recorded in the
audit trail, granted or not (the refusal is committed before it is raised).

The emailed link is a bearer link for the data subject: signed, bound to one export, expiring,
revocable, and good for at most `max_downloads` downloads (fixed when it was issued). An org
member may present it with their API key (or use the web UI's download): the key must belong
to the export's organisation, and such downloads do not use up the link.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.intake.domain import Caller
from services.intake.service.errors import NotFound, ServiceError
from services.intake.service.uow import UnitOfWork
from services.intake.settings import IntakeSettings
from shared.crypto import CryptoError, parse_master_key, unwrap_key
from shared.events import Actor, Payload, make_event
from shared.events.exports import DownloadAttempted, LinkRevoked
from shared.events.topics import AUDIT
from shared.readmodels import exports
from shared.tokens import DownloadToken, TokenError, verify

LINK_ACTOR = "download_link"  # actor kind of a download through the bearer link alone


class DownloadRefused(ServiceError):
    """A refused download (already in the audit trail)."""


@dataclass(frozen=True)
class Download:
    key: bytes  # the export's data key, to decrypt the stream
    body: Any  # the S3 object's body (streamed, decrypted on the way out)


async def _audit(
    uow: UnitOfWork, actor: Actor, org_id: str | None, job_id: uuid.UUID, payload: Payload
) -> None:
    async with uow:
        env = make_event(payload, actor=actor, job_id=job_id, org_id=org_id)
        await uow.emit(AUDIT, env, timeline=False)


@dataclass
class _Attempt:
    """One download attempt: who, for which export, filed under which organisation."""

    uow: UnitOfWork
    job_id: uuid.UUID
    member: Caller | None
    client: str | None
    org_id: str | None
    token_id: str | None = field(default=None)

    def actor(self) -> Actor:
        if self.member:
            return self.member.actor
        return Actor(kind=LINK_ACTOR, id=self.token_id or "-")

    async def record(self, granted: bool, reason: str) -> None:
        attempt = DownloadAttempted(
            granted=granted, reason=reason, token_id=self.token_id, client=self.client
        )
        await _audit(self.uow, self.actor(), self.org_id, self.job_id, attempt)

    async def refuse(self, status: int, reason: str) -> DownloadRefused:
        await self.record(False, reason)
        return DownloadRefused(reason, status)


async def _checked(
    a: _Attempt, settings: IntakeSettings, token: str | None
) -> tuple[DownloadToken, dict[str, Any], bytes]:
    """The link's claims, the export's row and its data key, or a refusal."""
    if not token:
        raise await a.refuse(403, "token: missing (use the link from the email)")
    try:
        claims = verify(
            settings.download_token_key.get_secret_value().encode(), token, datetime.now(UTC)
        )
    except TokenError as exc:
        raise await a.refuse(403, f"token: {exc}") from exc
    a.token_id = str(claims.token_id)
    if claims.job_id != a.job_id:
        raise await a.refuse(403, "token: issued for another export")
    row = await exports.for_download(a.uow.pool, a.job_id, claims.token_id)
    if row is None or (a.member is not None and row["org_id"] != a.member.org_id):
        # Another org's export is reported as absent: its existence is not leaked.
        where = f" in organisation {a.member.org_id}" if a.member else ""
        raise await a.refuse(404, f"no export {a.job_id}{where}")
    if row["revoked_at"] is not None:
        raise await a.refuse(403, "token: the link was revoked")
    if row["status"] != "ready" or row["wrapped_key"] is None:
        raise await a.refuse(410, f"export is {row['status']}, not downloadable")
    try:
        key = unwrap_key(
            parse_master_key(settings.master_key.get_secret_value()),
            row["wrapped_key"],
            b"export:" + a.job_id.bytes,
        )
    except CryptoError as exc:
        raise await a.refuse(500, "export key cannot be unwrapped") from exc
    return claims, row, key


async def download(
    uow: UnitOfWork,
    s3: Any,
    settings: IntakeSettings,
    job_id: uuid.UUID,
    token: str | None,
    member: Caller | None,
    client: str | None,
) -> Download:
    """The export through its link: alone (the data subject, counted against the link's
    limit) or with an org member's key. Raises DownloadRefused (audited)."""
    # A refused attempt through the link alone is filed under the export's organisation.
    org_id = member.org_id if member else await exports.org_of_export(uow.pool, job_id)
    a = _Attempt(uow, job_id, member, client, org_id)
    claims, row, key = await _checked(a, settings, token)
    if member is not None:
        reason = "granted (org member)"
    else:
        used = await exports.use_link(uow.pool, claims.token_id)
        if used is None:
            raise await a.refuse(
                410,
                f"link: used up (it allows {row['max_downloads']} downloads, all made); "
                "ask the organisation that sent it for a new export",
            )
        reason = f"granted (download {used[0]} of {used[1]})"
    try:
        obj = await s3.get_object(Bucket=settings.exports_bucket, Key=row["object_key"])
    except Exception as exc:
        if member is None:
            await exports.give_back(uow.pool, claims.token_id)  # nothing was handed out
        raise await a.refuse(503, "the export cannot be read just now; try again later") from exc
    await a.record(True, reason)
    return Download(key=key, body=obj["Body"])


async def revoke(uow: UnitOfWork, who: Caller, job_id: uuid.UUID) -> int:
    """Revoke every live link of an export (audited); returns how many."""
    revoked = await exports.revoke_links(uow.pool, job_id, who.org_id)
    if not revoked:
        raise NotFound(f"no active link for export {job_id} in {who.org_id}")
    await _audit(uow, who.actor, who.org_id, job_id, LinkRevoked())
    return revoked
