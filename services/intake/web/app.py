"""The web UI, mounted on intake's HTTP app: its routers, static files and the two page-level
answers (sign in; refusal page)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from services.intake import store
from services.intake.http.deps import runtime
from services.intake.web import (
    routes,
    routes_admin,
    routes_approvals,
    routes_bulk,
    routes_job,
    routes_privacy,
    routes_report_page,
    routes_retention_page,
    routes_settings,
)
from services.intake.web.common import (
    COOKIE,
    HERE,
    PREFIX,
    Session,
    SignInRequired,
    WebError,
    render,
)


def install(app: FastAPI) -> None:
    """Routers, static files and the two page-level answers (sign in; refusal page)."""
    app.include_router(routes.router)
    app.include_router(routes_job.router)
    app.include_router(routes_approvals.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_admin.public)
    app.include_router(routes_retention_page.router)
    app.include_router(routes_report_page.router)
    app.include_router(routes_privacy.router)
    app.include_router(routes_settings.router)
    app.include_router(routes_bulk.router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="web-static")

    @app.exception_handler(SignInRequired)
    async def to_sign_in(request: Request, _: SignInRequired) -> Response:
        if request.url.path.endswith("/stream"):
            return Response("sign in again", 401)
        return RedirectResponse(f"{PREFIX}/login", 303)

    @app.exception_handler(WebError)
    async def refusal_page(request: Request, exc: WebError) -> Response:
        token = request.cookies.get(COOKIE)
        found = await store.session_caller(runtime(request).pool, token) if token else None
        s = Session(found[0], found[1], token or "") if found else None
        return render(request, "error.html", s, exc.status, message=exc.message)
