"""The compliance report page for owners: figures per month, two server-drawn charts with
their data tables, and the same report as CSV or JSON (the use case behind
`GET /v1/reports/compliance`, so page, downloads and API always agree)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from services.intake.domain import reports as domain
from services.intake.http.deps import audit_refusal, runtime
from services.intake.service.errors import Forbidden, Invalid, ServiceError
from services.intake.service.reports import compliance_report
from services.intake.web import charts
from services.intake.web.common import PREFIX, Session, WebError, render, sentence, session

router = APIRouter(prefix=PREFIX, include_in_schema=False)
WebSession = Annotated[Session, Depends(session)]
DIMS = ("type", "channel", "regulation")
NAMES = {
    "type": {"erasure": "Erasure", "export": "Export"},
    "channel": {
        "http": "API / web UI",
        "kafka": "Kafka (upstream)",
        "opendsr": "OpenDSR",
        "bulk": "Bulk",
        "privacy_centre": "Privacy centre",
    },
    "regulation": {"gdpr": "GDPR", "ccpa": "CCPA", "custom": "Custom"},
}


def rate(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def days(value: float | None, unit: bool = True) -> str:
    if value is None:
        return "—"
    text = f"{value:g}"
    return f"{text} day{'' if value == 1 else 's'}" if unit else text


async def _report(request: Request, s: Session, first: str, last: str) -> domain.ComplianceReport:
    """The use case; a refusal for a role below owner is audited and shown as a page."""
    try:
        return await compliance_report(
            runtime(request).pool, s.who, first or None, last or None, datetime.now(UTC)
        )
    except Forbidden as exc:
        await audit_refusal(request, exc.audit_reason, s.who)
        raise WebError(403, sentence(exc.message)) from exc


@router.get("/reports/compliance", response_class=HTMLResponse)
async def report_page(request: Request, s: WebSession) -> Response:
    f = {k: request.query_params.get(k, "").strip() for k in ("from", "to")}
    try:
        report = await _report(request, s, f["from"], f["to"])
    except Invalid as exc:
        return render(request, "report.html", s, 422, f=f, error=sentence(exc.message))
    months = report.range.months()
    f = {"from": months[0], "to": months[-1]}
    return render(
        request,
        "report.html",
        s,
        report=report,
        f=f,
        query=urlencode(f),
        first=charts.month_label(months[0]),
        last=charts.month_label(months[-1]),
        bars=charts.requests_chart(report, NAMES["type"]),
        line=charts.on_time_chart(report),
        names=NAMES,
        dims=DIMS,
        rate=rate,
        days=days,
        month_label=charts.month_label,
    )


@router.get("/reports/compliance/export")
async def report_export(request: Request, s: WebSession, format: str = "csv") -> Response:
    if format not in ("csv", "json"):
        raise WebError(422, "Download the report as csv or json.")
    q = request.query_params
    try:
        report = await _report(request, s, q.get("from", ""), q.get("to", ""))
    except ServiceError as exc:
        raise WebError(exc.status, sentence(exc.message)) from exc
    name = domain.file_name(report, format)
    if format == "csv":
        body, media = domain.as_csv(report), "text/csv"
    else:
        body, media = json.dumps(domain.as_json(report), indent=2), "application/json"
    return Response(
        body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
