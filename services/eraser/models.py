"""The eraser's records, as its store returns them: a job, a chunk of it, and a
restoration record (the sealed rows a chunk took out of the platform)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Job:
    job_id: uuid.UUID
    org_id: str
    status: str
    total: int
    done: int
    per_table: dict[str, int]
    verification: dict[str, Any] | None
    subject_hash: str | None
    wave: int
    waves: int
    recovery_window_days: int
    erasing_since: datetime | None
    purge_after: datetime | None
    purged_at: datetime | None
    wrapped_key: bytes | None
    sealed_request: bytes | None
    needs_review: list[dict[str, Any]]
    restored_rows: int


@dataclass(frozen=True)
class Chunk:
    job_id: uuid.UUID
    chunk_no: int
    wave: int
    table_name: str
    keys: list[str]
    status: str
    op: str = "erase"


@dataclass(frozen=True)
class Held:
    chunk_no: int
    table_name: str
    keys: list[str]
    sealed: bytes
    op: str = "erase"


# (chunk_no, wave, table, keys, op): a chunk as the plan records it.
ChunkRow = tuple[int, int, str, list[str], str]


@dataclass(frozen=True)
class ConnectorCall:
    """What a connector's call came to for one job: `done`, or `failed` with a code (an HTTP
    status, `timeout`, `refused:<rule>`, ...; never the target's answer, which may echo data).
    Token revocations count the tokens found and those not revoked."""

    connector: str
    kind: str
    outcome: str
    code: str | None = None
    attempts: int = 0
    tokens: int | None = None
    failed_tokens: int | None = None
