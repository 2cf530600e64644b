"""The approval step in a real browser (the same Chromium and stack as test_web_ui.py, started
once for this module): an owner asks approval for the web form, submits, finds the request on
the Approvals page with its deadline, approves it on the job's page; a denial needs a reason
and ends the job denied. Each page photographed at desktop and phone width."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from tests.browser import chromium
from tests.browser import test_web_ui as web
from tests.browser.test_web_ui import World, job_id_of, job_row, shoot, signed_in
from tests.helpers import eventually

pytestmark = pytest.mark.browser
api_url = web.api_url  # the stack, started once for this module


@pytest.fixture(scope="module")
async def approvals_world(
    api_url: str, lethe_db: asyncpg.Pool, platform_db: asyncpg.Pool, s3: Any
) -> AsyncIterator[World]:
    """An org of its own and a browser (the screenshots of test_web_ui.py are left alone)."""
    org_id = f"org-appr-{uuid.uuid4().hex[:10]}"
    name = f"Approvals Org {org_id[-6:]}"
    key, seeded = await chromium.owned_org(
        lethe_db,
        platform_db,
        s3,
        org_id,
        name,
        users=2,
        conversations_per_user=2,
        messages_per_conversation=5,
    )
    web.SHOTS.mkdir(parents=True, exist_ok=True)
    async with web.playwright_api.async_playwright() as p:
        browser = await chromium.launch(p)
        try:
            yield World(api_url, org_id, name, key, seeded, browser)
        finally:
            await browser.close()


async def _submit(page: Any, email: str) -> str:
    await page.goto(page.url.split("/ui/")[0] + "/ui/submit")
    await page.fill("#email", email)
    await page.click("button:has-text('Submit request')")
    await page.wait_for_url(re.compile(r".*/ui/jobs/[0-9a-f-]{36}\?done=submitted"))
    return job_id_of(page.url)


async def test_approvals_page_approve_and_deny(
    approvals_world: World, lethe_db: asyncpg.Pool
) -> None:
    w = approvals_world
    ctx, page = await signed_in(w, w.owner_key)
    await page.click("nav >> text=Approvals")
    await page.check("input[name=channel][value=web]")
    await page.click("button:has-text('Save setting')")
    await page.wait_for_url("**/ui/approvals?saved=true")
    assert await page.is_checked("input[name=channel][value=web]")

    held = await _submit(page, w.seeded.users[1].email)
    assert "awaiting approval" in await page.inner_text(f".badge[data-status='{held}']")
    assert (await job_row(lethe_db, held))["status"] == "awaiting_approval"
    await shoot(page, "a1-job-awaiting-approval")
    await page.click("nav >> text=Approvals")
    row = page.locator(f"tr[data-row='{held}']")
    assert re.search(r"\d{4}-\d{2}-\d{2}", await row.locator("td[data-label=Due]").inner_text())
    await shoot(page, "a2-approvals")

    await row.locator("a.button").click()
    await page.fill("#approve-reason", "checked with the data subject")
    await page.click("button:has-text('Approve request')")
    await page.wait_for_url(f"**/ui/jobs/{held}?done=approved")

    async def started() -> bool:
        return (await job_row(lethe_db, held))["status"] != "awaiting_approval"

    await eventually(started, timeout=30, what="the approved job to start")

    denied = await _submit(page, f"nobody-{uuid.uuid4().hex[:6]}@example.com")
    await page.click("button:has-text('Deny request')")  # required reason: the browser stops it
    assert (await job_row(lethe_db, denied))["status"] == "awaiting_approval"
    await page.fill("#deny-reason", "not a customer of ours")
    await page.click("button:has-text('Deny request')")
    await page.wait_for_url(f"**/ui/jobs/{denied}?done=denied")
    assert "Denied by an approver" in await page.inner_text("main")
    assert (await job_row(lethe_db, denied))["status"] == "denied"
    await shoot(page, "a3-job-denied")
    await ctx.close()
