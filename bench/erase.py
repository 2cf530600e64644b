"""Erasure throughput: the eraser's real path against a hand-written set-based delete.

    python -m bench.erase [--rows 10000 100000] [--batch-size 1000] [--json PATH]

For each size N, two identical organisations are seeded whose heavy user (the subject) owns
about N rows. The subject of org A is erased by raw SQL (the baseline: children first, one
set-based DELETE per table in one transaction, plus one S3 DeleteObjects); the subject of
org B by `services.eraser.domain.erase` (data-map resolve, per batch: S3 then a DELETE by
primary keys in a transaction, checkpoint, progress event; then verification). Events go to
a list, not Kafka, so publishing cost is not measured. After each run the subject's rows and
objects must be gone and every other user's intact, or the bench fails.

Uses the infrastructure named by DATABASE_URL, PLATFORM_DATABASE_URL and S3_ENDPOINT_URL when
all are set; otherwise starts its own in `.local/bench-<pid>` and stops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncpg

from deploy.local import infra
from deploy.local.sample.seed import SeededOrg, SeededUser, apply_schema, seed_org
from services.eraser.domain import EraserDeps, erase
from shared.datamap import load_datamap
from shared.db import create_pool, migrate
from shared.events import Actor, Envelope, make_event
from shared.events.jobs import ErasureRequested, Subject
from shared.settings import LetheSettings
from shared.storage import delete_objects, s3_client

REPO = Path(__file__).resolve().parents[1]
DATAMAP = REPO / "deploy/local/sample/datamap.yaml"
MESSAGES_PER_CONVERSATION = 50
MEDIA_EVERY = 500
BACKGROUND_SHARE = 0.5  # other users own about this fraction of N rows in each org
_ENV = ("DATABASE_URL", "PLATFORM_DATABASE_URL", "S3_ENDPOINT_URL")


class BenchError(RuntimeError):
    """The erasure left the subject's data behind or touched someone else's."""


@dataclass(frozen=True)
class Targets:
    database_url: str
    platform_database_url: str
    s3_endpoint_url: str


@dataclass
class Result:
    target_rows: int
    rows: int
    objects: int
    baseline_seconds: float
    baseline_rows_per_second: float
    lethe_seconds: float
    lethe_rows_per_second: float
    ratio: float
    batch_size: int
    batches: int
    lethe_phases: dict[str, float] = field(default_factory=dict)
    lethe_peak_rss_delta_mib: float | None = None


# ------------------------------------------------------------------ measuring


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class PeakRss:
    """Peak resident memory above the level at entry, sampled by a thread every 2 ms."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._start: int | None = None
        self._peak = 0

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self._peak = max(self._peak, _rss_bytes() or 0)

    def __enter__(self) -> PeakRss:
        gc.collect()
        self._start = _rss_bytes()
        self._peak = self._start or 0
        self._thread.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, _rss_bytes() or 0)

    @property
    def delta_mib(self) -> float | None:
        return None if self._start is None else (self._peak - self._start) / 2**20


# ------------------------------------------------------------------ the two erasers

# Messages hang off the subject twice (authored, and in the subject's conversations), as in
# the data map; the baseline deletes exactly that set.
_BASELINE = (
    "DELETE FROM messages WHERE author_id = $1",
    "DELETE FROM messages WHERE conversation_id IN"
    " (SELECT id FROM conversations WHERE user_id = $1)",
    "DELETE FROM conversations WHERE user_id = $1",
    "DELETE FROM users WHERE id = $1",
)
_BASELINE_MEDIA = (
    "DELETE FROM media_objects WHERE message_id IN ("
    " SELECT id FROM messages WHERE author_id = $1"
    " UNION ALL SELECT m.id FROM messages m JOIN conversations c ON c.id = m.conversation_id"
    " WHERE c.user_id = $1) RETURNING s3_key"
)


def _count(status: str) -> int:
    return int(status.split()[-1])


