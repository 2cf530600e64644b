"""Bulk requests as the notifier reads them: whether a job is a member of one.

Intake writes `bulk_jobs` and `bulk_subjects` (services/intake/store/bulk.py), each member's
row in the transaction that records its job, so the row exists before any notice about the
job can. The requester of a bulk request gets one summary mail instead of one per subject.
"""

from __future__ import annotations

import uuid

import asyncpg

# What is still mailed about a member: a manual review is work for the owners, per job.
MEMBER_TEMPLATES = frozenset({"job_needs_review"})


async def is_member(pool: asyncpg.Pool, job_id: uuid.UUID) -> bool:
    found = await pool.fetchval("SELECT 1 FROM lethe.bulk_subjects WHERE job_id = $1", job_id)
    return found is not None


async def quiet(pool: asyncpg.Pool, job_id: uuid.UUID | None, template: str) -> bool:
    """A per-subject mail of a bulk request's member: not sent (the summary says it)."""
    if job_id is None or template in MEMBER_TEMPLATES:
        return False
    return await is_member(pool, job_id)
