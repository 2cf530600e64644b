"""Kafka plumbing shared by every service: the broker, publishing, reliable consuming, topics.

Handlers never see Kafka: `subscribe` decodes the envelope, retries the domain function, and
dead-letters what still fails (with the error and the original bytes) so the consumer goes on.
Offsets are committed only after the handler (or the dead-lettering) has finished.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable, Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from opentelemetry import propagate
from opentelemetry.trace import TracerProvider
from pydantic import ValidationError

from shared.events import Envelope
from shared.events.topics import AUDIT, DLQ, TOPICS, TopicSpec, min_insync_replicas

log = logging.getLogger(__name__)

Handler = Callable[[Envelope], Awaitable[None]]
GiveUp = Callable[[Envelope, str], Awaitable[None]]
RawHandler = Callable[[bytes, bytes | None], Awaitable[None]]


def create_broker(
    bootstrap_servers: str, *, service: str, tracer_provider: TracerProvider | None = None
) -> KafkaBroker:
    """Producers use acks=all and idempotence; tracing is broker middleware."""
    return KafkaBroker(
        # A list: FastStream takes one string as a single host, so "a:9092,b:9092" (a
        # cluster) would never connect.
        [s.strip() for s in bootstrap_servers.split(",") if s.strip()],
        client_id=f"lethe-{service}",
        acks="all",
        enable_idempotence=True,
        middlewares=[KafkaTelemetryMiddleware(tracer_provider=tracer_provider)],
    )


def current_trace() -> dict[str, str]:
    """The current OpenTelemetry context as W3C headers."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def with_trace(env: Envelope) -> Envelope:
    """Record the current trace context in the envelope (it also travels in headers)."""
    if env.trace:
        return env
    carrier = current_trace()
    return env.model_copy(update={"trace": carrier}) if carrier else env


async def publish_event(
    broker: KafkaBroker, topic: str, env: Envelope, *, audit: bool = True
) -> None:
    """Publish to `topic` and, unless it is the audit topic itself, a copy to the audit trail."""
    env = with_trace(env)
    body = env.model_dump_json().encode()
    headers = {"content-type": "application/json", "lethe-event-type": env.type}
    await broker.publish(body, topic, key=env.key(), headers=headers)
    if audit and topic != AUDIT:
        await broker.publish(body, AUDIT, key=env.key(), headers=headers)


def subscribe(
    broker: KafkaBroker,
    topic: str,
    *,
    group_id: str,
    handler: Handler,
    retries: int = 3,
    backoff_seconds: float = 0.5,
    max_poll_interval_ms: int = 5 * 60 * 1000,
    on_give_up: GiveUp | None = None,
) -> None:
    """Register `handler` for `topic` in consumer group `group_id`, with retries and a DLQ.

    `on_give_up` runs after dead-lettering, e.g. to mark the job failed.
    """

    async def process(raw: bytes, key: bytes | None) -> None:
        try:
            env = Envelope.model_validate_json(raw)
        except ValidationError as exc:
            # Poison message: retrying cannot help.
            await dead_letter(broker, topic, group_id, raw, f"invalid envelope: {exc}")
            return
        error = await _with_retries(lambda: handler(env), topic, retries, backoff_seconds)
        if error is not None:
            await dead_letter(broker, topic, group_id, raw, error)
            if on_give_up is not None:
                await on_give_up(env, error)

    _register(broker, topic, group_id, max_poll_interval_ms, process)


def subscribe_raw(
    broker: KafkaBroker,
    topic: str,
    *,
    group_id: str,
    handler: RawHandler,
    retries: int = 3,
    backoff_seconds: float = 0.5,
) -> None:
    """Like `subscribe`, for topics whose producers are not Lethe (the handler gets the bytes
    and the key, and answers bad input itself); failures are retried, then dead-lettered."""

    async def process(raw: bytes, key: bytes | None) -> None:
        error = await _with_retries(lambda: handler(raw, key), topic, retries, backoff_seconds)
        if error is not None:
            await dead_letter(broker, topic, group_id, raw, error)

    _register(broker, topic, group_id, 5 * 60 * 1000, process)


def _register(
    broker: KafkaBroker,
    topic: str,
    group_id: str,
    max_poll_interval_ms: int,
    process: RawHandler,
) -> None:
    @broker.subscriber(
        topic,
        group_id=group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
        max_poll_interval_ms=max_poll_interval_ms,
    )
    async def _consume(message: KafkaMessage) -> None:
        await process(message.body, message.raw_message.key)  # type: ignore[union-attr]

    _ = _consume


async def _with_retries(
    call: Callable[[], Awaitable[None]], topic: str, retries: int, backoff_seconds: float
) -> str | None:
    """None on success; the last error after `retries` attempts."""
    for attempt in range(1, retries + 1):
        try:
            await call()
            return None
        except Exception as exc:  # every failure is retried, then dead-lettered
            log.warning("handler for %s failed (attempt %d/%d): %r", topic, attempt, retries, exc)
            if attempt == retries:
                return "".join(traceback.format_exception_only(exc)).strip()
            await asyncio.sleep(backoff_seconds * 2 ** (attempt - 1))
    return None


