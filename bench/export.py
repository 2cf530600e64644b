"""Export throughput and memory: the exporter's real path against COPY -> zip -> S3 by hand.

    python -m bench.export [--rows 10000 100000 1000000] [--quick] [--profile] [--json PATH]

For each size N one organisation is seeded whose heavy user (the subject) owns about N rows
(conversations of 50 messages, no media). The subject is exported by
`services.exporter.service.export` in a **child process** (`--worker`), so its peak RSS
(VmHWM) is the exporter's own: server-side cursors -> JSON and CSV -> zip -> sealed chunks ->
S3 multipart upload. Events go to a list, not Kafka, so publishing cost is not measured.

The baseline, in the parent, in the same run (bench/copy_baseline.py, issue 16 item 2): for
the same rows, `COPY (...) TO STDOUT` as CSV and as JSON (`row_to_json`) per table, into a
zip (same deflate level), uploaded to the same S3 by multipart (same part size) while it is
written, timed end to end. The ratio is the baseline's seconds over the export's (same rows).
The baseline must count the rows the export holds, and the export is verified: downloaded,
decrypted with the unwrapped data key, unzipped, and messages.json / messages.csv must hold
exactly the subject's messages in the database, or the bench fails. Last line:
`RESULT export_vs_copy=<x> rss_mb_10k=<m> rss_mb_100k=<m> rss_mb_1m=<m>` (the ratio at the
largest size; `na` for sizes not run).

Uses the infrastructure named by DATABASE_URL, PLATFORM_DATABASE_URL and S3_ENDPOINT_URL when
all are set; otherwise starts its own in `.local/bench-<pid>` and stops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import csv
import hashlib
import io
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import asyncpg

from bench.copy_baseline import copy_export, subject_queries
from deploy.local import infra
from deploy.local.sample.seed import SeededOrg, apply_schema, seed_org
from services.exporter.bootstrap import build_deps
from services.exporter.domain import key_context
from services.exporter.service import export
from services.exporter.settings import ExporterSettings
from shared.crypto import parse_master_key, unwrap_key
from shared.datamap import check_against_database, load_datamap
from shared.db import create_pool, migrate
from shared.events import Actor, Envelope, make_event
from shared.events.jobs import ExportRequested, Subject
from shared.hashing import subject_hash
from shared.sealed_stream import open_stream
from shared.storage import ensure_bucket, s3_client

REPO = Path(__file__).resolve().parents[1]
MESSAGES_PER_CONVERSATION = 50
BACKGROUND_USERS = 10  # other users in the org: their rows must stay out of the export
_ENV = ("DATABASE_URL", "PLATFORM_DATABASE_URL", "S3_ENDPOINT_URL")
_LABELS = {10_000: "10k", 100_000: "100k", 1_000_000: "1m"}
_MB = 1e6


class BenchError(RuntimeError):
    """The export failed, or its contents do not match the database."""


@dataclass(frozen=True)
class Targets:
    database_url: str
    platform_database_url: str
    s3_endpoint_url: str


@dataclass
class Result:
    target_rows: int
    rows: int
    messages: int
    object_bytes: int
    part_bytes: int
    export_seconds: float
    export_mb_per_s: float
    copy_seconds: float
    copy_rows_per_s: float
    copy_zip_bytes: int
    ratio: float
    start_rss_mb: float
    half_rss_mb: float
    peak_rss_mb: float


# ------------------------------------------------------------------ the worker (child process)


def _proc_status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise BenchError(f"{field} not in /proc/self/status")


def export_request(job_id: uuid.UUID, org_id: str, email: str, hash_key: bytes) -> Envelope:
    req = ExportRequested(
        scope="subject",
        subject=Subject(email=email),
        regulation="gdpr",
        due_at=datetime.now(UTC) + timedelta(days=30),
        format="both",
        include_media=False,
        channel="kafka",
    )
    return make_event(
        req,
        actor=Actor(kind="service", id="bench"),
        job_id=job_id,
        org_id=org_id,
        subject_hash=subject_hash(hash_key, org_id, {"email": email}),
    )


async def worker(job_id: uuid.UUID, org_id: str, email: str, profile: bool) -> dict[str, Any]:
    """One export, with deps built as `services.exporter.bootstrap.build_deps` builds them."""
    s = ExporterSettings()  # the parent passes the endpoints as LETHE_* variables
    events: list[Envelope] = []
    rss_by_done: list[tuple[int, float]] = []  # to tell a plateau from growth with rows

    async def emit(topic: str, env: Envelope) -> None:
        events.append(env)
        if env.type == "BatchExported":
            rss_by_done.append((int(env.payload["done"]), _proc_status_mb("VmRSS")))

    lethe = await create_pool(s.database_url)
    platform = await create_pool(s.platform_database_url)
    try:
        async with s3_client(s) as s3:
            await ensure_bucket(s3, s.exports_bucket)
            datamap = load_datamap(s.datamap_path)
            async with platform.acquire() as conn:
                live = await check_against_database(datamap, conn)
            # Built as the exporter builds them (one place: services/exporter/bootstrap.py).
            deps = build_deps(
                s,
                lethe=lethe,
                platform=platform,
                s3=s3,
                datamap=datamap,
                live=live,
                emit=emit,
            )
            env = export_request(job_id, org_id, email, deps.hash_key)
            start_rss = _proc_status_mb("VmRSS")
            prof = cProfile.Profile() if profile else None
            if prof:
                prof.enable()
            t0 = time.perf_counter()
            await export(env, deps)
            elapsed = time.perf_counter() - t0
            if prof:
                prof.disable()
                pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    finally:
        await lethe.close()
        await platform.close()
    failed = [e.payload for e in events if e.type == "JobFailed"]
    ready = [e.payload for e in events if e.type == "ExportReady"]
    if failed or len(ready) != 1:
        raise BenchError(f"export did not complete: failed={failed}, ready={len(ready)}")
    return {
        "seconds": elapsed,
        "object_key": ready[0]["object_key"],
        "size_bytes": ready[0]["size_bytes"],
        "rows_per_table": ready[0]["rows_per_table"],
        "part_bytes": deps.part_bytes,
        "bucket": s.exports_bucket,
        "start_rss_mb": start_rss,
        "half_rss_mb": _at_half(rss_by_done, start_rss),
        "peak_rss_mb": _proc_status_mb("VmHWM"),  # read last: the peak of the whole process
    }


def _at_half(rss_by_done: list[tuple[int, float]], default: float) -> float:
    """VmRSS once half the rows were written: a flat exporter is at its plateau by then."""
    if not rss_by_done:
        return default
    total = rss_by_done[-1][0]
    return next(mb for done, mb in rss_by_done if 2 * done >= total)


async def run_worker(
    t: Targets, job_id: uuid.UUID, org_id: str, email: str, profile: bool
) -> dict[str, Any]:
    env = dict(os.environ)
    # LETHE_* names win over the bare ones in the settings: set those, so nothing else does.
    for name, value in zip(_ENV, asdict(t).values(), strict=True):
        env[f"LETHE_{name}"] = value
    args = ["--worker", "--job", str(job_id), "--org", org_id, "--email", email]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.export",
        *args,
        *(["--profile"] if profile else []),
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise BenchError(f"export worker exited with {proc.returncode}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


# ------------------------------------------------------------------ baseline and checks


async def _pieces(data: bytes, size: int = 1 << 20) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for i in range(0, len(data), size):
        yield bytes(view[i : i + size])


def count_json_array(fh: IO[bytes]) -> tuple[int, int]:
    """(objects, sum of their "id") of a JSON array, parsed incrementally (never all loaded)."""
    dec = json.JSONDecoder()
    text = io.TextIOWrapper(fh, encoding="utf-8")
    buf, pos, n, ids = "", 0, 0, 0
    started = done = eof = False
    while not done:
        chunk = text.read(1 << 20)
        eof = not chunk
        buf, pos = buf[pos:] + chunk, 0
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n,":
                pos += 1
            if pos >= len(buf):
                break
            if not started:
                if buf[pos] != "[":
                    raise BenchError("messages.json is not a JSON array")
                started, pos = True, pos + 1
                continue
            if buf[pos] == "]":
                done = True
                break
            try:
                obj, end = dec.raw_decode(buf, pos)
            except json.JSONDecodeError:
                if eof:
                    raise
                break  # an object cut at the chunk's end: read more
            n, ids, pos = n + 1, ids + int(obj["id"]), end
        if eof and not done:
            raise BenchError("messages.json ends before its closing bracket")
    return n, ids


async def verify(
    lethe: asyncpg.Pool,
    platform: asyncpg.Pool,
    job_id: uuid.UUID,
    data: bytes,
    subject_id: int,
) -> int:
    """Decrypt and unzip the export; its messages must be the subject's. Returns that count."""
    wrapped = await lethe.fetchval(
        "SELECT wrapped_key FROM lethe.exports WHERE job_id = $1", job_id
    )
    # As intake's download route does: the master key unwraps the per-export key.
    master = parse_master_key(ExporterSettings().master_key.get_secret_value())
    key = unwrap_key(master, wrapped, key_context(job_id))
    want_n, want_ids = await platform.fetchrow(
        "SELECT count(*), coalesce(sum(id), 0) FROM messages WHERE author_id = $1"
        " OR conversation_id IN (SELECT id FROM conversations WHERE user_id = $1)",
        subject_id,
    )
    with tempfile.TemporaryFile() as plain:
        async for piece in open_stream(key, job_id.bytes, _pieces(data)):
            plain.write(piece)
        plain.seek(0)
        with zipfile.ZipFile(plain) as zf:
            manifest = json.loads(zf.read("manifest.json"))
            with zf.open("messages.json") as fh:
                got_n, got_ids = count_json_array(fh)
            with zf.open("messages.csv") as fh:
                csv_rows = sum(1 for _ in csv.reader(io.TextIOWrapper(fh, "utf-8", newline="")))
            for name in ("messages.json", "messages.csv"):
                digest = hashlib.sha256()
                with zf.open(name) as fh:
                    while piece := fh.read(1 << 20):
                        digest.update(piece)
                if digest.hexdigest() != manifest["files"][name]["sha256"]:
                    raise BenchError(f"{name}: SHA-256 differs from the manifest's")
    if (got_n, got_ids) != (want_n, want_ids):
        raise BenchError(
            f"messages.json holds {got_n} rows (id sum {got_ids}); the database has "
            f"{want_n} (id sum {want_ids})"
        )
    if csv_rows - 1 != want_n or manifest["rows_per_table"]["messages"] != want_n:
        raise BenchError(
            f"messages.csv holds {csv_rows - 1} rows, the manifest says "
            f"{manifest['rows_per_table']['messages']}; the database has {want_n}"
        )
    return int(want_n)


