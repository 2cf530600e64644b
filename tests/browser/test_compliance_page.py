"""The compliance report page in a real browser (Debian's Chromium driven by Playwright):
jobs with known times (tests/compliance_seed.py) in an org of its own; an owner signs in and
reads every figure the API gives, sees both charts drawn (bars and line, named for screen
readers), downloads the CSV; a bad range names its rule; an admin has no link and is refused.
The page is photographed at 1280 px and phone width into `.local/screenshots/`.

Only intake runs (in a thread, on real Postgres and Kafka): the report reads its tables.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import uvicorn

from deploy.local.stack import REPO_ROOT
from services.intake import store as intake_store
from services.intake.app import create_http
from services.intake.settings import IntakeSettings
from services.intake.web.routes_report_page import days, rate
from tests import compliance_seed as seed
from tests.browser import chromium
from tests.browser.a11y import assert_accessible

pytestmark = pytest.mark.browser

CHROMIUM = chromium.CHROMIUM
SHOTS = REPO_ROOT / ".local" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
PAGE = "/ui/reports/compliance?from=2025-01&to=2025-04"

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright not installed")
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (set LETHE_CHROMIUM)", allow_module_level=True)


@pytest.fixture(scope="module")
def url(base_settings: dict[str, Any]) -> Iterator[str]:
    """Intake over real HTTP in a thread of its own (its own event loop, pool and broker)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_http(IntakeSettings(**base_settings, scheduler_enabled=False))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "intake did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with playwright_api.async_playwright() as p:
        b = await chromium.launch(p)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture(scope="module")
async def keys(lethe_db: asyncpg.Pool) -> dict[str, str]:
    org_id = f"org-report-{uuid.uuid4().hex[:10]}"
    await intake_store.create_org(lethe_db, org_id, "Report Org")
    await seed.seed(lethe_db, org_id, datetime.now(UTC))
    return {
        role: await intake_store.create_api_key(lethe_db, org_id, role, f"{role} key")
        for role in ("owner", "admin")
    }


async def signed_in(browser: Any, url: str, key: str) -> tuple[Any, Any]:
    ctx = await browser.new_context(viewport=DESKTOP)
    page = await ctx.new_page()
    await page.goto(f"{url}/ui/login")
    await page.fill("#api_key", key)
    await page.click("button:has-text('Sign in')")
    await page.wait_for_url("**/ui/jobs")
    return ctx, page


async def table(page: Any, selector: str) -> dict[str, list[str]]:
    """The table's body rows: the row header's text -> the cells' texts."""
    rows: list[list[str]] = await page.eval_on_selector_all(
        f"{selector} tbody tr",
        "rows => rows.map(r => [...r.children].map(c => c.textContent.trim()))",
    )
    return {r[0]: r[1:] for r in rows}


def shown(month: dict[str, Any]) -> list[str]:
    """A month's figures as the timeliness table writes them."""
    return [
        str(month["closed"]),
        days(month["median_days_to_close"], False),
        days(month["p90_days_to_close"], False),
        str(month["on_time"]),
        str(month["late"]),
        rate(month["on_time_rate"]),
        str(month["open"]),
        str(month["overdue"]),
        str(month["extended"]),
    ]


LABELS = {"2025-01": "Jan 2025", "2025-02": "Feb 2025", "2025-03": "Mar 2025"}
LABELS |= {"2025-04": "Apr 2025", "total": "Total"}


