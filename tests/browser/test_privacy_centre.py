"""The privacy centre in a real browser (Debian's Chromium driven by Playwright) against the
five services started as processes, once for this module; codes are read from the real SMTP
sink's mailbox.

An owner turns the centre on in Settings; a subject asks for a copy of their data, types a
wrong code, then the mailed one, lands on their status page and downloads the zip; another
asks for erasure. Every rule is tried: wrong, expired, replayed code, too many attempts,
too many codes per address and per source, the centre off (404); none creates a job, every
step is in the audit trail without the code or the address. Every page passes axe-core's
WCAG 2.1 A/AA rules and is photographed at 1280 and 390 px into
`.local/screenshots-privacy/`.
"""

from __future__ import annotations

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
from deploy.local.stack import REPO_ROOT, start_services, stop_services
from shared.readmodels import audit
from tests.browser import chromium
from tests.browser.a11y import assert_accessible
from tests.helpers import eventually, mails_to

pytestmark = pytest.mark.browser

CHROMIUM = chromium.CHROMIUM
SHOTS = REPO_ROOT / ".local" / "screenshots-privacy"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
PER_SOURCE = 12  # codes one client address may ask for per window, in this module's stack
LIMITS = {"LETHE_PRIVACY_CODES_PER_SOURCE": str(PER_SOURCE)}

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright not installed")
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)


@pytest.fixture(scope="module")
def api_url(prepared: infra.Endpoints, state_dir: Path) -> Iterator[str]:
    saved = {k: os.environ.get(k) for k in LIMITS}
    os.environ.update(LIMITS)  # laid under the services' environment at their start
    try:
        yield start_services(prepared, state_dir)
    finally:
        stop_services(state_dir)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class World:
    url: str
    org_id: str
    slug: str
    owner_key: str
    seeded: SeededOrg
    browser: Any
    mail_dir: Path


@pytest.fixture(scope="module")
async def world(
    api_url: str,
    prepared: infra.Endpoints,
    lethe_db: asyncpg.Pool,
    platform_db: asyncpg.Pool,
    s3: Any,
) -> AsyncIterator[World]:
    org_id = f"org-pc-{uuid.uuid4().hex[:10]}"
    key, seeded = await chromium.owned_org(
        lethe_db,
        platform_db,
        s3,
        org_id,
        f"Shop {org_id[-4:]}",
        users=3,
        conversations_per_user=2,
        messages_per_conversation=3,
    )
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    async with playwright_api.async_playwright() as p:
        browser = await chromium.launch(p)
        try:
            yield World(
                api_url, org_id, f"shop-{org_id[-10:]}", key, seeded, browser, prepared.mail_dir
            )
        finally:
            await browser.close()


async def shoot(page: Any, name: str) -> None:
    """Accessible, and photographed at desktop and phone width (no sideways scroll)."""
    await assert_accessible(page, name)
    await page.set_viewport_size(DESKTOP)
    await page.screenshot(path=str(SHOTS / f"{name}-desktop.png"), full_page=True)
    await page.set_viewport_size(PHONE)
    await page.screenshot(path=str(SHOTS / f"{name}-phone.png"), full_page=True)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{name}: {width}px wide at phone width (sideways scroll)"
    await assert_accessible(page, f"{name} (phone)")
    await page.set_viewport_size(DESKTOP)


def code_in(mail: Any) -> str | None:
    """The 8-digit code on a line of its own in a code mail's text."""
    if "code" not in str(mail["Subject"]):
        return None
    part = mail.get_body(preferencelist=("plain",))
    found = re.search(r"^\s*(\d{8})\s*$", part.get_content() if part else "", re.M)
    return found.group(1) if found else None


async def code_mailed(w: World, address: str, seen: int = 0) -> str:
    """The code in the newest of more than `seen` mails to the address (the real SMTP sink)."""

    async def arrived() -> list[Any] | None:
        mails = [m for m in mails_to(w.mail_dir, address) if "code" in str(m["Subject"])]
        return mails if len(mails) > seen else None

    mails = await eventually(arrived, timeout=60, what=f"a code mailed to {address}")
    code = code_in(mails[-1])
    assert code, mails[-1]
    return code


async def ask(page: Any, w: World, kind: str, email: str) -> Any:
    await page.goto(f"{w.url}/privacy/{w.slug}")
    await page.check(f"input[name=type][value={kind}]")
    await page.fill("#email", email)
    async with page.expect_response(re.compile(r".*/privacy/[^/]+$")) as answer:
        await page.click("button:has-text('Send me a code')")
    return await answer.value


async def give(page: Any, code: str) -> Any:
    await page.fill("#code", code)
    async with page.expect_response(re.compile(r".*/verify$")) as answer:
        await page.click("button:has-text('Confirm my request')")
    return await answer.value


async def jobs_of(lethe_db: asyncpg.Pool, org_id: str) -> list[dict[str, Any]]:
    rows = await lethe_db.fetch(
        "SELECT id, type, channel, subject_hash FROM lethe.jobs WHERE org_id = $1", org_id
    )
    return [dict(r) for r in rows]


