"""Export downloads: every attempt is checked (signed token, link not revoked, export ready,
caller in the export's org) and recorded in the audit trail, granted or not."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse

from services.exporter import store as exports
from services.intake import store
from services.intake.auth import runtime
from services.intake.routes_common import Owner, Viewer
from shared.crypto import CryptoError, parse_master_key, unwrap_key
from shared.events import make_event
from shared.events.exports import DownloadAttempted, LinkRevoked
from shared.events.topics import AUDIT
from shared.sealed_stream import open_stream
from shared.tokens import TokenError, verify

router = APIRouter()


async def _audit(request: Request, who: Viewer, job_id: uuid.UUID, payload: object) -> None:
    env = make_event(payload, actor=who.actor, job_id=job_id, org_id=who.org_id)  # type: ignore[arg-type]
    rt = runtime(request)
    async with rt.pool.acquire() as conn:
        await store.add_outbox(conn, AUDIT, env)
    rt.relay.wake()


@router.get("/v1/exports/{job_id}/download")
async def download(
    job_id: uuid.UUID, request: Request, who: Viewer, token: str | None = None
) -> StreamingResponse:
    rt = runtime(request)
    client = request.client.host if request.client else None
    token_id: str | None = None

    async def refuse(status: int, reason: str) -> HTTPException:
        await _audit(
            request,
            who,
            job_id,
            DownloadAttempted(granted=False, reason=reason, token_id=token_id, client=client),
        )
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
    if row is None or row["org_id"] != who.org_id:
        # Another org's export is reported as absent: its existence is not leaked.
        raise await refuse(404, f"no export {job_id} in organisation {who.org_id}")
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
    obj = await rt.s3.get_object(Bucket=rt.settings.exports_bucket, Key=row["object_key"])
    await _audit(
        request,
        who,
        job_id,
        DownloadAttempted(granted=True, reason="granted", token_id=token_id, client=client),
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
        headers={"Content-Disposition": f'attachment; filename="lethe-export-{job_id}.zip"'},
    )


@router.post("/v1/exports/{job_id}/revoke")
async def revoke(job_id: uuid.UUID, request: Request, who: Owner) -> dict[str, object]:
    revoked = await exports.revoke_links(runtime(request).pool, job_id, who.org_id)
    if not revoked:
        raise HTTPException(404, f"no active link for export {job_id} in {who.org_id}")
    await _audit(request, who, job_id, LinkRevoked())
    return {"job_id": str(job_id), "links_revoked": revoked}