async def drop_org(conn: asyncpg.Connection, org_id: str) -> None:
    """Remove a bench org's rows (children first)."""
    async with conn.transaction():
        conv = "SELECT id FROM conversations WHERE org_id = $1"
        await conn.execute(
            "DELETE FROM media_objects WHERE message_id IN (SELECT id FROM messages WHERE "
            f"conversation_id IN ({conv}))",
            org_id,
        )
        await conn.execute(f"DELETE FROM messages WHERE conversation_id IN ({conv})", org_id)
        for table in ("conversations", "payments", "newsletter_signups", "users"):
            await conn.execute(f"DELETE FROM {table} WHERE org_id = $1", org_id)
        await conn.execute("DELETE FROM organisations WHERE id = $1", org_id)


# ------------------------------------------------------------------ one size


def shape(rows: int) -> dict[str, Any]:
    """seed_org arguments giving the subject (user 0) about `rows` rows, almost all messages."""
    fixed = 1 + 2 + 1  # the user, two payments, a newsletter sign-up
    conversations = max(1, round((rows - fixed) / (1 + MESSAGES_PER_CONVERSATION)))
    return {
        "users": 1 + BACKGROUND_USERS,
        "conversations_per_user": 1,
        "messages_per_conversation": MESSAGES_PER_CONVERSATION,
        "media_every": 0,
        "heavy_user_factor": conversations,
    }


