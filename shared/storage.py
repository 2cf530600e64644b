"""S3 adapter (aioboto3). S3 enforces nothing for Lethe: access rules live in Lethe."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import aioboto3
from aiobotocore.config import AioConfig

from shared.settings import LetheSettings

_DELETE_BATCH = 1000  # S3 DeleteObjects limit


@asynccontextmanager
async def s3_client(settings: LetheSettings) -> AsyncIterator[Any]:
    session = aioboto3.Session(
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key.get_secret_value(),
        region_name=settings.s3_region,
    )
    config = AioConfig(
        request_checksum_calculation=settings.s3_request_checksum_calculation,
        response_checksum_validation="when_required",
        retries={"max_attempts": settings.s3_max_attempts, "mode": "standard"},
    )
    async with session.client("s3", endpoint_url=settings.s3_endpoint_url, config=config) as c:
        yield c


class BucketError(RuntimeError):
    """A bucket Lethe needs is missing or out of reach; the message names it."""


class BucketMissing(BucketError):
    pass


_MISSING = ("404", "NoSuchBucket", "NotFound")


async def check_bucket(client: Any, bucket: str) -> None:
    """Return if the bucket exists and these credentials reach it; else BucketError naming it."""
    where = client.meta.endpoint_url
    try:
        await client.head_bucket(Bucket=bucket)
    except client.exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _MISSING:
            raise BucketMissing(f"bucket {bucket!r} does not exist at {where}") from exc
        raise BucketError(f"bucket {bucket!r} at {where} is out of reach: {code} {exc}") from exc


async def ensure_bucket(client: Any, bucket: str) -> None:
    try:
        await client.head_bucket(Bucket=bucket)
    except client.exceptions.ClientError:
        await client.create_bucket(Bucket=bucket)


async def delete_objects(client: Any, bucket: str, keys: Iterable[str]) -> list[str]:
    """Delete keys in batches; returns keys S3 reported as failed (never silently dropped)."""
    keys = list(keys)
    failed: list[str] = []
    for i in range(0, len(keys), _DELETE_BATCH):
        chunk = keys[i : i + _DELETE_BATCH]
        resp = await client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
        )
        failed.extend(e["Key"] for e in resp.get("Errors", []))
    return failed


async def object_exists(client: Any, bucket: str, key: str) -> bool:
    try:
        await client.head_object(Bucket=bucket, Key=key)
        return True
    except client.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
