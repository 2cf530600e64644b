"""What every browser test module shares: Debian's Chromium launched the one way, and an
organisation of the test's own with an owner key and seeded platform data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import asyncpg

from deploy.local.sample.seed import SeededOrg, seed_org
from services.intake import store as intake_store

CHROMIUM = Path(os.environ.get("LETHE_CHROMIUM", "/usr/bin/chromium"))
# Headless in a sandbox-less container, and quiet: nothing fetched behind the test's back.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


async def launch(playwright: Any) -> Any:
    """A headless Chromium of this machine (never one a tool downloads)."""
    return await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)


async def owned_org(
    lethe_db: asyncpg.Pool,
    platform_db: asyncpg.Pool,
    s3: Any,
    org_id: str,
    name: str,
    **seed: Any,
) -> tuple[str, SeededOrg]:
    """A new organisation with an owner key (returned) and its users' data on the platform
    (`seed`: seed_org's sizes)."""
    await intake_store.create_org(lethe_db, org_id, name)
    key = await intake_store.create_api_key(lethe_db, org_id, "owner", "browser owner")
    async with platform_db.acquire() as conn:
        seeded = await seed_org(conn, s3, "lethe-platform", org_id, media_every=0, **seed)
    return key, seeded