async def test_owner_turns_the_centre_on(world: World) -> None:
    w = world
    async with httpx.AsyncClient(base_url=w.url) as c:
        assert (await c.get(f"/privacy/{w.slug}")).status_code == 404  # off by default
    ctx = await w.browser.new_context(viewport=DESKTOP)
    page = await ctx.new_page()
    await page.goto(f"{w.url}/ui/login")
    await page.fill("#api_key", w.owner_key)
    await page.click("button:has-text('Sign in')")
    await page.wait_for_url("**/ui/jobs")
    await page.click("nav a:has-text('Settings')")
    await page.fill("#slug", "Not A Slug")
    await page.check("#centre-enabled")
    await page.click("button:has-text('Save')")
    assert "lowercase letters" in await page.inner_text("#settings-error")
    await assert_accessible(page, "settings refused")
    await page.fill("#slug", w.slug)
    await page.click("button:has-text('Save')")
    await page.wait_for_url("**/ui/settings?saved=true")
    assert (await page.inner_text("#centre-url")).endswith(f"/privacy/{w.slug}")
    await shoot(page, "01-settings")
    await ctx.close()


async def test_a_subject_gets_a_copy_of_their_data(world: World, lethe_db: asyncpg.Pool) -> None:
    w = world
    subject = w.seeded.users[1]
    ctx = await w.browser.new_context(viewport=DESKTOP)
    page = await ctx.new_page()
    await page.goto(f"{w.url}/privacy/{w.slug}")
    assert "Your data at" in await page.inner_text("h1")
    await shoot(page, "02-request")
    await page.check("input[name=type][value=export]")
    await page.fill("#email", "not-an-address")
    await page.click("button:has-text('Send me a code')")
    assert "email address" in await page.inner_text("#email-error")
    await shoot(page, "03-request-error")

    answer = await ask(page, w, "export", subject.email)
    assert answer.status == 200
    assert "We sent a code to" in await page.inner_text("main")
    assert subject.email not in await page.inner_text("main")  # masked on the page
    await shoot(page, "04-code")
    code = await code_mailed(w, subject.email)
    wrong = f"{(int(code) + 1) % 10**8:08d}"
    answer = await give(page, wrong)
    assert answer.status == 422
    assert "not right" in await page.inner_text("#code-error")
    assert "4 attempts left" in await page.inner_text("#code-error")
    await shoot(page, "05-code-wrong")
    replay = {
        name: await page.input_value(f"input[name={name}]")
        for name in ("csrf", "challenge", "email")
    }
    await give(page, code)
    await page.wait_for_url(re.compile(r".*/status/[0-9a-f-]{36}/.+"))
    assert "Your request for a copy of your data" in await page.inner_text("h1")
    jobs = await jobs_of(lethe_db, w.org_id)
    assert [(j["type"], j["channel"]) for j in jobs] == [("export", "privacy_centre")]

    async def downloadable() -> bool:
        await page.reload()
        return await page.locator("#download a").count() > 0

    await eventually(downloadable, timeout=90, every=1, what="the download on the status page")
    await shoot(page, "06-status-download")
    href = await page.get_attribute("#download a", "href")
    async with httpx.AsyncClient(base_url=w.url) as c:
        r = await c.get(href or "")
    assert r.status_code == 200 and r.content[:2] == b"PK", r.status_code

    # The same code again: refused, no second job.
    again = await ctx.request.post(
        f"{w.url}/privacy/{w.slug}/verify", form={**replay, "code": code}
    )
    assert again.status == 409 and "already used" in await again.text()
    assert len(await jobs_of(lethe_db, w.org_id)) == 1
    await ctx.close()


async def test_a_subject_asks_for_erasure(world: World, lethe_db: asyncpg.Pool) -> None:
    w = world
    subject = w.seeded.users[2]
    ctx = await w.browser.new_context(viewport=PHONE)
    page = await ctx.new_page()
    await ask(page, w, "erasure", subject.email)
    await give(page, await code_mailed(w, subject.email))
    await page.wait_for_url(re.compile(r".*/status/[0-9a-f-]{36}/.+"))
    assert "Your request to erase your data" in await page.inner_text("h1")
    await shoot(page, "07-status-erasure")
    erasures = [j for j in await jobs_of(lethe_db, w.org_id) if j["type"] == "erasure"]
    assert len(erasures) == 1 and erasures[0]["channel"] == "privacy_centre"
    await ctx.close()