async def dead_letter(
    broker: KafkaBroker, topic: str, group_id: str, raw: bytes, error: str
) -> None:
    log.error("dead-lettering a message from %s (group %s): %s", topic, group_id, error)
    await broker.publish(
        raw,
        DLQ,
        headers={
            "lethe-source-topic": topic,
            "lethe-consumer-group": group_id,
            "lethe-error": error[:2000],
        },
    )


async def ensure_topics(
    bootstrap_servers: str, specs: Iterable[TopicSpec] = TOPICS, *, replication_factor: int = 1
) -> list[str]:
    """Make the topics match their definitions (idempotent). Returns what changed."""
    return await apply_topics(bootstrap_servers, specs, replication_factor=replication_factor)


def desired_config(spec: TopicSpec, replication_factor: int) -> dict[str, str]:
    return {**spec.config, "min.insync.replicas": str(min_insync_replicas(replication_factor))}


async def apply_topics(
    bootstrap_servers: str, specs: Iterable[TopicSpec] = TOPICS, *, replication_factor: int = 1
) -> list[str]:
    """Create missing topics, add partitions where fewer than defined, and put back the
    managed settings where they differ. Nothing is ever removed: partitions are never
    reduced, topics never deleted. Returns one line per change (empty: nothing to do)."""
    specs = list(specs)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        changes: list[str] = []
        missing = [s for s in specs if s.name not in existing]
        for s in missing:
            new = NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=replication_factor,
                topic_configs=desired_config(s, replication_factor),
            )
            try:
                await admin.create_topics([new])
            except TopicAlreadyExistsError:
                # Created meanwhile (a concurrent apply, or metadata not yet showing it):
                # compare it like any existing topic instead.
                existing.add(s.name)
                continue
            changes.append(f"{s.name}: created ({s.partitions} partitions)")
        await _wait_visible(admin, [s.name for s in missing])
        present = [s for s in specs if s.name in existing]
        if present:
            changes += await _reconcile(admin, present, replication_factor)
        return changes
    finally:
        await admin.close()


async def _wait_visible(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Until the new topics show in the metadata, so the next apply sees them."""
    deadline = asyncio.get_running_loop().time() + 15
    while names and not set(names) <= set(await admin.list_topics()):
        if asyncio.get_running_loop().time() > deadline:
            return
        await asyncio.sleep(0.1)


async def _reconcile(
    admin: AIOKafkaAdminClient, specs: list[TopicSpec], replication_factor: int
) -> list[str]:
    changes: list[str] = []
    counts = {
        t["topic"]: len(t["partitions"])
        for t in await admin.describe_topics([s.name for s in specs])
    }
    grow = {s.name: s.partitions for s in specs if counts.get(s.name, s.partitions) < s.partitions}
    if grow:
        await admin.create_partitions({n: NewPartitions(total_count=c) for n, c in grow.items()})
        deadline = asyncio.get_running_loop().time() + 15
        while asyncio.get_running_loop().time() < deadline:
            shown = {
                t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(list(grow))
            }
            if all(shown.get(n, 0) >= c for n, c in grow.items()):
                break
            await asyncio.sleep(0.1)
        changes += [f"{n}: partitions {counts[n]} -> {c}" for n, c in grow.items()]
    current = await _topic_configs(admin, [s.name for s in specs])
    alter = []
    for s in specs:
        want = desired_config(s, replication_factor)
        have = current.get(s.name, {})
        diff = {k: v for k, v in want.items() if have.get(k) != v}
        if diff:
            # AlterConfigs sets the topic's whole dynamic config: send every managed key.
            alter.append(ConfigResource(ConfigResourceType.TOPIC, s.name, configs=want))
            changes += [f"{s.name}: {k} {have.get(k)} -> {v}" for k, v in sorted(diff.items())]
    if alter:
        for response in await admin.alter_configs(alter):
            for error_code, message, _type, name in response.resources:
                if error_code:
                    raise RuntimeError(f"altering the settings of {name} failed: {message}")
        # Brokers learn of the change a moment later: return once it shows, so that the
        # next apply (or anyone reading the settings) sees what this one did.
        wanted = {r.name: r.configs for r in alter}
        deadline = asyncio.get_running_loop().time() + 15
        while asyncio.get_running_loop().time() < deadline:
            current = await _topic_configs(admin, list(wanted))
            if all(
                all(current.get(n, {}).get(k) == v for k, v in want.items())
                for n, want in wanted.items()
            ):
                break
            await asyncio.sleep(0.1)
    return changes


async def _topic_configs(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
    found: dict[str, dict[str, str]] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.resources:
            error_code, message, _type, name, entries = resource[:5]
            if error_code:
                raise RuntimeError(f"reading the settings of {name} failed: {message}")
            found[name] = {e[0]: e[1] for e in entries}
    return found
