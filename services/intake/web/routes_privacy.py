"""The privacy centre: an organisation's subject-facing pages, `/privacy/{slug}`, off unless an
owner turned them on (404 otherwise, as for a slug nobody has).

A subject picks erasure or a copy, gives an email address and gets a one-time code mailed to
it; the code page carries the address back (a hidden field: nothing personal is stored in
between, the challenge holds keyed hashes). The right code, in time, once, creates the job
and redirects to the subject's status page, where an export's download appears when ready.
Every refusal is the page again with the rule in words and its status code.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.intake.domain import privacy as rules
from services.intake.domain.requests import SubjectIn
from services.intake.http.deps import runtime, uow
from services.intake.service import privacy
from services.intake.store import privacy as store
from services.intake.web.common import WebError, form, render, status_path
from shared.compare import same_secret

router = APIRouter(include_in_schema=False)
CSRF_COOKIE = "lethe_privacy_csrf"


async def _org(request: Request, slug: str) -> dict[str, Any]:
    org = await store.centre_org(runtime(request).pool, slug)
    if org is None:
        raise WebError(404, "There is no privacy centre at this address.")
    return org


def _page(
    request: Request, name: str, org: dict[str, Any], csrf: str, status: int = 200, **ctx: Any
) -> Response:
    resp = render(request, name, None, status, org=org, csrf=csrf, **ctx)
    resp.set_cookie(
        CSRF_COOKIE,
        csrf,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/privacy",
    )
    return resp


async def _checked(request: Request) -> tuple[dict[str, str], str]:
    """The posted form, its CSRF token matching the page's cookie (403 otherwise)."""
    data = await form(request)
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not expected or not same_secret(data.get("csrf", ""), expected):
        raise WebError(403, "This form has expired. Go back, reload the page and try again.")
    return data, expected


def _asked(request: Request, org: dict[str, Any], email: str) -> privacy.Asked:
    client = request.client.host if request.client else "-"
    return privacy.Asked.of(runtime(request).privacy_policy(), org, email, client)


@router.get("/privacy/{slug}", response_class=HTMLResponse)
async def centre_page(request: Request, slug: str) -> Response:
    org = await _org(request, slug)
    return _page(request, "privacy_request.html", org, secrets.token_urlsafe(24), v={}, errors={})


@router.post("/privacy/{slug}", response_class=HTMLResponse)
async def ask_for_code(request: Request, slug: str) -> Response:
    org = await _org(request, slug)
    data, csrf = await _checked(request)
    v = {"type": data.get("type", ""), "email": data.get("email", "").strip()}
    errors = _request_errors(v)
    if errors:
        return _page(request, "privacy_request.html", org, csrf, 422, v=v, errors=errors)
    rt = runtime(request)
    asked = _asked(request, org, v["email"])
    try:
        challenge = await privacy.request_code(
            uow(request), rt.privacy_policy(), asked, v["type"], datetime.now(UTC)
        )
    except rules.PrivacyRefused as exc:
        resp = _page(
            request, "privacy_request.html", org, csrf, exc.status, v=v, errors={"_": exc.message}
        )
        resp.headers["Retry-After"] = str(exc.retry_after)
        return resp
    return _code_page(request, org, csrf, challenge, v, {})


def _request_errors(v: dict[str, str]) -> dict[str, str]:
    errors = {}
    if v["type"] not in rules.REQUEST_TYPES:
        errors["type"] = "Choose what you ask for: erase your data, or a copy of it."
    try:
        SubjectIn(email=v["email"] or None)
    except ValueError:
        errors["email"] = "Give your email address (name@example.com)."
    return errors


def _code_page(
    request: Request,
    org: dict[str, Any],
    csrf: str,
    challenge: uuid.UUID,
    v: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> Response:
    """The code form; it carries the address (and the choice) back, nothing is stored."""
    minutes = runtime(request).settings.privacy_code_ttl_seconds // 60
    return _page(
        request,
        "privacy_code.html",
        org,
        csrf,
        status,
        challenge=challenge,
        v=v,
        masked=rules.mask_email(v["email"]),
        minutes=minutes,
        errors=errors,
    )


@router.post("/privacy/{slug}/verify", response_class=HTMLResponse)
async def give_code(request: Request, slug: str) -> Response:
    org = await _org(request, slug)
    data, csrf = await _checked(request)
    email, code = data.get("email", "").strip(), data.get("code", "").strip()
    v = {"email": email, "type": data.get("type", "")}
    try:
        challenge = uuid.UUID(data.get("challenge", ""))
        SubjectIn(email=email)
    except ValueError as exc:
        raise WebError(422, "This confirmation form is incomplete. Start again.") from exc
    if not code.isdigit():
        errors = {"code": "Type the code from the email: digits only."}
        return _code_page(request, org, csrf, challenge, v, errors, 422)
    rt = runtime(request)
    try:
        done = await privacy.verify_code(
            uow(request), rt.privacy_policy(), _asked(request, org, email), challenge, code
        )
    except rules.PrivacyRefused as exc:
        if exc.reason == "wrong_code":
            return _code_page(request, org, csrf, challenge, v, {"code": exc.message}, 422)
        return _page(
            request,
            "privacy_request.html",
            org,
            csrf,
            exc.status,
            v=v,
            errors={"_": exc.message},
        )
    return RedirectResponse(status_path(request, done.job["id"]), 303)
