"""`GET /v1/reports/compliance`: the compliance report of the caller's organisation, for its
owners, as JSON or CSV (`format`). What each figure means: `domain.reports`, README
"Compliance report"."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from services.intake.domain import reports as domain
from services.intake.http.contract import answers
from services.intake.http.deps import Rt, Viewer, fail
from services.intake.service.errors import ServiceError
from services.intake.service.reports import compliance_report

router = APIRouter()


class MonthFigures(BaseModel):
    """One month's requests (received that month, UTC), or the range's (`month` "total")."""

    month: str = Field(description="YYYY-MM, or `total` for the whole range")
    requests: int
    by_type: dict[str, int] = Field(description="erasure, export, ...")
    by_channel: dict[str, int] = Field(
        description="http (API and web UI), kafka (upstream services), opendsr, ..."
    )
    by_regulation: dict[str, int] = Field(description="gdpr, ccpa, custom")
    closed: int
    median_days_to_close: float | None
    p90_days_to_close: float | None
    on_time: int = Field(description="Closed by the deadline (the extended one if extended).")
    late: int = Field(description="Closed after the deadline, or open past it now.")
    on_time_rate: float | None = Field(description="on_time / (on_time + late), 0..1")
    open: int = Field(description="Not closed, as of now.")
    overdue: int = Field(description="Not closed and past the deadline, as of now.")
    extended: int


class ComplianceReport(BaseModel):
    org_id: str
    from_: str = Field(alias="from")
    to: str
    generated_at: str
    months: list[MonthFigures]
    total: MonthFigures


MONTH = {"pattern": domain.MONTH_PATTERN, "examples": ["2026-01"]}
OK = {
    "model": ComplianceReport,
    "description": "The report: JSON, or with format=csv one row per month and a total row.",
    "content": {"text/csv": {"schema": {"type": "string"}}},
}


@router.get(
    "/v1/reports/compliance",
    response_model=None,
    responses={200: OK, **answers(403)},
)
async def get_compliance_report(
    request: Request,
    who: Viewer,
    rt: Rt,
    first: Annotated[
        str | None,
        Query(
            alias="from",
            description="First month, YYYY-MM (default: 11 months before `to`)",
            json_schema_extra=MONTH,
        ),
    ] = None,
    last: Annotated[
        str | None,
        Query(
            alias="to",
            description="Last month, YYYY-MM (default: this month)",
            json_schema_extra=MONTH,
        ),
    ] = None,
    format: Literal["json", "csv"] = "json",
) -> Response:
    """Owners only (403 naming the rule otherwise); at most 24 months, `from` <= `to` (422
    naming the rule otherwise)."""
    try:
        report = await compliance_report(rt.pool, who, first, last, datetime.now(UTC))
    except ServiceError as exc:
        await fail(request, exc, who)
    if format == "csv":
        name = domain.file_name(report, "csv")
        return Response(
            domain.as_csv(report),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return JSONResponse(domain.as_json(report))
