"""The organisation's settings page (owners): the privacy centre on or off, and its address
(the same use case and audit as `PUT /v1/orgs/{org}/privacy-centre`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.intake.http.deps import runtime, uow
from services.intake.service import privacy
from services.intake.service.errors import Conflict, Invalid
from services.intake.web.common import (
    PREFIX,
    Session,
    checked_form,
    render,
    require,
    sentence,
    session,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)
WebSession = Annotated[Session, Depends(session)]


async def _page(
    request: Request,
    s: Session,
    error: str | None = None,
    saved: bool = False,
    status: int = 200,
    posted: tuple[bool, str | None] | None = None,
) -> Response:
    """The page with the stored setting, or with what was posted (refused) and the reason."""
    enabled, slug = posted or await privacy.centre(uow(request), s.who, s.who.org_id)
    live = posted is None
    base = runtime(request).settings.public_api_url.rstrip("/")
    return render(
        request,
        "settings.html",
        s,
        status,
        enabled=enabled,
        slug=slug or "",
        url=f"{base}/privacy/{slug}" if live and enabled and slug else None,
        error=error,
        saved=saved,
    )


@router.get("/settings", response_class=HTMLResponse)
async def settings_page(request: Request, s: WebSession, saved: bool = False) -> Response:
    await require(request, s, "owner")
    return await _page(request, s, saved=saved)


@router.post("/settings/privacy-centre", response_class=HTMLResponse)
async def save_centre(request: Request, s: WebSession) -> Response:
    data = await checked_form(request, s, "owner")
    on, slug = data.get("enabled") == "on", data.get("slug") or None
    try:
        await privacy.set_centre(uow(request), s.who, s.who.org_id, on, slug)
    except (Invalid, Conflict) as exc:
        message = sentence(exc.message.removeprefix("slug: "))
        return await _page(request, s, message, status=exc.status, posted=(on, slug))
    return RedirectResponse(f"{PREFIX}/settings?saved=true", 303)