async def baseline_erase(
    conn: asyncpg.Connection, s3: Any, bucket: str, org_id: str, email: str
) -> tuple[int, int]:
    """The fastest reasonable hand-written erase; returns (rows, objects) deleted."""
    async with conn.transaction():
        uid = await conn.fetchval(
            "SELECT id FROM users WHERE org_id = $1 AND lower(email) = $2", org_id, email.lower()
        )
        keys = [r[0] for r in await conn.fetch(_BASELINE_MEDIA, uid)]
        # Objects go before the rows commit: a failure rolls the rows back, no orphans.
        failed = await delete_objects(s3, bucket, keys)
        if failed:
            raise BenchError(f"baseline: {len(failed)} objects not deleted")
        rows = len(keys)
        for sql in _BASELINE:
            rows += _count(await conn.execute(sql, uid))
    return rows, len(keys)


@dataclass
class Recorder:
    """`emit` for the eraser: keeps the events and when they came (no Kafka)."""

    events: list[tuple[float, str, Envelope]] = field(default_factory=list)

    async def emit(self, topic: str, env: Envelope) -> None:
        self.events.append((time.perf_counter(), topic, env))

    def of(self, event_type: str) -> list[tuple[float, Envelope]]:
        return [(t, e) for t, _, e in self.events if e.type == event_type]


def erasure_request(job_id: uuid.UUID, org_id: str, email: str) -> Envelope:
    req = ErasureRequested(
        scope="subject",
        subject=Subject(email=email),
        regulation="gdpr",
        due_at=datetime.now(UTC) + timedelta(days=30),
        recovery_window_days=0,
        channel="kafka",
    )
    return make_event(req, actor=Actor(kind="service", id="bench"), job_id=job_id, org_id=org_id)


# ------------------------------------------------------------------ checks


async def check_erased(
    conn: asyncpg.Connection, s3: Any, bucket: str, org: SeededOrg, who: str
) -> None:
    """The subject's rows and objects are gone; every other user's are all still there."""
    subject, others = org.users[0], org.users[1:]
    left = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM users WHERE id = $1) AS users,"
        " (SELECT count(*) FROM conversations WHERE user_id = $1) AS conversations,"
        " (SELECT count(*) FROM messages WHERE author_id = $1) AS messages,"
        " (SELECT count(*) FROM media_objects WHERE s3_key = ANY($2::text[])) AS media_objects",
        subject.id,
        subject.object_keys,
    )
    if any(left.values()):
        raise BenchError(f"{who}: subject rows left in org {org.org_id}: {dict(left)}")
    kept = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM users WHERE org_id = $1) AS users,"
        " (SELECT count(*) FROM conversations WHERE org_id = $1) AS conversations,"
        " (SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id"
        "  WHERE c.org_id = $1) AS messages,"
        " (SELECT count(*) FROM media_objects o JOIN messages m ON m.id = o.message_id"
        "  JOIN conversations c ON c.id = m.conversation_id WHERE c.org_id = $1) AS media_objects",
        org.org_id,
    )
    expected = {
        "users": len(others),
        "conversations": sum(u.conversations for u in others),
        "messages": sum(u.messages for u in others),
        "media_objects": sum(len(u.object_keys) for u in others),
    }
    if dict(kept) != expected:
        raise BenchError(f"{who}: other users' rows changed: {dict(kept)} != {expected}")
    stored = await _object_keys(s3, bucket, f"media/{org.org_id}/")
    if stored != {k for u in others for k in u.object_keys}:
        raise BenchError(f"{who}: objects in S3 do not match the other users' objects")


async def _object_keys(s3: Any, bucket: str, prefix: str) -> set[str]:
    keys: set[str] = set()
    async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.update(o["Key"] for o in page.get("Contents", []))
    return keys


