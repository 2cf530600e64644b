"""Jobs with known received, closed and deadline times, written straight into intake's tables,
and the compliance report they make for 2025-01..2025-04 (the expected figures, worked out by
hand). Shared by the API test and the browser test.

2025-01: four closed requests (1, 2, 50 and 60 days; the 50-day one after its deadline, the
60-day one within its extension); 2025-02: one open and overdue, one open within its
extension, one cancelled by intake itself after 12 hours (no closing event: its last event
counts); 2025-03: none (a retention run only, which is no request); 2025-04: one failed after
3 days, received at the first instant of the month. Around them: a request just before and
one just after the range, and another organisation's request in it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

DAY = timedelta(days=1)
RANGE = ("2025-01", "2025-04")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@dataclass(frozen=True)
class Job:
    type: str
    channel: str  # as recorded; "opendsr": recorded as http, with an opendsr_requests row
    regulation: str
    received: datetime
    due: datetime
    status: str
    events: tuple[tuple[str, timedelta], ...] = ()  # (type, after received)
    extended: datetime | None = None
    last_event: timedelta | None = None


def jobs(now: datetime) -> list[Job]:
    return [
        Job(
            "erasure",
            "http",
            "gdpr",
            at("2025-01-05T00:00:00+00:00"),
            at("2025-02-05T00:00:00+00:00"),
            "completed",
            (("BatchErased", DAY / 2), ("ErasureSoftDeleted", DAY), ("JobCompleted", 8 * DAY)),
        ),
        Job(
            "export",
            "kafka",
            "gdpr",
            at("2025-01-10T00:00:00+00:00"),
            at("2025-02-10T00:00:00+00:00"),
            "expired",
            (("ExportReady", 2 * DAY), ("ExportExpired", 3 * DAY)),
        ),
        Job(
            "erasure",
            "opendsr",
            "ccpa",
            at("2025-01-20T00:00:00+00:00"),
            at("2025-03-06T00:00:00+00:00"),
            "completed",
            (("ErasureSoftDeleted", 50 * DAY), ("JobCompleted", 58 * DAY)),
        ),
        Job(
            "erasure",
            "http",
            "gdpr",
            at("2025-01-25T00:00:00+00:00"),
            at("2025-02-25T00:00:00+00:00"),
            "soft_deleted",
            (("ErasureSoftDeleted", 60 * DAY),),
            extended=at("2025-04-25T00:00:00+00:00"),
        ),
        # 23:00 in New York on 31 January is February in UTC.
        Job(
            "export",
            "http",
            "ccpa",
            at("2025-01-31T23:00:00-05:00"),
            at("2025-01-31T23:00:00-05:00") + 45 * DAY,
            "running",
            (("BatchExported", DAY),),
        ),
        Job(
            "erasure",
            "kafka",
            "custom",
            at("2025-02-14T00:00:00+00:00"),
            at("2025-02-24T00:00:00+00:00"),
            "pending",
            extended=now + 30 * DAY,
        ),
        Job(
            "erasure",
            "http",
            "gdpr",
            at("2025-02-28T23:30:00+00:00"),
            at("2025-03-28T23:30:00+00:00"),
            "cancelled",
            last_event=DAY / 2,
        ),
        Job(
            "export",
            "http",
            "gdpr",
            at("2025-04-01T00:00:00+00:00"),
            at("2025-05-01T00:00:00+00:00"),
            "failed",
            (("JobFailed", 3 * DAY),),
        ),
        # Not in the report: before the range, after it, and a retention run.
        Job(
            "erasure",
            "http",
            "gdpr",
            at("2024-12-31T23:59:59+00:00"),
            at("2025-01-31T23:59:59+00:00"),
            "completed",
            (("ErasureSoftDeleted", DAY),),
        ),
        Job(
            "erasure",
            "http",
            "gdpr",
            at("2025-05-01T00:00:00+00:00"),
            at("2025-06-01T00:00:00+00:00"),
            "pending",
        ),
    ]


async def insert(pool: asyncpg.Pool, org_id: str, job: Job) -> uuid.UUID:
    job_id = uuid.uuid4()
    channel = "http" if job.channel == "opendsr" else job.channel
    last = job.received + job.last_event if job.last_event else None
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO lethe.jobs (id, org_id, type, scope, status, channel, actor, "
            "regulation, received_at, due_at, extended_due_at, recovery_window_days, "
            "last_event_at) VALUES ($1, $2, $3, 'subject', $4, $5, 'api_key:test', $6, $7, $8, "
            "$9, 7, $10)",
            job_id, org_id, job.type, job.status, channel, job.regulation, job.received,
            job.due, job.extended, last,
        )  # fmt: skip
        for kind, after in job.events:
            await conn.execute(
                "INSERT INTO lethe.job_events (event_id, job_id, type, occurred_at, actor, "
                "details) VALUES ($1, $2, $3, $4, 'service:test', '{}')",
                uuid.uuid4(), job_id, kind, job.received + after,
            )  # fmt: skip
        if job.channel == "opendsr":
            await conn.execute(
                "INSERT INTO lethe.opendsr_requests (job_id, org_id, subject_request_id, "
                "subject_request_type, regulation, submitted_time, request_fingerprint) "
                "VALUES ($1, $2, $3, 'erasure', $4, $5, 'test')",
                job_id, org_id, uuid.uuid4(), job.regulation, job.received,
            )  # fmt: skip
    return job_id


async def seed(pool: asyncpg.Pool, org_id: str, now: datetime) -> None:
    for job in jobs(now):
        await insert(pool, org_id, job)
    await pool.execute(
        "INSERT INTO lethe.jobs (id, org_id, type, scope, status, channel, actor, regulation, "
        "received_at, due_at, recovery_window_days) VALUES ($1, $2, 'retention', 'category', "
        "'completed', 'schedule', 'scheduler', 'retention', $3::timestamptz, "
        "$3::timestamptz + interval '1 day', 0)",
        uuid.uuid4(), org_id, at("2025-03-03T02:00:00+00:00"),
    )  # fmt: skip


def _month(month: str, **figures: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "month": month, "requests": 0, "closed": 0, "median_days_to_close": None,
        "p90_days_to_close": None, "on_time": 0, "late": 0, "on_time_rate": None, "open": 0,
        "overdue": 0, "extended": 0,
    }  # fmt: skip
    types = dict.fromkeys(("erasure", "export"), 0)
    channels = dict.fromkeys(("http", "kafka", "opendsr"), 0)
    regulations = dict.fromkeys(("gdpr", "ccpa", "custom"), 0)
    base.update(by_type=types, by_channel=channels, by_regulation=regulations)
    for name, value in figures.items():
        if name.startswith("by_"):
            base[name] = {**base[name], **value}
        else:
            base[name] = value
    return base


# The report for RANGE, month by month, then the whole range.
EXPECTED = [
    _month(
        "2025-01",
        requests=4,
        by_type={"erasure": 3, "export": 1},
        by_channel={"http": 2, "kafka": 1, "opendsr": 1},
        by_regulation={"gdpr": 3, "ccpa": 1},
        closed=4,
        median_days_to_close=26.0,
        p90_days_to_close=57.0,
        on_time=3,
        late=1,
        on_time_rate=0.75,
        extended=1,
    ),
    _month(
        "2025-02",
        requests=3,
        by_type={"erasure": 2, "export": 1},
        by_channel={"http": 2, "kafka": 1},
        by_regulation={"gdpr": 1, "ccpa": 1, "custom": 1},
        closed=1,
        median_days_to_close=0.5,
        p90_days_to_close=0.5,
        on_time=1,
        late=1,
        on_time_rate=0.5,
        open=2,
        overdue=1,
        extended=1,
    ),
    _month("2025-03"),
    _month(
        "2025-04",
        requests=1,
        by_type={"export": 1},
        by_channel={"http": 1},
        by_regulation={"gdpr": 1},
        closed=1,
        median_days_to_close=3.0,
        p90_days_to_close=3.0,
        on_time=1,
        on_time_rate=1.0,
    ),
]
TOTAL = _month(
    "total", requests=8, by_type={"erasure": 5, "export": 3},
    by_channel={"http": 5, "kafka": 2, "opendsr": 1},
    by_regulation={"gdpr": 5, "ccpa": 2, "custom": 1}, closed=6,
    median_days_to_close=2.5, p90_days_to_close=55.0, on_time=5, late=2, on_time_rate=0.7143,
    open=2, overdue=1, extended=2,
)  # fmt: skip
CSV = (
    "month,requests,type:erasure,type:export,channel:http,channel:kafka,channel:opendsr,"
    "regulation:gdpr,regulation:ccpa,regulation:custom,closed,median_days_to_close,"
    "p90_days_to_close,on_time,late,on_time_rate,open,overdue,extended\r\n"
    "2025-01,4,3,1,2,1,1,3,1,0,4,26.0,57.0,3,1,0.75,0,0,1\r\n"
    "2025-02,3,2,1,2,1,0,1,1,1,1,0.5,0.5,1,1,0.5,2,1,1\r\n"
    "2025-03,0,0,0,0,0,0,0,0,0,0,,,0,0,,0,0,0\r\n"
    "2025-04,1,0,1,1,0,0,1,0,0,1,3.0,3.0,1,0,1.0,0,0,0\r\n"
    "total,8,5,3,5,2,1,5,2,1,6,2.5,55.0,5,2,0.7143,2,1,2\r\n"
)
