"""The exporter's wiring, once: the app and the tests build their `ExporterDeps` here, at
start (not per message), with the keys parsed once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import asyncpg

from services.exporter.service import Emit, ExporterDeps
from services.exporter.settings import ExporterSettings
from shared.crypto import parse_master_key
from shared.datamap import DataMap, LiveSchema
from shared.db import create_pool
from shared.startup import load_checked_datamap, open_platform_bucket
from shared.storage import ensure_bucket, s3_client


def build_deps(
    settings: ExporterSettings,
    *,
    lethe: asyncpg.Pool,
    platform: asyncpg.Pool,
    s3: Any,
    datamap: DataMap,
    live: LiveSchema,
    emit: Emit,
) -> ExporterDeps:
    """ExporterDeps from open resources; the keys parsed here."""
    s = settings
    return ExporterDeps(
        lethe=lethe,
        platform=platform,
        s3=s3,
        bucket=s.exports_bucket,
        media_bucket=s.platform_bucket,
        datamap=datamap,
        live=live,
        emit=emit,
        master_key=parse_master_key(s.master_key.get_secret_value()),
        token_key=s.download_token_key.get_secret_value().encode(),
        hash_key=s.subject_hash_key.get_secret_value().encode(),
        api_url=s.public_api_url.rstrip("/"),
        part_bytes=s.export_part_bytes,
        batch_rows=s.export_batch_rows,
        rate_limit_rows=s.export_rate_limit_rows,
        max_downloads=s.export_link_max_downloads,
    )


@asynccontextmanager
async def open_deps(settings: ExporterSettings, *, emit: Emit) -> AsyncIterator[ExporterDeps]:
    """Load the data map and check it against the live platform database, open the S3
    client (the platform's media bucket must be there: exports read the subject's objects
    from it; the exports bucket is created when missing) and the pools; yield the deps,
    close everything after."""
    # Refuse to start on a map that does not fit the live database, or without the bucket.
    datamap, live = await load_checked_datamap(settings)
    async with AsyncExitStack() as stack:
        s3 = await stack.enter_async_context(s3_client(settings))
        await open_platform_bucket(s3, settings)
        await ensure_bucket(s3, settings.exports_bucket)
        lethe = await create_pool(settings.database_url)
        stack.push_async_callback(lethe.close)
        platform = await create_pool(settings.platform_database_url)
        stack.push_async_callback(platform.close)
        yield build_deps(
            settings, lethe=lethe, platform=platform, s3=s3, datamap=datamap, live=live, emit=emit
        )


__all__ = ["build_deps", "open_deps"]
