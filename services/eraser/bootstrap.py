"""The eraser's wiring, once: the app, `lethe cleanup` and the tests build their
`EraserDeps` here (cosmicpython's `bootstrap.py`, without an import-time call)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import asyncpg
import httpx

from services.eraser import store
from services.eraser.deps import Emit, EraserDeps, PublishChunk
from services.eraser.settings import EraserSettings
from services.eraser.store.locks import reset_connection
from shared import netguard
from shared.crypto import parse_master_key
from shared.datamap import DataMap, LiveSchema, missing_env
from shared.db import create_pool
from shared.startup import StartupError, load_checked_datamap, open_platform_bucket
from shared.storage import s3_client


async def _nowhere(*_: Any) -> None:
    raise AssertionError("these deps do not publish: pass emit and publish_chunk")


def build_deps(
    settings: EraserSettings,
    *,
    lethe: asyncpg.Pool,
    platform: asyncpg.Pool,
    s3: Any,
    datamap: DataMap,
    live: LiveSchema,
    emit: Emit = _nowhere,
    publish_chunk: PublishChunk = _nowhere,
    master_key: bytes | None = None,
    http: httpx.AsyncClient | None = None,
    environ: Mapping[str, str] | None = None,
) -> EraserDeps:
    """EraserDeps from open resources; the keys parsed here (`master_key` when the caller
    parsed it already). `http`: the connectors' client (one is made when the map has
    connectors); `environ`: where their secrets are read (the process environment)."""
    if http is None and datamap.connectors:
        http = connector_client(settings)
    if master_key is None:
        master_key = parse_master_key(settings.master_key.get_secret_value())
    return EraserDeps(
        lethe=lethe,
        platform=platform,
        s3=s3,
        bucket=settings.platform_bucket,
        datamap=datamap,
        live=live,
        emit=emit,
        publish_chunk=publish_chunk,
        master_key=master_key,
        hmac_key=settings.mask_hmac_key.get_secret_value().encode(),
        batch_size=settings.erase_batch_size,
        inline_small_jobs=settings.erase_inline_small_jobs,
        rate_limit_rows=settings.erase_rate_limit_rows,
        scan_schemas=tuple(settings.verify_scan_schemas),
        scan_seconds=settings.verify_scan_seconds,
        http=http,
        connector_env=dict(os.environ if environ is None else environ),
        connector_attempts=settings.connector_attempts,
        connector_backoff=settings.connector_backoff_seconds,
        connector_timeout=settings.connector_timeout_seconds,
        connector_concurrency=settings.connector_concurrency,
    )


def connector_client(settings: EraserSettings) -> httpx.AsyncClient:
    """Connector calls go out as callbacks do: only to public addresses (shared/netguard),
    no redirects, no proxies from the environment."""
    policy = netguard.Policy.from_list(settings.callback_allowed_networks)
    return netguard.guarded_client(policy, timeout=settings.connector_timeout_seconds)


@asynccontextmanager
async def open_deps(
    settings: EraserSettings,
    *,
    emit: Emit = _nowhere,
    publish_chunk: PublishChunk = _nowhere,
    prepare_platform: bool = True,
) -> AsyncIterator[EraserDeps]:
    """Open the pools and the S3 client, load the data map and check it against the live
    platform database; yield the deps, close everything after.

    `prepare_platform` (the service) also makes sure of the platform bucket (created on a
    development deployment) and migrates the restoration log; `lethe cleanup` passes False.
    """
    master_key = parse_master_key(settings.master_key.get_secret_value())  # a bad key first
    # Refuse to start on a map that does not fit the live database, or without the bucket.
    datamap, live = await load_checked_datamap(settings)
    # The service calls the connectors: their secrets must be there (`lethe cleanup` does not).
    if prepare_platform and (missing := missing_env(datamap, dict(os.environ))):
        raise StartupError(f"{datamap.source}: " + "; ".join(missing))
    async with AsyncExitStack() as stack:
        s3 = await stack.enter_async_context(s3_client(settings))
        if prepare_platform:
            await open_platform_bucket(s3, settings)
        # Connections go back without asyncpg's reset query (store.locks.reset_connection).
        lethe = await create_pool(settings.database_url, reset=reset_connection)
        stack.push_async_callback(lethe.close)
        # Each chunk or job in flight may hold two (a verification three, briefly).
        size = max(4, 2 * (settings.erase_concurrency + settings.erase_job_concurrency) + 2)
        platform = await create_pool(
            settings.platform_database_url, max_size=size, reset=reset_connection
        )
        stack.push_async_callback(platform.close)
        if prepare_platform:
            await store.migrate_platform(settings.platform_database_url)
        http = connector_client(settings)
        stack.push_async_callback(http.aclose)
        yield build_deps(
            settings,
            lethe=lethe,
            platform=platform,
            s3=s3,
            datamap=datamap,
            live=live,
            emit=emit,
            publish_chunk=publish_chunk,
            master_key=master_key,
            http=http,
        )


__all__ = ["build_deps", "connector_client", "open_deps"]
