"""The notifier's wiring, once: the app and the tests build their `NotifierDeps` here, at
start (not per message)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg

from services.notifier.service import Emit, NotifierDeps
from services.notifier.settings import NotifierSettings
from shared.db import create_pool
from shared.privacy_codes import code_key


def build_deps(settings: NotifierSettings, *, pool: asyncpg.Pool, emit: Emit) -> NotifierDeps:
    """NotifierDeps from an open pool."""
    s = settings
    hash_key = s.subject_hash_key.get_secret_value().encode()
    return NotifierDeps(
        pool=pool,
        emit=emit,
        smtp_host=s.smtp_host,
        smtp_port=s.smtp_port,
        mail_from=s.mail_from,
        timeout=s.smtp_timeout_seconds,
        hash_key=hash_key,
        requester_templates=frozenset(s.notify_requester_templates),
        owner_templates=frozenset(s.notify_owner_templates),
        code_key=code_key(hash_key),
    )


@asynccontextmanager
async def open_deps(settings: NotifierSettings, *, emit: Emit) -> AsyncIterator[NotifierDeps]:
    """Open the pool; yield the deps, close it after. (The dispatchers open their own HTTP
    clients: services/notifier/dispatch.py.)"""
    async with AsyncExitStack() as stack:
        pool = await create_pool(settings.database_url)
        stack.push_async_callback(pool.close)
        yield build_deps(settings, pool=pool, emit=emit)


__all__ = ["build_deps", "open_deps"]
