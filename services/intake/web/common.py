"""What every page shares: templates, the session, CSRF, role checks, the subject link."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.intake import store
from services.intake.auth import RANK
from services.intake.domain import Caller, submit_refusal
from services.intake.http.deps import audit_refusal, runtime
from services.intake.links import status_mac as status_mac  # the web UI checks it
from shared.compare import same_secret

HERE = Path(__file__).parent
COOKIE = "lethe_session"
LOGIN_CSRF_COOKIE = "lethe_login_csrf"
PREFIX = "/ui"


@cache
def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["duration"] = duration
    return env


def when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


@dataclass(frozen=True)
class Session:
    who: Caller
    csrf: str
    token: str

    def can(self, minimum: str) -> bool:
        return RANK.get(self.who.role, -1) >= RANK[minimum]

    def may_submit(self) -> bool:
        """Erasure and export requests: owners, and admins where the org delegates."""
        return submit_refusal(self.who) is None


class SignInRequired(Exception):
    """Raised by pages without a live session; answered with a redirect to the sign-in."""


class WebError(Exception):
    """A refusal shown as a page, in words a person understands."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


async def session(request: Request) -> Session:
    token = request.cookies.get(COOKIE)
    found = await store.session_caller(runtime(request).pool, token) if token else None
    if found is None:
        raise SignInRequired()
    return Session(who=found[0], csrf=found[1], token=token or "")


async def form(request: Request) -> dict[str, str]:
    """The posted form (application/x-www-form-urlencoded), last value per field."""
    raw = (await request.body()).decode("utf-8", "replace")
    return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def all_values(raw: bytes, name: str) -> list[str]:
    return parse_qs(raw.decode("utf-8", "replace")).get(name, [])


async def checked_form(request: Request, s: Session, minimum: str) -> dict[str, str]:
    """A state-changing POST: the CSRF token must match and the role must suffice (a refusal
    is audited, as the API's are)."""
    data = await form(request)
    if not same_secret(data.get("csrf", ""), s.csrf):
        await audit_refusal(request, "web form without a valid CSRF token", s.who)
        raise WebError(
            403, "This form has expired or did not come from Lethe. Reload the page and try again."
        )
    if not s.can(minimum):
        await audit_refusal(request, f"role {s.who.role} below {minimum}", s.who)
        raise WebError(403, f"This needs the {minimum} role; you are signed in as {s.who.role}.")
    return data


async def require(request: Request, s: Session, minimum: str) -> None:
    if not s.can(minimum):
        await audit_refusal(request, f"role {s.who.role} below {minimum}", s.who)
        raise WebError(
            403, f"This page needs the {minimum} role; you are signed in as {s.who.role}."
        )


def render(
    request: Request, name: str, s: Session | None = None, status: int = 200, **ctx: Any
) -> HTMLResponse:
    html = (
        templates()
        .get_template(name)
        .render(request=request, s=s, prefix=PREFIX, path=request.url.path, **ctx)
    )
    return HTMLResponse(
        html,
        status,
        headers={
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
        },
    )


def sentence(message: str) -> str:
    """A service's message as a sentence on a page."""
    return message[:1].upper() + message[1:] + "."


def status_path(request: Request, job_id: uuid.UUID) -> str:
    return runtime(request).settings.status_links().path(job_id)
