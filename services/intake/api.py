"""Intake's HTTP app, put together: every router (API and web UI), the body rules, /healthz."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import Scope

from services.intake import opendsr
from services.intake.http import (
    approvals,
    audit,
    bulk,
    contract,
    exports,
    jobs,
    orgs,
    reports,
    retention,
)
from services.intake.http import opendsr as opendsr_routes
from services.intake.http.limits import BodyLimit
from services.intake.web.app import install as install_web


def _refuse(request: Request | Scope, status: int, message: str) -> JSONResponse:
    """Body refusals in the caller's dialect: OpenDSR errors are 400 with its error object."""
    path = request.url.path if isinstance(request, Request) else request["path"]
    if path.startswith("/opendsr"):
        return JSONResponse(opendsr.error_body(400, message, [message], "invalid_body"), 400)
    return JSONResponse({"detail": message}, status)


# Bodies that carry a list of subjects (up to 5,000): their own, larger limit.
BULK_PATHS = ("/v1/bulk-requests", "/ui/bulk")


def _body_limit(scope: Scope) -> int:
    settings = scope["app"].state.runtime.settings
    limit: int = (
        settings.max_bulk_body_bytes if scope["path"] in BULK_PATHS else settings.max_body_bytes
    )
    return limit


async def body_rules(request: Request, call_next: Any) -> Any:
    """Refuse non-JSON bodies before anything reads them (their size: `BodyLimit`)."""
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        length = request.headers.get("content-length")
        if "transfer-encoding" in request.headers:
            length = "chunked"  # a body of unknown length is a body too
        ctype = request.headers.get("content-type", "")
        web_form = request.url.path.startswith(("/ui/", "/privacy/")) and ctype.startswith(
            "application/x-www-form-urlencoded"
        )  # the web UI's and the privacy centre's forms, CSRF-checked there
        json_body = ctype.startswith("application/json") or web_form
        if length not in (None, "0") and not json_body:
            return _refuse(
                request, 415, f"content-type must be application/json, not {ctype or 'none'}"
            )
    return await call_next(request)


async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _with_datamap(app: FastAPI, doc: dict[str, Any]) -> None:
    rt = getattr(app.state, "runtime", None)
    if rt is not None and getattr(rt, "datamap", None) is not None:
        retention.document_categories(doc, rt.datamap)


def add_routes(app: FastAPI) -> None:
    for module in (audit, exports, opendsr_routes, orgs, reports, retention, jobs, approvals, bulk):
        app.include_router(module.router)
    install_web(app)
    # Errors as `Problem`, 405 with the path's whole Allow; the document with the data map's
    # retention categories once the runtime has loaded it.
    contract.install(app, lambda doc: _with_datamap(app, doc))
    app.middleware("http")(body_rules)
    # Outermost (added last): counts the body's bytes before any other code runs.
    app.add_middleware(BodyLimit, limit=_body_limit, refuse=_refuse)
    app.add_api_route("/healthz", healthz, methods=["GET"])
