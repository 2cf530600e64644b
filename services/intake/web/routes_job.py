"""One job: timeline, per-table counts, review items, and the commands people send."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.intake import deadlines, store
from services.intake.http.deps import runtime, uow
from services.intake.http.exports import serve as serve_download
from services.intake.http.views import job_view, task_view
from services.intake.service import jobs, tasks
from services.intake.service.errors import DeadlineBroken, NotFound, ServiceError
from services.intake.store.approvals import links_of
from services.intake.web.common import (
    PREFIX,
    Session,
    WebError,
    all_values,
    checked_form,
    render,
    sentence,
    session,
    status_path,
)
from shared import lifecycle
from shared.events.jobs import Item
from shared.readmodels import exports
from shared.tokens import DownloadToken, sign

router = APIRouter(prefix=f"{PREFIX}/jobs", include_in_schema=False)
WebSession = Annotated[Session, Depends(session)]

DONE_MESSAGES = {
    "submitted": "Request received. Progress shows below as it happens.",
    "cancel": "Cancel sent. Rows already erased stay restorable.",
    "cancel_export": "Cancel sent. The export stops at its next batch; its partial file goes.",
    "restore": "Restore sent for the whole job.",
    "restore_items": "Restore sent for the selected items.",
    "extend": "Deadline extended.",
    "approved": "Approved: the request is being carried out now. The requester is told.",
    "denied": "Denied: nothing will be done. The requester is told why.",
    "duplicate": "Not started: this subject already has an open request of this type, shown "
    "here. Yours is linked to it, and its requester is told when it is done.",
    "task_done": "Task confirmed done.",
    "task_waived": "Task waived.",
}


async def _job(request: Request, s: Session, job_id: uuid.UUID) -> dict[str, Any]:
    return await _run(s, job_id, jobs.get(uow(request), s.who, job_id))


def per_table(events: list[dict[str, Any]], view: dict[str, Any]) -> list[dict[str, Any]]:
    """Planned and processed rows per table, from the timeline (erasures) or the result."""
    planned: dict[str, int] = {}
    done: dict[str, int] = {}
    for e in events:
        d = e["details"] or {}
        if e["type"] == "ErasurePlanned" and isinstance(d.get("per_table"), dict):
            planned = {str(k): int(v) for k, v in d["per_table"].items()}
        elif e["type"] in ("BatchErased", "BatchExported") and d.get("table"):
            done[d["table"]] = done.get(d["table"], 0) + int(d.get("rows") or 0)
    result = view.get("result") or {}
    if isinstance(result.get("rows_per_table"), dict):
        done = {str(k): int(v) for k, v in result["rows_per_table"].items()}
    names = sorted(set(planned) | set(done))
    return [{"table": n, "planned": planned.get(n), "done": done.get(n, 0)} for n in names]


def grouped(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive events of one type by one actor as one line with a count (batches)."""
    out: list[dict[str, Any]] = []
    for e in events:
        if out and out[-1]["type"] == e["type"] and out[-1]["actor"] == e["actor"]:
            out[-1]["count"] += 1
        else:
            out.append({**e, "count": 1})
    return out


@router.get("/{job_id}", response_class=HTMLResponse)
async def job_page(
    request: Request, job_id: uuid.UUID, s: WebSession, done: str | None = None
) -> Response:
    rt = runtime(request)
    row = await _job(request, s, job_id)
    view = job_view(row, datetime.now(UTC))
    events = await store.job_events(rt.pool, job_id)
    link = None
    if row["type"] == "export" and row["status"] == "ready":
        link = await exports.live_link(rt.pool, job_id, s.who.org_id)
    status = row["status"]
    limit = deadlines.max_extended_due(row["regulation"], row["due_at"])
    return render(
        request,
        "job.html",
        s,
        job=view,
        events=grouped(events),
        tables=per_table(events, view),
        done=DONE_MESSAGES.get(done or ""),
        link=link,
        status_link=str(request.base_url).rstrip("/") + status_path(request, job_id),
        can_cancel=s.can("admin") and status in lifecycle.COMMANDS["cancel"],
        can_restore=s.can("owner")
        and row["type"] == "erasure"
        and status in lifecycle.COMMANDS["restore"],
        can_extend=s.can("admin")
        and status in lifecycle.COMMANDS["extend"]
        and row["extended_due_at"] is None
        and limit is not None,
        max_extension=(limit - row["due_at"]).days if limit else 0,
        extension_rule=deadlines.source(row["regulation"]),
        live=status in (*lifecycle.ACTIVE, "purging"),
        can_decide=s.can("admin") and status in lifecycle.COMMANDS["approve"],
        linked=await links_of(rt.pool, job_id),
        tasks=[task_view(t) for t in await store.job_tasks(rt.pool, job_id)],
        can_close_tasks=s.can("admin"),
    )


