"""Small helpers the integration and e2e tests share."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.events.topics import TOPICS

if TYPE_CHECKING:
    from tests.conftest import Org

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = 60,
    every: float = 0.25,
    what: str = "condition",
) -> T:
    """Poll until probe returns something truthy; fail naming what never happened."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: T | None = None
    while asyncio.get_running_loop().time() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


async def submit(client: httpx.AsyncClient, org: Org, body: dict[str, Any]) -> str:
    """`POST /v1/requests` as the org's owner; the new job's id (the 202 is asserted)."""
    r = await client.post("/v1/requests", json=body, headers=org.headers)
    assert r.status_code == 202, r.text
    job_id: str = r.json()["id"]
    return job_id


async def submit_erasure(
    client: httpx.AsyncClient, org: Org, email: str, *, window: int, **fields: Any
) -> uuid.UUID:
    """An erasure of the subject with this email, `window` days of recovery; `fields` are
    any other fields of the request."""
    body = {
        "type": "erasure",
        "subject": {"email": email},
        "recovery_window_days": window,
        **fields,
    }
    return uuid.UUID(await submit(client, org, body))


async def job_in(
    client: httpx.AsyncClient,
    org: Org,
    job_id: str,
    statuses: Iterable[str],
    *,
    timeout: float = 90,
) -> dict[str, Any]:
    """The job (`GET /v1/jobs/{id}`) once its status is one of `statuses`."""
    wanted = set(statuses)

    async def reached() -> dict[str, Any] | None:
        job: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}", headers=org.headers)).json()
        return job if job["status"] in wanted else None

    return await eventually(reached, timeout=timeout, what=f"job {job_id} to be {sorted(wanted)}")


async def s3_exists(s3: Any, bucket: str, key: str) -> bool:
    """Whether the object is there. Only "not found" (404/NoSuchKey) counts as gone; any other
    error (access denied, no such bucket, a down endpoint) raises instead of passing for a
    deleted object."""
    try:
        await s3.head_object(Bucket=bucket, Key=key)
        return True
    except s3.exceptions.ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            return False
        raise


def stop_together(state_dir: Path, names: Iterable[str]) -> None:
    """SIGTERM these processes of a stack at once and wait for them all: each shuts down as
    it would alone, in the time of the slowest instead of the sum (a teardown)."""
    from deploy.local import infra

    names = list(names)
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        list(pool.map(lambda name: infra.stop_process(name, state_dir), names))


def mails_to(mail_dir: Path, address: str) -> list[EmailMessage]:
    # The session's sink holds every test's mail: parsing all of them on each poll cost
    # seconds per call late in a run. An ASCII address is in the raw bytes of any message
    # whose To names it (folding breaks only at spaces; only display names are encoded),
    # so the others are skipped unparsed; To is still checked on the parsed message.
    needle = address.encode() if address.isascii() else b""
    found = []
    for path in sorted(mail_dir.glob("*.eml")):
        raw = path.read_bytes()
        if needle not in raw:
            continue
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        if address in str(msg.get("To", "")):
            found.append(msg)
    return found


async def find_record(bootstrap: str, topic: str, match: Callable[[Any], bool]) -> bytes:
    """Read the topic from the beginning to its current end; the first matching value."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        metadata = await consumer._client.fetch_all_metadata()
        parts = [TopicPartition(topic, p) for p in metadata.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for rec in records:
                    if rec.value is not None and _matches(match, rec):
                        return bytes(rec.value)
            positions = [await consumer.position(p) for p in parts]
            if all(pos >= end[p] for pos, p in zip(positions, parts, strict=True)):
                raise AssertionError(f"no matching record in {topic}")
    finally:
        await consumer.stop()


def _matches(match: Callable[[Any], bool], rec: Any) -> bool:
    """A record that is not JSON (a poison record another test put on a shared topic, such
    as the audit topic's) matches nothing."""
    try:
        return match(rec)
    except ValueError:
        return False


def json_record(value: bytes | None) -> Any:
    """A record's JSON, or None for a value that is not JSON (see `_matches`)."""
    try:
        return json.loads(value) if value else None
    except ValueError:
        return None


async def eraser_deps(
    base_settings: dict[str, Any], lethe_db: Any, platform_db: Any, s3: Any, *, batch_size: int
) -> Any:
    """EraserDeps on the real test infrastructure, for tests that drive the eraser's code
    directly; `emit` and `publish_chunk` refuse until the test puts its own in."""
    from services.eraser import bootstrap, store
    from services.eraser.settings import EraserSettings
    from shared.datamap import check_against_database, load_datamap

    settings = EraserSettings(**base_settings, erase_batch_size=batch_size)
    await store.migrate_platform(settings.platform_database_url)
    dm = load_datamap(settings.datamap_path)
    async with platform_db.acquire() as conn:
        live = await check_against_database(dm, conn)
    return bootstrap.build_deps(
        settings, lethe=lethe_db, platform=platform_db, s3=s3, datamap=dm, live=live
    )


# --------------------------------------------------------------------------- consumer groups

_GROUP_NAME = re.compile(r'(?:GROUP|group_id)(?::\s*str)?\s*=\s*"([^"]+)"|\.group\("([^"]+)"\)')


def service_groups() -> set[str]:
    """Every consumer group id the services register (before `LETHE_KAFKA_GROUP_PREFIX`)."""
    found: set[str] = set()
    for path in (Path(__file__).resolve().parents[1] / "services").rglob("*.py"):
        found |= {a or b for a, b in _GROUP_NAME.findall(path.read_text())}
    return found


def group_prefix(module: str) -> str:
    """A `LETHE_KAFKA_GROUP_PREFIX` of one test stack: its module and a random suffix."""
    return f"test-{module.rsplit('.', 1)[-1]}-{uuid.uuid4().hex[:6]}-"


async def start_groups_at_end(bootstrap: str, prefix: str) -> None:
    """Commit the prefixed groups' offsets at the end of every topic (as `lethe topics apply`
    creates them), so a test stack takes only the messages produced after it, not the
    session's history (its groups are new, and the services start new groups at the earliest)."""
    for group in sorted(service_groups()):
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=prefix + group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            tps = [TopicPartition(t.name, p) for t in TOPICS for p in range(t.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            await consumer.commit({tp: await consumer.position(tp) for tp in tps})
        finally:
            await consumer.stop()
