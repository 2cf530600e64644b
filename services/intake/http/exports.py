"""`GET /v1/exports/{job}/download` and `POST /v1/exports/{job}/revoke` (the rules and the
audit of every attempt: `service.exports`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import StreamingResponse

from services.intake.domain import Caller
from services.intake.http.bodies import LinksRevoked, ok
from services.intake.http.contract import Problem, answers
from services.intake.http.deps import Owner, Uow, caller, fail, runtime
from services.intake.http.deps import uow as new_uow
from services.intake.service import exports
from services.intake.service.errors import ServiceError
from shared.sealed_stream import open_stream

router = APIRouter()


@router.get(
    "/v1/exports/{job_id}/download",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The export, decrypted, as a zip file.",
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
        },
        **answers(403, 404, 410, 503),
        500: {"model": Problem, "description": "The export's key cannot be unwrapped."},
    },
)
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
    """The decrypted export as a zip stream (also the web UI's download, as a member)."""
    rt = runtime(request)
    client = request.client.host if request.client else None
    try:
        got = await exports.download(
            new_uow(request), rt.s3, rt.settings, job_id, token, member, client
        )
    except exports.DownloadRefused as exc:  # audited as a DownloadAttempted
        raise HTTPException(exc.status, exc.message) from exc

    async def body() -> AsyncIterator[bytes]:
        async def source() -> AsyncIterator[bytes]:
            async for piece in got.body.iter_chunks(1 << 20):
                yield piece

        async for plain in open_stream(got.key, job_id.bytes, source()):
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


@router.post(
    "/v1/exports/{job_id}/revoke",
    response_model=None,
    responses={200: ok(LinksRevoked, "The export's links, revoked."), **answers(403, 404)},
)
async def revoke(job_id: uuid.UUID, request: Request, who: Owner, uow: Uow) -> dict[str, object]:
    try:
        revoked = await exports.revoke(uow, who, job_id)
    except ServiceError as exc:
        await fail(request, exc, who)
    return {"job_id": str(job_id), "links_revoked": revoked}
