"""What intake's HTTP answers look like when they are not a success, in one place: the
`Problem` body every /v1 error has, the `responses=` each route declares with it, typed
time-range query values, and the two answers FastAPI would otherwise give in its own shape
(a request that fails validation; a method the path does not have).

OpenDSR routes answer errors in the shape their specification gives (section 7.7,
`OpenDSRProblem`); a validation failure under /opendsr is answered so too (400).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match


class Problem(BaseModel):
    """Every /v1 error: what was wrong and what to do; `errors` names each wrong field."""

    detail: str = Field(description="What was wrong, and what to do about it.")
    errors: list[str] | None = Field(
        None,
        description="One line per wrong field, each naming it: `subject.email: not an email "
        "address` (validation errors only).",
    )


class OpenDSRErrorItem(BaseModel):
    domain: str
    reason: str
    message: str


class OpenDSRErrorBody(BaseModel):
    code: int
    message: str
    errors: list[OpenDSRErrorItem]


class OpenDSRProblem(BaseModel):
    """OpenDSR's error object (specification section 7.7), signed like every answer."""

    error: OpenDSRErrorBody


WHY = {
    400: "A value Lethe cannot use: a cursor it did not issue, a time without a zone, a body "
    "that is not UTF-8 JSON.",
    401: "No API key, or an unknown or revoked one.",
    403: "The key's role is too low, or the resource belongs to another organisation.",
    404: "No such resource for this key's organisation.",
    405: "The path exists, not with this method; `Allow` lists the methods it has.",
    409: "Not allowed in the resource's current state; the message names the state.",
    410: "Gone: the export expired or was purged.",
    413: "The body is larger than the configured limit (`LETHE_MAX_BODY_BYTES`; bulk "
    "requests: `LETHE_MAX_BULK_BODY_BYTES` and 5,000 subjects).",
    415: "The body is not `application/json`.",
    422: "The request does not validate; `errors` names each wrong field.",
    429: "Too many submissions for this key; `Retry-After` says when to try again.",
    503: "A dependency is unavailable just now; try again later.",
}
# Validation errors that mean "too large" (413), by pydantic error type.
TOO_LARGE = frozenset({"too_many_subjects"})
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}


def answers(*codes: int, model: type[BaseModel] = Problem) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status it may answer besides its success, with its body
    (every /v1 route also answers 401 and 422, so they are always listed)."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in sorted({401, 422, *codes} if model is Problem else set(codes)):
        entry: dict[str, Any] = {"model": model, "description": WHY[code]}
        if code == 429:
            entry["headers"] = RETRY_AFTER
        out[code] = entry
    return out


# RFC 3339 with its offset (seconds optional, as Python writes and reads them).
_INSTANT = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})?$"
)
INSTANT_SCHEMA: dict[str, Any] = {
    "format": "date-time",
    "description": "RFC 3339 with a time zone, e.g. 2026-01-01T00:00:00Z",
}


def instant(value: str | None, name: str) -> datetime | None:
    """A time-range query value: RFC 3339 with a zone (400 naming the parameter otherwise;
    never a number read as a Unix time)."""
    if value is None:
        return None
    at = None
    if _INSTANT.match(value):
        try:
            at = datetime.fromisoformat(value.replace("z", "Z"))
        except ValueError:
            at = None
    if at is None:
        raise HTTPException(400, f"{name}: not a time; give RFC 3339, e.g. 2026-01-01T00:00:00Z")
    if at.tzinfo is None:
        raise HTTPException(400, f"give `{name}` with a time zone, e.g. 2026-01-01T00:00:00Z")
    return at


def field_errors(exc: RequestValidationError) -> list[str]:
    """`subject.email: not an email address`: the body's fields by name, a query or path
    value as `query.limit`, a body that is no JSON object as `body`."""
    out = []
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ())]
        if len(loc) > 1 and loc[0] == "body":
            loc = loc[1:]
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        out.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
    return out


async def invalid_request(request: Request, exc: Exception) -> Response:
    """FastAPI's validation failure as a `Problem` (422), or under /opendsr as OpenDSR's 400."""
    assert isinstance(exc, RequestValidationError)
    errors = field_errors(exc) or ["the request does not validate"]
    too_large = [str(e["msg"]) for e in exc.errors() if e.get("type") in TOO_LARGE]
    if too_large:  # a list past its documented limit (a bulk request's 5,000 subjects)
        return JSONResponse(Problem(detail=too_large[0]).model_dump(), 413)
    if request.url.path.startswith("/opendsr"):
        from services.intake.http import opendsr  # the signed error answer lives there

        return opendsr.invalid(request, errors)
    body = Problem(detail=errors[0], errors=errors).model_dump()
    return JSONResponse(body, 422)


def allowed_methods(app: FastAPI, request: Request) -> set[str]:
    """Every method this path has (Starlette's own 405 names only the first route's, though
    a path's GET and PUT are two routes): each method tried against the routing table."""
    methods = set()
    for method in METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in app.router.routes):
            methods.add(method)
    return methods


async def http_error(request: Request, exc: Exception) -> Response:
    """HTTPException as a `Problem`; a 405 with the path's complete `Allow`."""
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        methods = allowed_methods(request.app, request)
        if methods:
            headers["Allow"] = ", ".join(sorted(methods))
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=headers)
    return JSONResponse({"detail": exc.detail}, exc.status_code, headers=headers)


def install(app: FastAPI, refine: Callable[[dict[str, Any]], None] | None = None) -> None:
    """The error handlers; the document without FastAPI's 422 under /opendsr, then `refine`d
    with what only the running service knows (e.g. the data map's retention categories)."""
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI lists a 422 for every route with parameters; OpenDSR's answer 400."""
        if app.openapi_schema is None:
            for path, operations in generate()["paths"].items():
                if path.startswith("/opendsr"):
                    for operation in operations.values():
                        operation.get("responses", {}).pop("422", None)
            if refine is not None:
                refine(generate())
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
