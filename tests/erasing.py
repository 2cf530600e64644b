"""The eraser's domain driven in this process, on the real infrastructure: chunks go to a
queue the test drains (so it decides when they run), events to a list it reads. One harness
for the tests that check what an erasure does to the data (the Kafka path, replicas and kills
are the e2e tests')."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from services.eraser import bootstrap, service, store
from services.eraser.deps import EraserDeps
from services.eraser.settings import EraserSettings
from shared.datamap import DataMap, check_against_database
from shared.events import Actor, Envelope, make_event
from shared.events.jobs import ErasureRequested, Subject
from shared.settings import LetheSettings

ACTOR = Actor(kind="service", id="test")


@dataclass
class InProcessEraser:
    deps: EraserDeps
    queue: list[Envelope] = field(default_factory=list)
    events: list[Envelope] = field(default_factory=list)
    attempts: int = 0

    async def publish(self, env: Envelope) -> None:
        self.queue.append(env)

    async def emit(self, topic: str, env: Envelope) -> None:
        self.events.append(env)

    async def drain(self, retries: int | None = None) -> None:
        """Run the queued chunks. With `retries`, as the chunk consumer does: that many
        attempts, then `chunk_failed`; without, the first error fails the test."""
        while self.queue:
            env = self.queue.pop(0)
            for attempt in range(1, (retries or 1) + 1):
                self.attempts += 1
                try:
                    await service.process_chunk(env, self.deps)
                    break
                except Exception as exc:
                    if retries is None:
                        raise
                    if attempt == retries:
                        await service.chunk_failed(env, self.deps, repr(exc))

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [e.payload for e in self.events if e.type == event_type]


async def in_process_eraser(
    base_settings: dict[str, Any],
    lethe: asyncpg.Pool,
    platform: asyncpg.Pool,
    dm: DataMap,
    *,
    s3: Any = None,
    bucket: str | None = None,
    migrate_dsn: str | None = None,
    batch_size: int = 2,
) -> InProcessEraser:
    """EraserDeps for `dm` on `platform` (its restoration log migrated when `migrate_dsn`)."""
    extra: dict[str, Any] = {"platform_bucket": bucket} if bucket else {}
    settings = EraserSettings(**base_settings, erase_batch_size=batch_size, **extra)
    if migrate_dsn is not None:
        await store.migrate_platform(migrate_dsn)
    async with platform.acquire() as conn:
        live = await check_against_database(dm, conn)
    deps = bootstrap.build_deps(
        settings, lethe=lethe, platform=platform, s3=s3, datamap=dm, live=live
    )
    run = InProcessEraser(deps)
    deps.emit, deps.publish_chunk = run.emit, run.publish
    return run


def erasure_request(
    org_id: str,
    identities: dict[str, str] | None,
    *,
    window: int = 7,
    delete_media: bool = True,
    requester_email: str | None = None,
) -> Envelope:
    """ErasureRequested of a subject (by `identities`) or, with None, of the organisation."""
    req = ErasureRequested(
        scope="subject" if identities else "organisation",
        subject=Subject(**identities) if identities else None,
        requester_email=requester_email,
        regulation="gdpr",
        due_at="2030-01-01T00:00:00Z",
        recovery_window_days=window,
        channel="http",
        delete_media=delete_media,
    )
    return make_event(req, actor=ACTOR, job_id=uuid.uuid4(), org_id=org_id)


async def planned(
    lethe: asyncpg.Pool, job_id: uuid.UUID
) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """The eraser's plan: keys per table of its `erase` chunks, and of its detaches."""
    erase: dict[str, set[str]] = {}
    detach: dict[str, set[str]] = {}
    for r in await lethe.fetch(
        "SELECT table_name, op, keys FROM lethe.erase_chunks WHERE job_id = $1", job_id
    ):
        target = erase if r["op"] == "erase" else detach
        target.setdefault(r["table_name"], set()).update(r["keys"])
    return {t: k for t, k in erase.items() if k}, detach


async def eraser_for_sample(
    base_settings: dict[str, Any],
    lethe: asyncpg.Pool,
    platform: asyncpg.Pool,
    s3: Any,
    *,
    batch_size: int = 2,
) -> InProcessEraser:
    """The harness on the sample platform and its data map (deploy/local/sample)."""
    from shared.datamap import load_datamap

    settings = LetheSettings(**base_settings)
    dm = load_datamap(settings.datamap_path)
    return await in_process_eraser(
        base_settings,
        lethe,
        platform,
        dm,
        s3=s3,
        migrate_dsn=settings.platform_database_url,
        batch_size=batch_size,
    )
