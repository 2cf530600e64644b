"""`GET /v1/reports/compliance` on real Postgres and Kafka: jobs with known times in their own
organisation give every figure exactly, in JSON and in CSV; owners only (a refusal names the
rule and is audited); a bad month range is a 422 naming the rule it breaks."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from services.intake import store
from services.intake.app import create_http
from services.intake.settings import IntakeSettings
from shared.events.topics import AUDIT
from tests import compliance_seed as seed
from tests.conftest import Org
from tests.helpers import eventually, find_record

pytestmark = pytest.mark.integration
URL = "/v1/reports/compliance"
RANGE = {"from": seed.RANGE[0], "to": seed.RANGE[1]}


@pytest.fixture(scope="module")
async def api(base_settings: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    http = create_http(IntakeSettings(**base_settings, scheduler_enabled=False))
    async with http.router.lifespan_context(http):
        transport = httpx.ASGITransport(app=http)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            yield client


@pytest.fixture
async def seeded(org: Org, lethe_db: asyncpg.Pool) -> Org:
    await seed.seed(lethe_db, org.id, datetime.now(UTC))
    # Another organisation's request in the same months is not in this org's report.
    other = f"org-other-{uuid.uuid4().hex[:10]}"
    await store.create_org(lethe_db, other, "Other")
    await seed.insert(lethe_db, other, seed.jobs(datetime.now(UTC))[0])
    return org


async def _key(db: asyncpg.Pool, org_id: str, role: str) -> dict[str, str]:
    key = await store.create_api_key(db, org_id, role, f"{role} key")
    return {"Authorization": f"Bearer {key}"}


async def test_every_figure_in_json(api: httpx.AsyncClient, seeded: Org) -> None:
    r = await api.get(URL, params=RANGE, headers=seeded.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert (body["org_id"], body["from"], body["to"]) == (seeded.id, *seed.RANGE)
    assert [m["month"] for m in body["months"]] == ["2025-01", "2025-02", "2025-03", "2025-04"]
    for got, want in zip(body["months"], seed.EXPECTED, strict=True):
        assert got == want, want["month"]
    assert body["total"] == seed.TOTAL
    generated = datetime.fromisoformat(body["generated_at"])
    assert abs((datetime.now(UTC) - generated).total_seconds()) < 60

    # One month alone: its figures, and a total equal to it.
    r = await api.get(URL, params={"from": "2025-02", "to": "2025-02"}, headers=seeded.headers)
    assert r.json()["months"] == [seed.EXPECTED[1]]
    assert r.json()["total"] == {**seed.EXPECTED[1], "month": "total"}


async def test_every_figure_in_csv(api: httpx.AsyncClient, seeded: Org) -> None:
    r = await api.get(URL, params={**RANGE, "format": "csv"}, headers=seeded.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == (
        f'attachment; filename="lethe-compliance-{seeded.id}-2025-01-2025-04.csv"'
    )
    assert r.text == seed.CSV
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows[-1]["month"] == "total" and rows[-1]["on_time_rate"] == "0.7143"


async def test_an_org_without_requests_gets_zeros(api: httpx.AsyncClient, org: Org) -> None:
    r = await api.get(URL, params={"from": "2025-12", "to": "2026-01"}, headers=org.headers)
    assert r.status_code == 200, r.text
    total = r.json()["total"]
    assert total["requests"] == 0 and total["on_time_rate"] is None
    assert total["median_days_to_close"] is None and total["by_type"] == {
        "erasure": 0,
        "export": 0,
    }
    # Without a range: the twelve months up to this one.
    months = [m["month"] for m in (await api.get(URL, headers=org.headers)).json()["months"]]
    now = datetime.now(UTC)
    assert len(months) == 12 and months[-1] == f"{now:%Y-%m}"


async def test_owners_only(
    api: httpx.AsyncClient, seeded: Org, lethe_db: asyncpg.Pool, base_settings: dict[str, Any]
) -> None:
    for role in ("admin", "viewer"):
        headers = await _key(lethe_db, seeded.id, role)
        for fmt in ("json", "csv"):
            r = await api.get(URL, params={**RANGE, "format": fmt}, headers=headers)
            assert r.status_code == 403, r.text
            assert r.json()["detail"] == (
                "the compliance report is for the organisation's owners (owner role); "
                f"your key's role is {role}"
            )
    assert (await api.get(URL, params=RANGE)).status_code == 401
    wrong = {"Authorization": "Bearer not-a-key"}
    assert (await api.get(URL, params=RANGE, headers=wrong)).status_code == 401

    async def refusal() -> bytes | None:
        def match(rec: Any) -> bool:
            if b"AuthFailed" not in rec.value:
                return False
            env = json.loads(rec.value)
            return bool(env.get("org_id") == seeded.id and env["payload"].get("path") == URL)

        try:
            return await find_record(base_settings["kafka_bootstrap_servers"], AUDIT, match)
        except AssertionError:
            return None

    audited = json.loads(await eventually(refusal, what="the refusal on the audit topic"))
    assert "compliance report" in audited["payload"]["reason"]


@pytest.mark.parametrize(
    ("params", "rule"),
    [
        ({"from": "2025-13", "to": "2025-12"}, "from: give a month as YYYY-MM"),
        ({"from": "2025-1"}, "from: give a month as YYYY-MM"),
        ({"to": "January"}, "to: give a month as YYYY-MM"),
        ({"from": "0000-01", "to": "0000-02"}, "from: give a month as YYYY-MM, from 1970-01"),
        (
            {"from": "2025-05", "to": "2025-04"},
            "from (2025-05) must not be after to (2025-04): from <= to",
        ),
        (
            {"from": "2023-01", "to": "2025-01"},
            "the report covers at most 24 months; from 2023-01 to 2025-01 is 25",
        ),
        ({"from": "2025-01", "to": "2025-02", "format": "xml"}, "query.format"),
    ],
)
async def test_a_bad_range_names_the_rule(
    api: httpx.AsyncClient, org: Org, params: dict[str, str], rule: str
) -> None:
    r = await api.get(URL, params=params, headers=org.headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(rule), r.json()


async def test_the_range_rules_hold_at_their_edges(api: httpx.AsyncClient, org: Org) -> None:
    r = await api.get(URL, params={"from": "2023-02", "to": "2025-01"}, headers=org.headers)
    assert r.status_code == 200 and len(r.json()["months"]) == 24
    r = await api.get(URL, params={"from": "2024-12", "to": "2025-01"}, headers=org.headers)
    assert [m["month"] for m in r.json()["months"]] == ["2024-12", "2025-01"]
