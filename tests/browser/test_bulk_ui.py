"""The bulk request page in a real browser (Debian's Chromium driven by Playwright) against
the five services as processes: a CSV file chosen in the file field is read into the form,
sent, and the bulk job's page shows each outcome once the subjects are decided."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from deploy.local import infra
from deploy.local.stack import start_services, stop_services
from services.intake import store as intake_store
from tests.browser import chromium
from tests.helpers import eventually

pytestmark = pytest.mark.browser

CHROMIUM = chromium.CHROMIUM
playwright_api = pytest.importorskip("playwright.async_api", reason="playwright not installed")
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (set LETHE_CHROMIUM)", allow_module_level=True)


@pytest.fixture(scope="module")
def api_url(prepared: infra.Endpoints, state_dir: Path) -> Iterator[str]:
    try:
        yield start_services(prepared, state_dir)
    finally:
        stop_services(state_dir)


@pytest.fixture
async def page(api_url: str, lethe_db: asyncpg.Pool) -> AsyncIterator[Any]:
    org_id = f"org-bulkweb-{uuid.uuid4().hex[:8]}"
    await intake_store.create_org(lethe_db, org_id, f"Bulk Web {org_id[-6:]}")
    key = await intake_store.create_api_key(lethe_db, org_id, "owner", "web owner")
    async with playwright_api.async_playwright() as p:
        browser = await chromium.launch(p)
        try:
            pg = await (await browser.new_context()).new_page()
            await pg.goto(f"{api_url}/ui/login")
            await pg.fill("#api_key", key)
            await pg.click("button:has-text('Sign in')")
            await pg.wait_for_url("**/ui/jobs")
            yield pg
        finally:
            await browser.close()


async def test_a_csv_file_chosen_in_the_browser_becomes_a_bulk_request(page: Any) -> None:
    await page.click("nav >> text=Bulk")
    await page.wait_for_url("**/ui/bulk")
    tag = uuid.uuid4().hex[:8]
    csv_text = f"email,user_id\nnobody-{tag}@example.com,\nnot-an-email,\n,u-{tag}\n"
    await page.set_input_files(
        "#csv-file",
        files=[{"name": "subjects.csv", "mimeType": "text/csv", "buffer": csv_text.encode()}],
    )
    await page.wait_for_function("document.getElementById('csv').value.includes('user_id')")
    await page.check("input[name=type][value=erasure]")
    await page.fill("#recovery_window_days", "0")
    await page.click("button:has-text('Submit bulk request')")
    await page.wait_for_url(re.compile(r".*/ui/bulk/[0-9a-f-]{36}$"))

    async def decided() -> bool:
        await page.reload()
        text = await page.inner_text("#bulk-counts")
        return "not found\t2" in text and "rejected\t1" in text and "pending\t0" in text

    await eventually(decided, timeout=120, every=1, what="every subject's outcome on the page")
