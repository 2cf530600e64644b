"""Live progress: a job's progress as the pages show it, and the server-sent events that
update it (the job rows are what intake folds from the progress topic)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from services.intake import store
from services.intake.http.deps import runtime
from shared import lifecycle

STREAM_SECONDS = 600  # an SSE stream ends after this; the browser reconnects by itself


def not_final(status: str) -> bool:
    return status in (*lifecycle.ACTIVE, "purging")


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


def sse(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