async def test_every_rule_refuses_and_creates_nothing(world: World, lethe_db: asyncpg.Pool) -> None:
    w = world
    before = len(await jobs_of(lethe_db, w.org_id))
    ctx = await w.browser.new_context(viewport=DESKTOP)
    page = await ctx.new_page()

    # Expired: the challenge's end moved to the past.
    late = f"late-{uuid.uuid4().hex[:8]}@example.com"
    await ask(page, w, "export", late)
    challenge = uuid.UUID(await page.input_value("input[name=challenge]"))
    await lethe_db.execute(
        "UPDATE lethe.privacy_challenges SET expires_at = now() - interval '1 second' "
        "WHERE id = $1",
        challenge,
    )
    answer = await give(page, await code_mailed(w, late))
    assert answer.status == 410 and "expired" in await page.inner_text("#refusal")
    await shoot(page, "08-expired")

    # Too many attempts: five wrong codes kill the challenge, the right one then too.
    guesser = f"guess-{uuid.uuid4().hex[:8]}@example.com"
    await ask(page, w, "erasure", guesser)
    code = await code_mailed(w, guesser)
    wrong = f"{(int(code) + 7) % 10**8:08d}"
    statuses = []
    for _ in range(4):
        statuses.append((await give(page, wrong)).status)
    last = await give(page, wrong)
    assert statuses == [422] * 4 and last.status == 429
    assert "no longer works" in await page.inner_text("#refusal")

    # Codes per address: three in the window, the fourth refused.
    busy = f"busy-{uuid.uuid4().hex[:8]}@example.com"
    for n in range(3):
        assert (await ask(page, w, "export", busy)).status == 200
        await code_mailed(w, busy, seen=n)
    refused = await ask(page, w, "export", busy)
    assert refused.status == 429 and "sent to this address" in await page.inner_text("#refusal")
    assert int(refused.headers["retry-after"]) > 0
    await shoot(page, "09-rate-limited")

    # Codes per source: fresh addresses until this client has had PER_SOURCE codes.
    made = await lethe_db.fetchval(
        "SELECT count(*) FROM lethe.privacy_challenges WHERE source_key = ("
        "SELECT source_key FROM lethe.privacy_challenges WHERE id = $1)",
        challenge,
    )
    for _ in range(PER_SOURCE - made):
        assert (await ask(page, w, "export", f"s-{uuid.uuid4().hex[:8]}@example.com")).status == 200
    refused = await ask(page, w, "export", f"s-{uuid.uuid4().hex[:8]}@example.com")
    assert refused.status == 429 and "from your network" in await page.inner_text("#refusal")

    assert len(await jobs_of(lethe_db, w.org_id)) == before  # no refusal made a job
    await ctx.close()


async def test_every_step_is_audited_without_code_or_address(
    world: World, lethe_db: asyncpg.Pool
) -> None:
    w = world

    async def reasons() -> set[str] | None:
        rows = await audit.query(lethe_db, audit.Query(w.org_id, limit=1000))
        found = {r["details"].get("reason") for r in rows if r["action"] == "PrivacyCodeRefused"}
        want = {
            "wrong_code",
            "replayed_code",
            "expired_code",
            "too_many_attempts",
            "rate_limited_address",
            "rate_limited_source",
        }
        return found if want <= found else None

    await eventually(reasons, timeout=60, what="every refusal in the audit trail")
    rows = await audit.query(lethe_db, audit.Query(w.org_id, limit=1000))
    actions = {r["action"] for r in rows}
    assert {"PrivacyCentreChanged", "PrivacyCodeRequested", "PrivacyCodeVerified"} <= actions
    sent = [r for r in rows if r["action"] == "NotificationSent"]
    assert any(r["details"]["template"] == "privacy_code" for r in sent)
    text = str([(r["details"], r["actor"]) for r in rows])
    codes = {c for mail in mails_to(w.mail_dir, "@") if (c := code_in(mail))}
    assert codes, "no code mails read"
    for secret in (*codes, *(u.email for u in w.seeded.users), "@example.com"):
        assert secret not in text, secret
    verified = [r for r in rows if r["action"] == "PrivacyCodeVerified"]
    jobs = {j["id"]: j for j in await jobs_of(lethe_db, w.org_id)}
    assert {r["job_id"] for r in verified} == set(jobs)
    assert all(r["subject_hash"] == jobs[r["job_id"]]["subject_hash"] for r in verified)


async def test_the_owner_turns_it_off(world: World) -> None:
    w = world
    headers = {"Authorization": f"Bearer {w.owner_key}"}
    async with httpx.AsyncClient(base_url=w.url, headers=headers) as c:
        on = (await c.get(f"/v1/orgs/{w.org_id}/privacy-centre")).json()
        assert on["enabled"] and on["url"].endswith(f"/privacy/{w.slug}")
        r = await c.put(f"/v1/orgs/{w.org_id}/privacy-centre", json={"enabled": False})
        assert r.status_code == 200 and r.json()["enabled"] is False
        gone = await c.get(f"/privacy/{w.slug}")
        assert gone.status_code == 404 and "no privacy centre" in gone.text
        posted = await c.post(f"/privacy/{w.slug}", data={"type": "export", "email": "a@b.co"})
        assert posted.status_code == 404
    ctx = await w.browser.new_context(viewport=DESKTOP)
    page = await ctx.new_page()
    answer = await page.goto(f"{w.url}/privacy/{w.slug}")
    assert answer is not None and answer.status == 404
    assert "Sign in" not in await page.inner_text("main")  # no admin links for a subject
    await shoot(page, "10-centre-off")
    await ctx.close()
