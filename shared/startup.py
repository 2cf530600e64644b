"""What a service checks before it takes work: the data map fits the live platform database,
the platform's media bucket is there. A problem stops the service at start with one message
naming the place (file, table, field; bucket), the same in every service that has it.

`shared.runner` turns a `StartupError` or a `DataMapError` into that message and exit code 2,
without a traceback (`run` for the FastStream services, `preflight` for intake's map).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from shared.datamap import (
    DataMap,
    DataMapError,
    LiveSchema,
    check_against_database,
    load_datamap,
)
from shared.settings import LetheSettings
from shared.storage import BucketError, BucketMissing, check_bucket

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """Configuration the operator must fix; the service exits with this message."""


# What stops a service at start with its message alone (no traceback).
STARTUP_ERRORS = (StartupError, DataMapError)


def redact_dsn(url: str) -> str:
    """The URL with its password hidden (`postgresql://app:***@db/shop`)."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if ":" in userinfo:
        hidden = f"{userinfo.split(':', 1)[0]}:***{at}{host}"
        url = url.replace(f"//{parts.netloc}", f"//{hidden}", 1)
    if "password=" in parts.query:
        query = re.sub(r"(^|&)(password=)[^&]*", r"\1\2***", parts.query)
        url = url.replace(f"?{parts.query}", f"?{query}", 1)
    return url


async def load_checked_datamap(settings: LetheSettings) -> tuple[DataMap, LiveSchema]:
    """The data map at `LETHE_DATAMAP_PATH`, checked against the live platform database.

    Returns the map and what `check_against_database` returns, unchanged. A map mistake
    raises its `DataMapError` (file, table, field); an unreachable database a StartupError.
    """
    datamap = load_datamap(settings.datamap_path)
    try:
        conn = await asyncpg.connect(settings.platform_database_url, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise StartupError(
            f"cannot reach the platform database {redact_dsn(settings.platform_database_url)} "
            f"(LETHE_PLATFORM_DATABASE_URL) to check the data map {settings.datamap_path}: {exc}"
        ) from exc
    try:
        return datamap, await check_against_database(datamap, conn)
    finally:
        await conn.close()


async def open_platform_bucket(s3: Any, settings: LetheSettings) -> None:
    """Make sure the platform's media bucket is there: created when missing on a development
    deployment (`LETHE_ENV=dev`, as `make up` and the tests
    run), a StartupError naming the bucket otherwise."""
    bucket = settings.platform_bucket
    try:
        await check_bucket(s3, bucket)
        return
    except BucketMissing as exc:
        if not settings.on_dev_keys:
            raise StartupError(
                f"platform bucket {bucket!r} (LETHE_PLATFORM_BUCKET) does not exist at "
                f"{s3.meta.endpoint_url}: create it, or set LETHE_PLATFORM_BUCKET to the bucket "
                "of the platform's media (Lethe creates it only in development, while "
                "with LETHE_ENV=dev)"
            ) from exc
    except BucketError as exc:
        raise StartupError(f"platform bucket (LETHE_PLATFORM_BUCKET): {exc}") from exc
    await s3.create_bucket(Bucket=bucket)
    log.warning("platform bucket %r did not exist: created it (development settings)", bucket)


def refusal(exc: BaseException) -> str:
    """The one line a service that cannot start prints."""
    return f"cannot start: {exc}"


__all__ = [
    "STARTUP_ERRORS",
    "StartupError",
    "load_checked_datamap",
    "open_platform_bucket",
    "redact_dsn",
    "refusal",
]
