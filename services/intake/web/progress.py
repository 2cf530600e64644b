"""Live progress: a job's progress as the pages show it, and the server-sent events that
update it (the job rows are what intake folds from the progress topic). Streams are capped
per API key and per status link (`LETHE_SSE_MAX_PER_*`), per replica."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from services.intake import store
from services.intake.http.deps import runtime
from shared import lifecycle

STREAM_SECONDS = 600  # an SSE stream ends after this; the browser reconnects by itself


def not_final(status: str) -> bool:
    return status in (lifecycle.HELD, *lifecycle.ACTIVE, "purging")


def progress_view(row: dict[str, Any]) -> dict[str, Any]:
    total, done = row["total"], row["done"]
    if total:
        percent = round(100 * done / total, 1)
    else:
        percent = 0.0 if not_final(row["status"]) else 100.0
    if row["status"] in ("cancelled", "failed", "restored") and total:
        percent = round(100 * done / total, 1)
    return {
        "id": str(row["id"]),
        "status": row["status"],
        "phase": row["phase"],
        "done": done,
        "total": total,
        "percent": percent,
        "rows_per_second": row["rows_per_second"],
        "eta_seconds": row["eta_seconds"],
        "final": not not_final(row["status"]),
    }


async def progress_events(
    request: Request, job_ids: list[uuid.UUID], org_id: str | None
) -> AsyncIterator[str]:
    """One SSE message per job whose progress changed; the stream ends when all are done.
    The job rows are what intake folds from the progress topic, so this is that topic's view."""
    pool = runtime(request).pool
    last: dict[str, dict[str, Any]] = {}
    deadline = asyncio.get_running_loop().time() + STREAM_SECONDS
    yield "retry: 2000\n\n"
    while asyncio.get_running_loop().time() < deadline:
        views = [progress_view(r) for r in await store.progress_rows(pool, job_ids, org_id)]
        for v in views:
            if last.get(v["id"]) != v:
                last[v["id"]] = v
                yield f"event: progress\ndata: {json.dumps(v)}\n\n"
        if not views or all(v["final"] for v in views):
            yield "event: end\ndata: {}\n\n"
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.4)


HOLDERS = {"key": "API key", "link": "status link"}


class _Held(StreamingResponse):
    """A stream holding one of its holder's slots until it ends or the client leaves."""

    def __init__(self, body: AsyncIterator[str], release: Callable[[], None]) -> None:
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        super().__init__(body, media_type="text/event-stream", headers=headers)
        self._body, self._release = body, release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
            if isinstance(self._body, AsyncGenerator):
                await self._body.aclose()


def sse(request: Request, body: AsyncIterator[str], kind: str, holder: str) -> Response:
    """The stream, if its holder (an API key, a status link) has a slot left; else 429."""
    slots = runtime(request).streams
    if not slots.take(kind, holder):
        cap = slots.caps[kind]
        reason = (
            f"too many live progress streams for this {HOLDERS[kind]}: at most {cap} at once. "
            "Close another page showing progress, then reload."
        )
        return PlainTextResponse(reason, 429, headers={"Retry-After": "10"})
    return _Held(body, lambda: slots.give_back(kind, holder))