async def drop_org(conn: asyncpg.Connection, s3: Any, bucket: str, org_id: str) -> None:
    """Remove a bench org entirely (bench data never stays behind in shared infra)."""
    async with conn.transaction():
        await conn.execute(
            "DELETE FROM media_objects WHERE message_id IN (SELECT m.id FROM messages m"
            " JOIN conversations c ON c.id = m.conversation_id WHERE c.org_id = $1)",
            org_id,
        )
        await conn.execute(
            "DELETE FROM messages WHERE conversation_id IN"
            " (SELECT id FROM conversations WHERE org_id = $1)",
            org_id,
        )
        for table in ("conversations", "users"):
            await conn.execute(f"DELETE FROM {table} WHERE org_id = $1", org_id)
        await conn.execute("DELETE FROM organisations WHERE id = $1", org_id)
    await delete_objects(s3, bucket, await _object_keys(s3, bucket, f"media/{org_id}/"))


# ------------------------------------------------------------------ one size


def shape(rows: int) -> dict[str, int]:
    """seed_org arguments giving the heavy user (user 0) about `rows` rows."""
    per_conversation = 1 + MESSAGES_PER_CONVERSATION * (1 + 1 / MEDIA_EVERY)
    conversations = max(1, round((rows - 1) / per_conversation))
    light_user_rows = 2 + MESSAGES_PER_CONVERSATION
    return {
        "users": 1 + max(10, round(rows * BACKGROUND_SHARE / light_user_rows)),
        "conversations_per_user": 1,
        "messages_per_conversation": MESSAGES_PER_CONVERSATION,
        "media_every": MEDIA_EVERY,
        "heavy_user_factor": conversations,
    }


async def bench_size(target: int, batch_size: int, t: Targets, s3: Any, bucket: str) -> Result:
    tag = uuid.uuid4().hex[:8]
    org_ids = [f"bench-{target}-{side}-{tag}" for side in ("a", "b")]
    job_id = uuid.uuid4()
    lethe = await create_pool(t.database_url, max_size=4)
    platform = await create_pool(t.platform_database_url, max_size=4)
    recorder = Recorder()
    try:
        async with platform.acquire() as conn:
            t0 = time.perf_counter()
            org_a, org_b = [
                await seed_org(conn, s3, bucket, org_id, **shape(target)) for org_id in org_ids
            ]
            await conn.execute("ANALYZE users, conversations, messages, media_objects")
            print(
                f"  seeded 2 orgs x {sum(org_a.rows_of(u) for u in org_a.users)} rows "
                f"in {time.perf_counter() - t0:.1f}s",
                file=sys.stderr,
            )
            subj_a, subj_b = org_a.users[0], org_b.users[0]

            t0 = time.perf_counter()
            base_rows, _ = await baseline_erase(conn, s3, bucket, org_a.org_id, subj_a.email)
            base_s = time.perf_counter() - t0
            _expect(base_rows, org_a, subj_a, "baseline")
            await check_erased(conn, s3, bucket, org_a, "baseline")

        deps = EraserDeps(
            lethe=lethe,
            platform=platform,
            s3=s3,
            bucket=bucket,
            datamap=load_datamap(DATAMAP),
            emit=recorder.emit,
            batch_size=batch_size,
        )
        env = erasure_request(job_id, org_b.org_id, subj_b.email)
        with PeakRss() as rss:
            t0 = time.perf_counter()
            await erase(env, deps)
            t1 = time.perf_counter()
        lethe_s = t1 - t0
        result = _lethe_result(recorder, t0, t1, org_b, subj_b)
        async with platform.acquire() as conn:
            await check_erased(conn, s3, bucket, org_b, "lethe")
        return Result(
            target_rows=target,
            rows=result["rows"],
            objects=len(subj_b.object_keys),
            baseline_seconds=round(base_s, 4),
            baseline_rows_per_second=round(base_rows / base_s, 1),
            lethe_seconds=round(lethe_s, 4),
            lethe_rows_per_second=round(result["rows"] / lethe_s, 1),
            ratio=round((result["rows"] / lethe_s) / (base_rows / base_s), 3),
            batch_size=batch_size,
            batches=result["batches"],
            lethe_phases=result["phases"],
            lethe_peak_rss_delta_mib=None if rss.delta_mib is None else round(rss.delta_mib, 1),
        )
    finally:
        await lethe.execute("DELETE FROM lethe.erase_tasks WHERE job_id = $1", job_id)
        async with platform.acquire() as conn:
            for org_id in org_ids:
                await drop_org(conn, s3, bucket, org_id)
        await lethe.close()
        await platform.close()