async def bench_size(
    target: int, t: Targets, s3: Any, platform_bucket: str, profile: bool, own_infra: bool
) -> Result:
    org_id = f"bench-export-{target}-{uuid.uuid4().hex[:8]}"
    job_id = uuid.uuid4()
    lethe = await create_pool(t.database_url, max_size=2)
    platform = await create_pool(t.platform_database_url, max_size=2)
    done: dict[str, Any] | None = None
    try:
        async with platform.acquire() as conn:
            t0 = time.perf_counter()
            org: SeededOrg = await seed_org(conn, s3, platform_bucket, org_id, **shape(target))
            await conn.execute("ANALYZE users, conversations, messages, payments")
        subject = org.users[0]
        rows = org.rows_of(subject)
        print(f"  seeded {rows} subject rows in {time.perf_counter() - t0:.1f}s", file=sys.stderr)

        done = await run_worker(t, job_id, org_id, subject.email, profile)
        exported = sum(done["rows_per_table"].values())
        if exported != rows:
            raise BenchError(f"exported {exported} rows, the subject owns {rows}")
        obj = await s3.get_object(Bucket=done["bucket"], Key=done["object_key"])
        data: bytes = await obj["Body"].read()
        if len(data) != done["size_bytes"]:
            raise BenchError(f"object is {len(data)} bytes, the export said {done['size_bytes']}")
        queries = subject_queries(subject.id, org_id, subject.email)
        async with platform.acquire() as conn:
            copy_s, copied, zip_bytes = await copy_export(
                conn, s3, done["bucket"], done["part_bytes"], queries
            )
        if copied != done["rows_per_table"]:
            raise BenchError(f"the baseline copied {copied}, the export {done['rows_per_table']}")
        messages = await verify(lethe, platform, job_id, data, subject.id)
        size, export_s = len(data), done["seconds"]
        print(f"  export {export_s:.1f}s, COPY {copy_s:.2f}s, verified", file=sys.stderr)
        return Result(
            target_rows=target,
            rows=rows,
            messages=messages,
            object_bytes=size,
            part_bytes=done["part_bytes"],
            export_seconds=round(export_s, 3),
            export_mb_per_s=round(size / _MB / export_s, 2),
            copy_seconds=round(copy_s, 3),
            copy_rows_per_s=round(rows / copy_s, 1),
            copy_zip_bytes=zip_bytes,
            ratio=round(copy_s / export_s, 3),  # same rows: the rate ratio is the time ratio
            start_rss_mb=round(done["start_rss_mb"], 1),
            half_rss_mb=round(done["half_rss_mb"], 1),
            peak_rss_mb=round(done["peak_rss_mb"], 1),
        )
    finally:
        if done is not None:
            await s3.delete_object(Bucket=done["bucket"], Key=done["object_key"])
        await lethe.execute("DELETE FROM lethe.download_tokens WHERE job_id = $1", job_id)
        await lethe.execute("DELETE FROM lethe.exports WHERE job_id = $1", job_id)
        if not own_infra:  # our own database is thrown away whole: skip the slow delete
            async with platform.acquire() as conn:
                await drop_org(conn, org_id)
        await lethe.close()
        await platform.close()