async def _run(
    s: Session, job_id: uuid.UUID, use_case: Awaitable[dict[str, Any]]
) -> dict[str, Any]:
    """A job use case (the same as the API's), its refusal shown as a page."""
    try:
        return await use_case
    except NotFound as exc:
        raise WebError(404, f"There is no job {job_id} in {s.who.org_name}.") from exc
    except DeadlineBroken as exc:
        raise WebError(exc.status, exc.message + ".") from exc
    except ServiceError as exc:
        raise WebError(exc.status, sentence(exc.message)) from exc


def _back(job_id: uuid.UUID, done: str) -> Response:
    return RedirectResponse(f"{PREFIX}/jobs/{job_id}?done={done}", 303)


@router.post("/{job_id}/cancel")
async def cancel(request: Request, job_id: uuid.UUID, s: WebSession) -> Response:
    data = await checked_form(request, s, "admin")
    reason = data.get("reason", "").strip()[:2000] or None
    row = await _run(s, job_id, jobs.cancel(uow(request), s.who, job_id, reason))
    return _back(job_id, "cancel_export" if row["type"] == "export" else "cancel")


@router.post("/{job_id}/restore")
async def restore(request: Request, job_id: uuid.UUID, s: WebSession) -> Response:
    data = await checked_form(request, s, "owner")
    reason = data.get("reason", "").strip()[:2000] or None
    await _run(s, job_id, jobs.restore(uow(request), s.who, job_id, None, reason))
    return _back(job_id, "restore")


def parse_items(text: str, picked: list[str]) -> list[Item]:
    """Items as `table key` (or `table:key`) one per line, plus ticked `table:key` boxes."""
    items: list[Item] = []
    for line in [*text.splitlines(), *picked]:
        line = line.strip()
        if not line:
            continue
        table, sep, key = line.replace(":", " ", 1).partition(" ")
        if not sep or not key.strip() or len(table) > 63 or len(key.strip()) > 200:
            raise WebError(
                422, f"'{line[:80]}' is not an item: write the table, a space, then the key."
            )
        items.append(Item(table=table, key=key.strip()))
    if not items:
        raise WebError(422, "Choose or type at least one item to restore.")
    return items


@router.post("/{job_id}/restore-items")
async def restore_items(request: Request, job_id: uuid.UUID, s: WebSession) -> Response:
    data = await checked_form(request, s, "owner")
    items = parse_items(data.get("items", ""), all_values(await request.body(), "pick"))
    await _run(s, job_id, jobs.restore(uow(request), s.who, job_id, items, "selected items"))
    return _back(job_id, "restore_items")


def _number(data: dict[str, str], name: str) -> int | None:
    raw = data.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise WebError(422, f"Give the extension's {name} as a whole number.") from exc


@router.post("/{job_id}/extend")
async def extend(request: Request, job_id: uuid.UUID, s: WebSession) -> Response:
    data = await checked_form(request, s, "admin")
    await _run(s, job_id, jobs.get(uow(request), s.who, job_id))
    ask = deadlines.Extension(
        days=_number(data, "days"),
        months=_number(data, "months"),
        reason=data.get("reason", "").strip(),
    )
    links = runtime(request).settings.status_links()
    now = datetime.now(UTC)
    await _run(s, job_id, jobs.extend(uow(request), s.who, job_id, ask, now, links))
    return _back(job_id, "extend")


@router.post("/{job_id}/tasks/{task}/{outcome}")
async def close_task(
    request: Request, job_id: uuid.UUID, task: str, outcome: str, s: WebSession
) -> Response:
    """An admin confirms a manual task done, or waives it with a reason (as the API)."""
    data = await checked_form(request, s, "admin")
    if outcome not in ("done", "waive"):
        raise WebError(404, "No such action.")
    result: tasks.Outcome = "done" if outcome == "done" else "waived"
    reason = data.get("reason", "").strip() or None
    links = runtime(request).settings.status_links()
    closing = tasks.close(uow(request), s.who, job_id, task, result, reason, links)
    await _run(s, job_id, closing)
    return _back(job_id, f"task_{result}")


def link_token(key: bytes, job_id: uuid.UUID, link: dict[str, Any]) -> str:
    """An export link's bearer token (the same one the email carries), from its row."""
    return sign(
        key,
        DownloadToken(
            token_id=link["token_id"],
            job_id=job_id,
            recipient_hash=link["recipient_hash"],
            expires_at=link["expires_at"],
        ),
    )


@router.get("/{job_id}/download")
async def download(request: Request, job_id: uuid.UUID, s: WebSession) -> Response:
    """The export through its current link, as an org member (checked and audited as every
    download is; a member's download does not use up the subject's link)."""
    rt = runtime(request)
    link = await exports.live_link(rt.pool, job_id, s.who.org_id)
    if link is None:
        raise WebError(410, "This export has no valid link: it expired or was revoked.")
    key = rt.settings.download_token_key.get_secret_value().encode()
    return await serve_download(request, job_id, link_token(key, job_id, link), s.who)
