"""S3 side of an erasure: move objects to a quarantine prefix and back, and prove where they are.

S3 has no rename: a move is a copy then a delete. Every step is idempotent, so a chunk run twice
(or a move interrupted by a crash) ends in the same place. Verification lists prefixes (1,000
keys per request) instead of one HEAD per object; it falls back to HEADs only when the keys are
spread over too many prefixes to list cheaply.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from shared.storage import delete_objects, object_exists

QUARANTINE = "lethe-quarantine"
_PARALLEL = 32
_MAX_LIST_PREFIXES = 16
_MAX_LIST_PAGES = 200


class ObjectMoveFailed(RuntimeError):
    pass


def quarantine_key(job_id: uuid.UUID, key: str) -> str:
    return f"{QUARANTINE}/{job_id}/{key}"


def quarantine_prefix(job_id: uuid.UUID) -> str:
    return f"{QUARANTINE}/{job_id}/"


def _missing(s3: Any, exc: Exception) -> bool:
    if not isinstance(exc, s3.exceptions.ClientError):
        return False
    code = exc.response.get("Error", {}).get("Code")
    return code in ("404", "NoSuchKey", "NotFound")


async def move(s3: Any, bucket: str, pairs: Sequence[tuple[str, str]]) -> list[str]:
    """Move each (src, dst): copy, then one batched delete of the sources.

    Returns the sources that were found nowhere (neither at src nor already at dst).
    Raises ObjectMoveFailed if S3 refuses a copy or a delete: the caller retries the chunk.
    """
    sem = asyncio.Semaphore(_PARALLEL)
    gone: list[str] = []

    async def copy(src: str, dst: str) -> None:
        async with sem:
            try:
                await s3.copy_object(
                    Bucket=bucket, Key=dst, CopySource={"Bucket": bucket, "Key": src}
                )
            except Exception as exc:
                if not _missing(s3, exc):
                    raise
                # Already moved by an earlier attempt, or never there.
                if not await object_exists(s3, bucket, dst):
                    gone.append(src)

    await asyncio.gather(*(copy(s, d) for s, d in pairs))
    failed = await delete_objects(s3, bucket, [s for s, _ in pairs])
    if failed:
        raise ObjectMoveFailed(f"{len(failed)} objects could not be removed from their place")
    return gone


async def purge(s3: Any, bucket: str, keys: Iterable[str]) -> list[str]:
    return await delete_objects(s3, bucket, keys)


async def list_prefix(s3: Any, bucket: str, prefix: str, max_pages: int = 0) -> set[str] | None:
    """Keys under prefix; None if it takes more than `max_pages` pages (0: no limit)."""
    keys: set[str] = set()
    pages = 0
    async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.update(o["Key"] for o in page.get("Contents", []))
        pages += 1
        if max_pages and pages >= max_pages:
            return None
    return keys


async def still_present(s3: Any, bucket: str, keys: Sequence[str]) -> list[str]:
    """Which of `keys` exist: by listing their few parent prefixes, else by HEAD each."""
    if not keys:
        return []
    prefixes = {k.rsplit("/", 1)[0] + "/" if "/" in k else "" for k in keys}
    if len(prefixes) <= _MAX_LIST_PREFIXES and "" not in prefixes:
        listed: set[str] = set()
        for p in prefixes:
            found = await list_prefix(s3, bucket, p, _MAX_LIST_PAGES)
            if found is None:
                break
            listed |= found
        else:
            return [k for k in keys if k in listed]
    sem = asyncio.Semaphore(_PARALLEL)

    async def check(key: str) -> str | None:
        async with sem:
            return key if await object_exists(s3, bucket, key) else None

    return [k for k in await asyncio.gather(*(check(k) for k in keys)) if k]
