"""Export downloads: every attempt is checked and recorded in the audit trail, granted or not.

The emailed link is a bearer link for the data subject: signed, bound to one export, expiring,
revocable, and good for at most `max_downloads` downloads (fixed when it was issued); it needs
no API key. An org member may present it with their API key (or use the web UI's download):
the key must belong to the export's organisation, and such downloads do not use up the link.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import StreamingResponse

from services.intake import store
from services.intake.auth import caller, runtime
from services.intake.domain import Caller
from services.intake.routes_common import Owner
from shared.crypto import CryptoError, parse_master_key, unwrap_key
from shared.events import Actor, make_event
from shared.events.exports import DownloadAttempted, LinkRevoked
from shared.events.topics import AUDIT
from shared.readmodels import exports
from shared.sealed_stream import open_stream
from shared.tokens import TokenError, verify

router = APIRouter()
LINK_ACTOR = "download_link"  # actor kind of a download through the bearer link alone


async def _audit(
    request: Request, actor: Actor, org_id: str | None, job_id: uuid.UUID, payload: object
) -> None:
    env = make_event(payload, actor=actor, job_id=job_id, org_id=org_id)  # type: ignore[arg-type]
    rt = runtime(request)
    async with rt.pool.acquire() as conn:
        await store.add_outbox(conn, AUDIT, env)
    rt.relay.wake()


@router.get("/v1/exports/{job_id}/download")
async def download(
    job_id: uuid.UUID,
    request: Request,
    token: str | None = None,
    authorization: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """The link alone (the data subject), or the link with an API key (an org member)."""
    member = await caller(request, authorization) if authorization is not None else None
    return await serve(request, job_id, token, member)


async def serve(
    request: Request, job_id: uuid.UUID, token: str | None, member: Caller | None
) -> StreamingResponse:
    rt = runtime(request)
    client = request.client.host if request.client else None
    token_id: str | None = None
    # A refused attempt through the link alone is filed under the export's organisation.
    org_id = member.org_id if member else await exports.org_of_export(rt.pool, job_id)

    def actor() -> Actor:
        return member.actor if member else Actor(kind=LINK_ACTOR, id=token_id or "-")

    async def refuse(status: int, reason: str) -> HTTPException:
        attempt = DownloadAttempted(granted=False, reason=reason, token_id=token_id, client=client)
        await _audit(request, actor(), org_id, job_id, attempt)
        return HTTPException(status, reason)

    if not token:
        raise await refuse(403, "token: missing (use the link from the email)")
    try:
        claims = verify(
            rt.settings.download_token_key.get_secret_value().encode(), token, datetime.now(UTC)
        )
    except TokenError as exc:
        raise await refuse(403, f"token: {exc}") from exc
    token_id = str(claims.token_id)
    if claims.job_id != job_id:
        raise await refuse(403, "token: issued for another export")
    row = await exports.for_download(rt.pool, job_id, claims.token_id)
    if row is None or (member is not None and row["org_id"] != member.org_id):
        # Another org's export is reported as absent: its existence is not leaked.
        where = f" in organisation {member.org_id}" if member else ""
        raise await refuse(404, f"no export {job_id}{where}")
    if row["revoked_at"] is not None:
        raise await refuse(403, "token: the link was revoked")
    if row["status"] != "ready" or row["wrapped_key"] is None:
        raise await refuse(410, f"export is {row['status']}, not downloadable")
    try:
        key = unwrap_key(
            parse_master_key(rt.settings.master_key.get_secret_value()),
            row["wrapped_key"],
            b"export:" + job_id.bytes,
        )
    except CryptoError as exc:
        raise await refuse(500, "export key cannot be unwrapped") from exc
    if member is not None:
        reason = "granted (org member)"
    else:
        used = await exports.use_link(rt.pool, claims.token_id)
        if used is None:
            raise await refuse(
                410,
                f"link: used up (it allows {row['max_downloads']} downloads, all made); "
                "ask the organisation that sent it for a new export",
            )
        reason = f"granted (download {used[0]} of {used[1]})"
    try:
        obj = await rt.s3.get_object(Bucket=rt.settings.exports_bucket, Key=row["object_key"])
    except Exception as exc:
        if member is None:
            await exports.give_back(rt.pool, claims.token_id)  # nothing was handed out
        raise await refuse(503, "the export cannot be read just now; try again later") from exc
    await _audit(
        request,
        actor(),
        org_id,
        job_id,
        DownloadAttempted(granted=True, reason=reason, token_id=token_id, client=client),
    )

    async def body() -> AsyncIterator[bytes]:
        async def source() -> AsyncIterator[bytes]:
            async for piece in obj["Body"].iter_chunks(1 << 20):
                yield piece

        async for plain in open_stream(key, job_id.bytes, source()):
            yield plain

    return StreamingResponse(
        body(),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="lethe-export-{job_id}.zip"',
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )


@router.post("/v1/exports/{job_id}/revoke")
async def revoke(job_id: uuid.UUID, request: Request, who: Owner) -> dict[str, object]:
    revoked = await exports.revoke_links(runtime(request).pool, job_id, who.org_id)
    if not revoked:
        raise HTTPException(404, f"no active link for export {job_id} in {who.org_id}")
    await _audit(request, who.actor, who.org_id, job_id, LinkRevoked())
    return {"job_id": str(job_id), "links_revoked": revoked}