async def test_the_owner_reads_the_report(browser: Any, url: str, keys: dict[str, str]) -> None:
    ctx, page = await signed_in(browser, url, keys["owner"])
    await page.click("nav >> text=Compliance")
    await page.wait_for_url("**/ui/reports/compliance")
    assert await page.input_value("#to") == f"{datetime.now(UTC):%Y-%m}"  # the last 12 months
    await page.fill("#from", "2025-01")
    await page.fill("#to", "2025-04")
    await page.click("button:has-text('Show')")
    await page.wait_for_url(f"**{PAGE}")

    received = await table(page, "#received")
    timeliness = await table(page, "#timeliness")
    for month in [*seed.EXPECTED, seed.TOTAL]:
        label = LABELS[month["month"]]
        split = [*month["by_type"].values(), *month["by_channel"].values()]
        split += month["by_regulation"].values()
        assert received[label] == [str(month["requests"]), *map(str, split)], label
        assert timeliness[label] == shown(month), label
    summary = {
        k: await page.text_content(f"#summary [data-figure={k}]")
        for k in ("requests", "on_time_rate", "median_days_to_close", "overdue")
    }
    assert summary == {
        "requests": "8",
        "on_time_rate": "71.4 % (5 of 7)",
        "median_days_to_close": "2.5 days",
        "overdue": "1",
    }

    # Both charts are drawn, with a size, and named for screen readers.
    for chart in ("#chart-requests", "#chart-on-time"):
        box = await page.locator(chart).bounding_box()
        assert box and box["width"] > 400 and box["height"] > 150, chart
        assert await page.get_attribute(chart, "role") == "img"
        name = await page.locator(chart).evaluate(
            "svg => document.getElementById(svg.getAttribute('aria-labelledby')).textContent"
        )
        assert name.startswith(("Requests received per month", "On-time rate per month"))
    # Bars: a segment per type with requests (Jan 2, Feb 2, Apr 1), Jan's 4 twice Apr's 1.
    heights = await page.eval_on_selector_all(
        "#chart-requests g.bar",
        "gs => gs.map(g => [...g.querySelectorAll('rect')]"
        ".reduce((sum, r) => sum + r.height.baseVal.value, 0))",
    )
    assert len(heights) == 4 and heights[2] == 0 and heights[0] == pytest.approx(4 * heights[3])
    assert await page.locator("#chart-requests rect").count() == 5
    # The line: points for Jan, Feb and Apr; broken at March, which has no rate.
    assert await page.locator("#chart-on-time circle.point").count() == 3
    assert await page.locator("#chart-on-time polyline.line").count() == 2
    desc = await page.text_content("#chart-on-time-desc")
    assert desc and "Mar 2025: no request due yet" in desc and "Jan 2025: 75.0 % on time" in desc

    # The download is the API's CSV.
    csv_link = await page.get_attribute("#export-csv", "href")
    got = await page.request.get(f"{url}{csv_link}")
    assert got.ok and await got.text() == seed.CSV

    await shoot(page, "compliance-report")
    await assert_accessible(page, "compliance report")
    await ctx.close()


async def test_a_bad_range_names_the_rule(browser: Any, url: str, keys: dict[str, str]) -> None:
    ctx, page = await signed_in(browser, url, keys["owner"])
    answer = await page.goto(f"{url}/ui/reports/compliance?from=2025-05&to=2025-04")
    assert answer is not None and answer.status == 422
    alert = await page.text_content("[role=alert]")
    assert alert == "From (2025-05) must not be after to (2025-04): from <= to."
    assert await page.get_attribute("#from", "aria-invalid") == "true"
    assert await page.locator("#chart-requests").count() == 0
    await shoot(page, "compliance-report-error")
    await assert_accessible(page, "compliance report with an error")
    await ctx.close()


async def test_an_admin_is_refused(browser: Any, url: str, keys: dict[str, str]) -> None:
    ctx, page = await signed_in(browser, url, keys["admin"])
    assert await page.locator("nav >> text=Compliance").count() == 0
    answer = await page.goto(f"{url}{PAGE}")
    assert answer is not None and answer.status == 403
    text = await page.text_content("main")
    assert text and "The compliance report is for the organisation's owners (owner role)" in text
    got = await page.request.get(f"{url}/ui/reports/compliance/export?format=csv")
    assert got.status == 403
    await ctx.close()


async def shoot(page: Any, name: str) -> None:
    """The page at 1280 px and at phone width (full height), without sideways scrolling."""
    await page.set_viewport_size(DESKTOP)
    await page.screenshot(path=str(SHOTS / f"{name}-desktop.png"), full_page=True)
    await page.set_viewport_size(PHONE)
    await page.screenshot(path=str(SHOTS / f"{name}-phone.png"), full_page=True)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{name}: {width}px wide at phone width (sideways scroll)"
    await page.set_viewport_size(DESKTOP)
