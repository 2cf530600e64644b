"""An OpenDSR request as the notifier reads it: where its callbacks go and the job's due date.

Intake writes `opendsr_requests` and `jobs` (services/intake); the notifier sends the
callbacks (services/notifier/opendsr/).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Target:
    org_id: str
    subject_request_id: str
    api_version: str | None
    urls: list[str]
    expected_completion_time: Any


async def target(pool: asyncpg.Pool, job_id: uuid.UUID) -> Target | None:
    r = await pool.fetchrow(
        "SELECT o.org_id, o.subject_request_id, o.api_version, o.status_callback_urls, "
        "coalesce(j.extended_due_at, j.due_at) AS due FROM lethe.opendsr_requests o "
        "JOIN lethe.jobs j ON j.id = o.job_id WHERE o.job_id = $1",
        job_id,
    )
    if r is None:
        return None
    return Target(
        r["org_id"],
        str(r["subject_request_id"]),
        r["api_version"],
        list(r["status_callback_urls"]),
        r["due"],
    )
