"""What the exporter's use cases run with: built once at start by `bootstrap.build_deps`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from shared.datamap import DataMap, LiveSchema
from shared.events import Envelope
from shared.resolver import Resolver

Emit = Callable[[str, Envelope], Awaitable[None]]


@dataclass
class ExporterDeps:
    lethe: asyncpg.Pool
    platform: asyncpg.Pool
    s3: Any
    bucket: str
    media_bucket: str
    datamap: DataMap
    live: LiveSchema
    emit: Emit
    master_key: bytes
    token_key: bytes
    hash_key: bytes
    api_url: str
    part_bytes: int = 8 * 1024 * 1024
    batch_rows: int = 2000
    rate_limit_rows: float = 0.0
    progress_seconds: float = 1.0  # between progress events (and cancel checks)
    max_downloads: int = 5
    clock: Callable[[], float] = field(default=time.monotonic)

    @property
    def resolver(self) -> Resolver:
        return Resolver(self.datamap, self.live)
