"""What the eraser's use cases run on: pools, the S3 client, the data map checked against
the live schema, the keys, and where events and chunks go. Built only by
services/eraser/bootstrap.py."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import asyncpg
import httpx

from services.eraser.models import Job
from services.eraser.sealing import unwrap_job_key
from shared.catalog import CatalogCache
from shared.datamap import DataMap, LiveSchema
from shared.events import Envelope
from shared.resolver import Resolver

Emit = Callable[[str, Envelope], Awaitable[None]]
PublishChunk = Callable[[Envelope], Awaitable[None]]


@dataclass
class EraserDeps:
    lethe: asyncpg.Pool
    platform: asyncpg.Pool
    s3: Any
    bucket: str
    datamap: DataMap
    live: LiveSchema
    emit: Emit
    publish_chunk: PublishChunk
    master_key: bytes
    hmac_key: bytes = b"dev-only-mask-hmac-key"
    batch_size: int = 1000
    inline_small_jobs: bool = False  # see EraserSettings.erase_inline_small_jobs
    rate_limit_rows: float = 0.0
    scan_schemas: tuple[str, ...] = ("public",)
    scan_seconds: float = 30.0
    clock: Callable[[], float] = field(default=time.monotonic)
    # Connectors (docs/datamap.md): the SSRF-guarded client, the environment holding their
    # secrets, and how each call is retried.
    http: httpx.AsyncClient | None = None
    connector_env: Mapping[str, str] = field(default_factory=dict)
    connector_attempts: int = 4
    connector_backoff: float = 1.0
    connector_timeout: float = 10.0
    connector_concurrency: int = 4
    worker: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    _keys: dict[uuid.UUID, bytes] = field(default_factory=dict)
    # The platform's tables for the verification scan, read again only when they change.
    catalog: CatalogCache = field(default_factory=CatalogCache)

    # Derived once from the map and the live schema (both fixed for the process's life).
    @cached_property
    def pk_types(self) -> dict[str, str]:
        return self.live.pk_types(self.datamap)

    @cached_property
    def resolver(self) -> Resolver:
        return Resolver(self.datamap, self.live)

    @cached_property
    def _column_types(self) -> dict[str, dict[str, str]]:
        return {
            t: {c: col.type for c, col in cols.items()} for t, cols in self.live.columns.items()
        }

    def column_types(self, table: str) -> dict[str, str]:
        return self._column_types.get(table, {})

    def waves(self, tables: list[str] | None = None) -> list[list[str]]:
        """Tables in deletion order, with the live database's foreign keys as well."""
        tables = list(self.datamap.tables) if tables is None else tables
        return self.datamap.waves(tables, self.live.link_edges(self.datamap))

    def runs_inline(self, job: Job) -> bool:
        """A job of at most one batch of rows: nothing to spread over replicas, so its chunks
        run where it was planned (no trip through the task topic per wave)."""
        return self.inline_small_jobs and job.total <= self.batch_size

    def job_key(self, job: Job) -> bytes:
        """The job's data key, unwrapped once per process (a few hundred jobs cached)."""
        key = self._keys.get(job.job_id)
        if key is None:
            key = unwrap_job_key(self.master_key, job)
            if len(self._keys) > 256:
                self._keys.clear()
            self._keys[job.job_id] = key
        return key

    def forget_key(self, job_id: uuid.UUID) -> None:
        self._keys.pop(job_id, None)


__all__ = ["Emit", "EraserDeps", "PublishChunk"]