def _expect(rows: int, org: SeededOrg, subject: SeededUser, who: str) -> None:
    if rows != org.rows_of(subject):
        raise BenchError(f"{who}: deleted {rows} rows, the subject owned {org.rows_of(subject)}")


def _lethe_result(
    rec: Recorder, t0: float, t1: float, org: SeededOrg, subject: SeededUser
) -> dict[str, Any]:
    failed = rec.of("JobFailed")
    if failed:
        raise BenchError(f"lethe: job failed: {failed[0][1].payload}")
    planned, batches = rec.of("ErasurePlanned"), rec.of("BatchErased")
    completed = rec.of("JobCompleted")
    if not planned or not batches or not completed:
        raise BenchError("lethe: the job did not plan, erase and complete")
    rows = sum(int(e.payload["rows"]) for _, e in batches)
    _expect(rows, org, subject, "lethe")
    return {
        "rows": rows,
        "batches": len(batches),
        # resolve: until the plan; delete: until the last batch; verify: the rest.
        "phases": {
            "resolve": round(planned[0][0] - t0, 4),
            "delete": round(batches[-1][0] - planned[0][0], 4),
            "verify": round(t1 - batches[-1][0], 4),
        },
    }


# ------------------------------------------------------------------ main


def print_table(results: list[Result], wall: float) -> None:
    head = (
        f"{'rows':>8} {'objects':>7} {'baseline s':>10} {'baseline r/s':>12} {'lethe s':>8} "
        f"{'lethe r/s':>10} {'ratio':>6} {'batches':>7} {'resolve/delete/verify s':>24} "
        f"{'RSS +MiB':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        p = r.lethe_phases
        phases = f"{p['resolve']:.2f}/{p['delete']:.2f}/{p['verify']:.2f}"
        rss = "-" if r.lethe_peak_rss_delta_mib is None else f"{r.lethe_peak_rss_delta_mib:.1f}"
        print(
            f"{r.rows:>8} {r.objects:>7} {r.baseline_seconds:>10.3f} "
            f"{r.baseline_rows_per_second:>12,.0f} {r.lethe_seconds:>8.3f} "
            f"{r.lethe_rows_per_second:>10,.0f} {r.ratio:>5.2f}x {r.batches:>7} {phases:>24} "
            f"{rss:>8}"
        )
    print(
        f"batch size {results[0].batch_size if results else '-'}; ratio = lethe rows/s over "
        "baseline rows/s in this run (target >= 0.5x). Events were collected in memory: Kafka "
        f"publishing is not measured. Wall time {wall:.1f}s."
    )


async def run(sizes: list[int], batch_size: int, t: Targets) -> list[Result]:
    await migrate(t.database_url)
    await apply_schema(t.platform_database_url)
    settings = LetheSettings(
        database_url=t.database_url,
        platform_database_url=t.platform_database_url,
        s3_endpoint_url=t.s3_endpoint_url,
    )
    results = []
    async with s3_client(settings) as s3:
        for n in sizes:
            print(f"size {n}:", file=sys.stderr)
            result = await bench_size(n, batch_size, t, s3, settings.platform_bucket)
            results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.erase", description=__doc__)
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    state_dir: Path | None = None
    if all(os.environ.get(k) for k in _ENV):
        t = Targets(*(os.environ[k] for k in _ENV))
    else:
        state_dir = REPO / ".local" / f"bench-{os.getpid()}"
        print(f"starting infrastructure in {state_dir}", file=sys.stderr)
        ep = infra.up(state_dir, REPO)
        t = Targets(ep.database_url, ep.platform_database_url, ep.s3_endpoint_url)
    try:
        results = asyncio.run(run(args.rows, args.batch_size, t))
    except BenchError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if state_dir is not None:
            infra.down(state_dir)
            shutil.rmtree(state_dir, ignore_errors=True)
    print_table(results, time.perf_counter() - started)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
