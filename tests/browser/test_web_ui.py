"""The admin web UI in a real browser (Debian's Chromium driven by Playwright) against the
five services started as processes, once for this module.

Sign in, submit, watch live progress to 100 % without a reload, cancel another job mid-way,
restore one item, retention (an invalid value, then a valid one), verify the audit chain,
keys, a viewer who sees no destructive buttons and whose forged POST is refused, and the
data subject's status page. Every page is photographed at desktop and phone width into
`.local/screenshots/`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from deploy.local import infra
from deploy.local.sample.seed import SeededOrg
from deploy.local.stack import REPO_ROOT, SERVICES, start_services
from services.intake import store as intake_store
from tests.browser import chromium
from tests.browser.a11y import assert_accessible
from tests.helpers import eventually, stop_together

pytestmark = pytest.mark.browser

CHROMIUM = chromium.CHROMIUM
SHOTS = REPO_ROOT / ".local" / "screenshots"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
# Slow erasures down so progress is visible and a cancel lands mid-way.
SLOW_ERASER = {"LETHE_ERASE_BATCH_SIZE": "40", "LETHE_ERASE_RATE_LIMIT_ROWS": "150"}

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright not installed")
if not CHROMIUM.exists():
    pytest.skip(
        f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium "
        "(or set LETHE_CHROMIUM)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def api_url(prepared: infra.Endpoints, state_dir: Path) -> Iterator[str]:
    saved = {k: os.environ.get(k) for k in SLOW_ERASER}
    os.environ.update(SLOW_ERASER)  # laid under the services' environment at their start
    try:
        yield start_services(prepared, state_dir)
    finally:
        stop_together(state_dir, reversed(SERVICES))
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class World:
    url: str
    org_id: str
    org_name: str
    owner_key: str
    seeded: SeededOrg
    browser: Any


@pytest.fixture(scope="module")
async def world(
    api_url: str, lethe_db: asyncpg.Pool, platform_db: asyncpg.Pool, s3: Any
) -> AsyncIterator[World]:
    org_id = f"org-web-{uuid.uuid4().hex[:10]}"
    name = f"Web Org {org_id[-6:]}"
    key, seeded = await chromium.owned_org(
        lethe_db,
        platform_db,
        s3,
        org_id,
        name,
        users=3,
        conversations_per_user=8,
        messages_per_conversation=25,
        heavy_user_factor=8,
    )
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    async with playwright_api.async_playwright() as p:
        browser = await chromium.launch(p)
        try:
            yield World(api_url, org_id, name, key, seeded, browser)
        finally:
            await browser.close()


async def shoot(page: Any, name: str) -> None:
    """The page at desktop and at phone width (full height), accessible at both (axe-core,
    WCAG 2.1 A/AA)."""
    await assert_accessible(page, name)
    await page.set_viewport_size(DESKTOP)
    await page.screenshot(path=str(SHOTS / f"{name}-desktop.png"), full_page=True)
    await page.set_viewport_size(PHONE)
    await page.screenshot(path=str(SHOTS / f"{name}-phone.png"), full_page=True)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{name}: {width}px wide at phone width (sideways scroll)"
    await assert_accessible(page, f"{name} (phone)")
    await page.set_viewport_size(DESKTOP)


async def signed_in(w: World, key: str) -> tuple[Any, Any]:
    ctx = await w.browser.new_context(viewport=DESKTOP)
    page = await ctx.new_page()
    page.on("dialog", lambda d: d.accept())  # confirmations of destructive actions
    await page.goto(f"{w.url}/ui/jobs")
    assert page.url.endswith("/ui/login")
    await page.fill("#api_key", key)
    await page.click("button:has-text('Sign in')")
    await page.wait_for_url("**/ui/jobs")
    return ctx, page


async def job_row(lethe_db: asyncpg.Pool, job_id: str) -> dict[str, Any]:
    row = await lethe_db.fetchrow(
        "SELECT status, done, total FROM lethe.jobs WHERE id = $1", uuid.UUID(job_id)
    )
    assert row is not None
    return dict(row)


def job_id_of(url: str) -> str:
    m = re.search(r"/ui/jobs/([0-9a-f-]{36})", url)
    assert m, url
    return m.group(1)


async def test_the_admin_ui_end_to_end(world: World, lethe_db: asyncpg.Pool) -> None:
    w = world
    # --- sign in (a wrong key first) ---------------------------------------------------
    ctx = await w.browser.new_context(viewport=DESKTOP)
    page = await ctx.new_page()
    page.on("dialog", lambda d: d.accept())
    await page.goto(f"{w.url}/ui/login")
    await shoot(page, "01-sign-in")
    await page.fill("#api_key", "lethe_not-a-key")
    await page.click("button:has-text('Sign in')")
    assert "unknown or was revoked" in await page.inner_text(".alert")
    await page.fill("#api_key", w.owner_key)
    await page.click("button:has-text('Sign in')")
    await page.wait_for_url("**/ui/jobs")
    cookie = next(c for c in await ctx.cookies() if c["name"] == "lethe_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # --- submit: errors next to the fields, then a valid erasure -----------------------
    await page.click("a:has-text('New request')")
    await shoot(page, "02-submit")
    await page.fill("#email", "not-an-address")
    await page.fill("#recovery_window_days", "45")
    await page.click("button:has-text('Submit request')")
    assert "not look like an email" in await page.inner_text("#email-error")
    assert "0 to 30" in await page.inner_text("#recovery_window_days-error")
    await shoot(page, "03-submit-errors")
    watched = w.seeded.users[1]
    await page.fill("#email", watched.email)
    await page.fill("#recovery_window_days", "7")
    await page.click("button:has-text('Submit request')")
    await page.wait_for_url(re.compile(r".*/ui/jobs/[0-9a-f-]{36}\?done=submitted"))
    watched_id = job_id_of(page.url)

    # --- the progress bar moves to 100 % without a reload ------------------------------
    await page.evaluate("window.__noReload = true")
    seen: set[float] = set()

    async def full() -> bool:
        seen.add(float(await page.eval_on_selector(".progress progress", "e => e.value")))
        return 100.0 in seen

    await eventually(full, timeout=60, every=0.1, what="the progress bar at 100%")
    assert await page.evaluate("window.__noReload === true"), "the page was reloaded"
    assert any(0 < v < 100 for v in seen), f"no intermediate progress seen: {sorted(seen)}"
    badge = page.locator(f".badge[data-status='{watched_id}']")
    await badge.filter(has_text="soft deleted").wait_for(timeout=30_000)
    await page.reload()
    await shoot(page, "05-job-detail")

    # --- restore one item (owner) -------------------------------------------------------
    await page.fill("#items", f"users {watched.id}")
    await page.click("button:has-text('Restore selected items')")
    await page.wait_for_url("**?done=restore_items")

    async def restored_item() -> bool:
        rows = await intake_store.job_events(lethe_db, uuid.UUID(watched_id))
        return any(
            r["type"] == "JobRestored" and r["details"].get("whole_job") is False for r in rows
        )

    await eventually(restored_item, timeout=30, what="JobRestored for one item")
    assert (await job_row(lethe_db, watched_id))["status"] == "soft_deleted"

    # --- cancel another job mid-way ----------------------------------------------------
    heavy = w.seeded.users[0]
    async with httpx.AsyncClient(base_url=w.url) as c:
        r = await c.post(
            "/v1/requests",
            headers={"Authorization": f"Bearer {w.owner_key}"},
            json={"type": "erasure", "subject": {"email": heavy.email}},
        )
    assert r.status_code == 202, r.text
    cancel_id = r.json()["id"]
    await page.goto(f"{w.url}/ui/jobs")

    async def moving() -> bool:
        bar = f"[data-job='{cancel_id}'] progress"
        return float(await page.eval_on_selector(bar, "e => e.value")) > 0

    await eventually(moving, timeout=30, every=0.1, what="the second job's bar to move")
    await shoot(page, "04-jobs")
    await page.goto(f"{w.url}/ui/jobs/{cancel_id}")
    await page.click("button:has-text('Cancel job')")
    await page.wait_for_url("**?done=cancel")

    async def cancelled() -> dict[str, Any] | None:
        row = await job_row(lethe_db, cancel_id)
        return row if row["status"] == "cancelled" else None

    row = await eventually(cancelled, timeout=30, what="the cancel")
    assert 0 < row["done"] < row["total"]

    # --- retention: an invalid value is refused next to its field, a valid one saved --
    await page.goto(f"{w.url}/ui/retention")
    field = page.locator("input[name^='days_']").first
    category = (await field.get_attribute("name") or "").removeprefix("days_")
    await field.fill("0")
    await page.click("button:has-text('Save policy')")
    assert "from 1 to 3650 days" in await page.inner_text(f"#{category}-error")
    await shoot(page, "06-retention-error")
    await page.locator(f"#days_{category}").fill("45")
    await page.click("button:has-text('Save policy')")
    await page.wait_for_url("**/ui/retention?saved=true")
    assert await page.input_value(f"#days_{category}") == "45"
    assert (
        await lethe_db.fetchval(
            "SELECT days FROM lethe.retention_policies WHERE org_id = $1 AND category = $2",
            w.org_id,
            category,
        )
        == 45
    )
    await shoot(page, "06-retention")

    # --- audit: filter, verify the chain, export --------------------------------------
    await page.goto(f"{w.url}/ui/audit?job={watched_id}")
    assert "ErasureRequested" in await page.inner_text("table")
    await page.click("#verify")
    verdict = await page.inner_text("#verdict")
    assert verdict.startswith("Chain intact"), verdict
    await shoot(page, "07-audit")
    async with page.expect_download() as dl:
        await page.click("a:has-text('JSONL')")
    text = await asyncio.to_thread(Path(await (await dl.value).path()).read_text)
    exported = [json.loads(line) for line in text.splitlines()]
    assert exported and all(r["job_id"] == watched_id for r in exported)
    assert "ErasureRequested" in {r["action"] for r in exported}

    # --- keys: create a viewer key, shown once -----------------------------------------
    await page.goto(f"{w.url}/ui/keys")
    await page.fill("input[name=name]", "read only desk")
    await page.select_option("select[name=role]", "viewer")
    await page.click("button:has-text('Create key')")
    viewer_key = await page.input_value("#new-key")
    assert viewer_key.startswith("lethe_")
    await shoot(page, "08-keys")
    await page.goto(f"{w.url}/ui/keys")
    assert viewer_key not in await page.content()

    # --- the data subject's status page ------------------------------------------------
    await page.goto(f"{w.url}/ui/jobs/{cancel_id}")
    status_link = await page.input_value("input[aria-label='Status link for the data subject']")
    anon = await w.browser.new_context(viewport=DESKTOP)
    spage = await anon.new_page()
    await spage.goto(status_link)
    text = await spage.inner_text("main")
    assert "Your request to erase your data" in text and "Cancelled" in text
    assert re.search(r"\d+\.\d%", text)
    html = await spage.content()
    for secret in (w.org_id, w.org_name, heavy.email, watched_id, "Sign out", "/ui/jobs/"):
        assert secret not in html, secret
    await shoot(spage, "09-subject-status")
    bad = await spage.goto(status_link[:-4] + "AAAA")
    assert bad is not None and bad.status == 404
    await anon.close()

    # --- a viewer: no destructive buttons, and a forged POST is refused ---------------
    vctx, vpage = await signed_in(w, viewer_key)
    assert not await vpage.is_visible("a:has-text('New request')")
    await vpage.goto(f"{w.url}/ui/jobs/{watched_id}")
    for label in ("Cancel job", "Restore", "Extend deadline"):
        assert await vpage.locator(f"button:has-text('{label}')").count() == 0, label
    await shoot(vpage, "10-viewer-job")
    csrf = await vpage.input_value("form[action='/ui/logout'] input[name=csrf]")
    before = await job_row(lethe_db, watched_id)
    forged = await vctx.request.post(
        f"{w.url}/ui/jobs/{watched_id}/restore",
        form={"csrf": csrf, "reason": "forged"},
    )
    assert forged.status == 403
    assert "needs the owner role" in await forged.text()
    assert (await job_row(lethe_db, watched_id))["status"] == before["status"]
    audit_page = await vpage.goto(f"{w.url}/ui/audit")
    assert audit_page is not None and audit_page.status == 403
    await assert_accessible(vpage, "refusal page")
    await vctx.close()

    # --- sign out ends the session -----------------------------------------------------
    await page.click("button:has-text('Sign out')")
    await page.wait_for_url("**/ui/login")
    await page.goto(f"{w.url}/ui/jobs")
    assert page.url.endswith("/ui/login")
    await ctx.close()