# ------------------------------------------------------------------ main


def print_table(results: list[Result], wall: float) -> None:
    head = (
        f"{'rows':>9} {'object MB':>9} {'export s':>9} {'export MB/s':>11} {'COPY s':>7} "
        f"{'COPY MB':>8} {'ratio':>6} {'peak RSS MB':>11} {'RSS start/half MB':>17}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r.rows:>9} {r.object_bytes / _MB:>9.1f} {r.export_seconds:>9.2f} "
            f"{r.export_mb_per_s:>11.2f} {r.copy_seconds:>7.2f} {r.copy_zip_bytes / _MB:>8.1f} "
            f"{r.ratio:>5.2f}x {r.peak_rss_mb:>11.0f} "
            f"{f'{r.start_rss_mb:.0f}/{r.half_rss_mb:.0f}':>17}"
        )
    part = results[0].part_bytes // 2**20 if results else "-"
    print(
        "format both (JSON + CSV), no media; ratio = COPY baseline seconds over export seconds "
        "for the same rows (COPY as CSV and row_to_json -> zip -> multipart upload, "
        f"{part} MiB parts, same S3, this run; target >= 0.8x); "
        "peak RSS = the export process's VmHWM (target flat, < 200 MB at 1M rows); start/half "
        "= its VmRSS before the export and once half the rows were out. Events were "
        f"collected in a list: no Kafka, publishing not measured. Wall time {wall:.1f}s."
    )


def result_line(results: list[Result]) -> str:
    by_size = {r.target_rows: r for r in results}
    largest = max(results, key=lambda r: r.target_rows)
    rss = " ".join(
        f"rss_mb_{label}={round(by_size[n].peak_rss_mb) if n in by_size else 'na'}"
        for n, label in _LABELS.items()
    )
    return f"RESULT export_vs_copy={largest.ratio:.2f} {rss}"


async def run(sizes: list[int], t: Targets, profile: bool, own_infra: bool) -> list[Result]:
    await migrate(t.database_url)
    await apply_schema(t.platform_database_url)
    settings = ExporterSettings(
        database_url=t.database_url,
        platform_database_url=t.platform_database_url,
        s3_endpoint_url=t.s3_endpoint_url,
    )
    results = []
    async with s3_client(settings) as s3:
        await ensure_bucket(s3, settings.platform_bucket)
        for n in sizes:
            print(f"size {n}:", file=sys.stderr)
            results.append(await bench_size(n, t, s3, settings.platform_bucket, profile, own_infra))
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__)
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--quick", action="store_true", help="a smoke test: 10,000 rows only")
    ap.add_argument("--profile", action="store_true", help="cProfile the export (to stderr)")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--job", type=uuid.UUID, help=argparse.SUPPRESS)
    ap.add_argument("--org", help=argparse.SUPPRESS)
    ap.add_argument("--email", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.environ.setdefault("LETHE_ENV", "dev")  # local infrastructure and dev keys (workers too)
    if args.worker:
        out = asyncio.run(worker(args.job, args.org, args.email, args.profile))
        print(json.dumps(out))
        return 0

    if args.quick:
        args.rows = [10_000]
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
        results = asyncio.run(run(args.rows, t, args.profile, own_infra=state_dir is not None))
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
    print(result_line(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
