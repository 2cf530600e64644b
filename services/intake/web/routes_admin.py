"""Audit trail (list, verify, export), API keys, and the data subject's status page."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from services.intake import store
from services.intake.http.deps import runtime, uow
from services.intake.service import keys as key_cases
from services.intake.service.errors import NotFound
from services.intake.web.common import (
    PREFIX,
    Session,
    WebError,
    checked_form,
    render,
    require,
    session,
    status_mac,
)
from services.intake.web.progress import progress_events, progress_view, sse
from services.intake.web.routes_job import link_token
from shared.auditchain.keys import trusted_public_keys
from shared.auditchain.verify import verify_chain
from shared.compare import same_secret
from shared.readmodels import audit, exports

router = APIRouter(prefix=PREFIX, include_in_schema=False)
public = APIRouter(include_in_schema=False)
WebSession = Annotated[Session, Depends(session)]
PAGE = 100
COLUMNS = (
    "seq,event_id,occurred_at,recorded_at,actor,action,job_id,subject_hash,details,hash"
).split(",")


def _filters(request: Request) -> dict[str, Any]:
    q = request.query_params
    out: dict[str, Any] = {
        k: q.get(k, "").strip() for k in ("job", "action", "actor", "from", "to")
    }
    return out


def _parsed(f: dict[str, Any]) -> dict[str, Any]:
    try:
        job = uuid.UUID(f["job"]) if f["job"] else None
    except ValueError as exc:
        raise WebError(422, "The job filter takes a job id (as shown on the job's page).") from exc
    times: list[datetime | None] = []
    for name in ("from", "to"):
        try:
            t = datetime.fromisoformat(f[name]) if f[name] else None
        except ValueError as exc:
            raise WebError(422, f"'{f[name]}' is not a date or time (2026-01-31 14:00).") from exc
        times.append(t.astimezone() if t and t.tzinfo is None else t)
    return {
        "job_id": job,
        "action": f["action"] or None,
        "actor": f["actor"] or None,
        "since": times[0],
        "until": times[1],
    }


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(request: Request, s: WebSession, after: int = 0) -> Response:
    await require(request, s, "owner")
    f = _filters(request)
    rows = await audit.query(
        runtime(request).pool,
        audit.Query(s.who.org_id, **_parsed(f), after_seq=after, limit=PAGE),
    )
    return render(
        request,
        "audit.html",
        s,
        rows=rows,
        f=f,
        next_after=rows[-1]["seq"] if len(rows) == PAGE else None,
        query=urlencode({k: v for k, v in f.items() if v}),
    )


async def verdict_text(request: Request) -> tuple[bool, str]:
    trusted = trusted_public_keys(runtime(request).settings)
    if not trusted:
        return False, "No trusted public key is configured (LETHE_AUDIT_PUBLIC_KEYS)."
    v = await verify_chain(runtime(request).pool, trusted)
    if v.ok:
        # The chain is shared by every organisation: no counts of others' rows are shown.
        text = f"Chain intact: every row and all {v.checkpoints} signed checkpoints verify."
        if v.unsigned_tail:
            text += " The newest rows are not yet under a signed checkpoint (one follows soon)."
        return True, text
    if v.kind == "checkpoint":
        return False, f"Checkpoint at seq {v.bad_checkpoint_seq} does not verify: {v.reason}"
    return False, f"Chain broken at row {v.first_bad_seq}: {v.reason}"


@router.post("/audit/verify", response_class=HTMLResponse)
async def audit_verify(request: Request, s: WebSession) -> Response:
    await checked_form(request, s, "owner")
    ok, text = await verdict_text(request)
    f = _filters(request)
    rows = await audit.query(
        runtime(request).pool,
        audit.Query(s.who.org_id, **_parsed(f), after_seq=0, limit=PAGE),
    )
    return render(
        request,
        "audit.html",
        s,
        rows=rows,
        f=f,
        next_after=rows[-1]["seq"] if len(rows) == PAGE else None,
        query=urlencode({k: v for k, v in f.items() if v}),
        verdict=text,
        verdict_ok=ok,
    )


def _line(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": row["seq"],
        "event_id": str(row["event_id"]),
        "occurred_at": row["occurred_at"].isoformat(),
        "recorded_at": row["recorded_at"].isoformat(),
        "actor": row["actor"],
        "action": row["action"],
        "job_id": str(row["job_id"]) if row["job_id"] else None,
        "subject_hash": row["subject_hash"],
        "details": row["details"],
        "hash": row["hash"],
    }


@router.get("/audit/export")
async def audit_export(request: Request, s: WebSession, format: str = "jsonl") -> Response:
    await require(request, s, "owner")
    if format not in ("jsonl", "csv"):
        raise WebError(422, "Export as jsonl or csv.")
    where = _parsed(_filters(request))
    pool = runtime(request).pool

    async def body() -> AsyncIterator[str]:
        after = 0
        if format == "csv":
            yield ",".join(COLUMNS) + "\r\n"
        while True:
            rows = await audit.query(
                pool, audit.Query(s.who.org_id, **where, after_seq=after, limit=1000)
            )
            for r in rows:
                line = _line(r)
                if format == "jsonl":
                    yield json.dumps(line) + "\n"
                else:
                    out = io.StringIO()
                    line["details"] = json.dumps(line["details"])
                    csv.writer(out).writerow(line.values())
                    yield out.getvalue()
            if len(rows) < 1000:
                return
            after = rows[-1]["seq"]

    name = f"lethe-audit-{s.who.org_id}.{format}"
    return StreamingResponse(
        body(),
        media_type="application/x-ndjson" if format == "jsonl" else "text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/keys", response_class=HTMLResponse)
async def keys_page(request: Request, s: WebSession, new_key: str | None = None) -> Response:
    await require(request, s, "owner")
    keys = await store.list_api_keys(runtime(request).pool, s.who.org_id)
    return render(request, "keys.html", s, keys=keys, new_key=new_key)


@router.post("/keys", response_class=HTMLResponse)
async def create_key(request: Request, s: WebSession) -> Response:
    data = await checked_form(request, s, "owner")
    role, name = data.get("role", ""), data.get("name", "").strip()
    if role not in ("viewer", "admin", "owner") or not 1 <= len(name) <= 100:
        raise WebError(422, "Give the key a name (up to 100 characters) and a role.")
    _, key = await key_cases.create_key(uow(request), s.who.actor, s.who.org_id, role, name)
    # Shown once, in this answer only: it is stored as a hash.
    keys = await store.list_api_keys(runtime(request).pool, s.who.org_id)
    return render(request, "keys.html", s, keys=keys, new_key=key, new_name=name)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: uuid.UUID, s: WebSession) -> Response:
    await checked_form(request, s, "owner")
    try:
        await key_cases.revoke_key(uow(request), s.who.actor, s.who.org_id, key_id)
    except NotFound as exc:
        raise WebError(404, "No such active key in your organisation.") from exc
    return RedirectResponse(f"{PREFIX}/keys", 303)


async def _subject_job(request: Request, job_id: uuid.UUID, mac: str) -> dict[str, Any]:
    key = runtime(request).settings.download_token_key.get_secret_value().encode()
    if not same_secret(mac, status_mac(key, job_id)):
        raise WebError(404, "This status link is not valid. Use the link from your email.")
    row = await store.job_any_org(runtime(request).pool, job_id)
    if row is None:
        raise WebError(404, "This status link is not valid. Use the link from your email.")
    return row


@public.get("/status/{job_id}/{mac}", response_class=HTMLResponse)
async def subject_status(request: Request, job_id: uuid.UUID, mac: str) -> Response:
    """For the data subject: what was asked, when, its status and progress; nothing else."""
    row = await _subject_job(request, job_id, mac)
    due = row["extended_due_at"] or row["due_at"]
    return render(
        request,
        "status.html",
        None,
        job=row,
        due=due,
        p=progress_view(row),
        stream=f"/status/{job_id}/{mac}/stream",
        download=await _subject_download(request, row),
    )


async def _subject_download(request: Request, row: dict[str, Any]) -> dict[str, Any] | None:
    """The export's download link while the subject can use it: ready, not expired, not
    revoked, downloads left. The status link is as secret as the emailed one (same key)."""
    if row["type"] != "export" or row["status"] != "ready":
        return None
    rt = runtime(request)
    link = await exports.live_link(rt.pool, row["id"], None)
    if link is None or link["downloads"] >= link["max_downloads"]:
        return None
    key = rt.settings.download_token_key.get_secret_value().encode()
    return {
        "href": f"/v1/exports/{row['id']}/download?token={link_token(key, row['id'], link)}",
        "expires_at": link["expires_at"],
        "left": link["max_downloads"] - link["downloads"],
        "max": link["max_downloads"],
    }


@public.get("/status/{job_id}/{mac}/stream")
async def subject_stream(request: Request, job_id: uuid.UUID, mac: str) -> Response:
    await _subject_job(request, job_id, mac)
    return sse(request, progress_events(request, [job_id], None), "link", str(job_id))
