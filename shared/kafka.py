"""Kafka plumbing shared by every service: the broker, publishing envelopes, topics.

Consuming goes through each service's typed `KafkaRouter`; retries, dead-lettering and the
audit copy of published events are middleware in `shared.messaging`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from opentelemetry import propagate
from opentelemetry.trace import TracerProvider

from shared.events import Envelope
from shared.events.topics import TOPICS, TopicSpec, min_insync_replicas
from shared.messaging.audit_copy import AuditCopy
from shared.settings import LetheSettings

log = logging.getLogger(__name__)


def create_broker(
    bootstrap_servers: str,
    *,
    service: str,
    tracer_provider: TracerProvider | None = None,
    log_each_message: bool = False,
) -> KafkaBroker:
    """Producers use acks=all and idempotence; the audit copy and tracing are broker
    middleware (the copy first, so that each of the two publishes is traced). FastStream's
    line per message received and processed is at DEBUG unless `log_each_message`."""
    return KafkaBroker(
        # A list: FastStream takes one string as a single host, so "a:9092,b:9092" (a
        # cluster) would never connect.
        [s.strip() for s in bootstrap_servers.split(",") if s.strip()],
        client_id=f"lethe-{service}",
        log_level=logging.INFO if log_each_message else logging.DEBUG,
        acks="all",
        enable_idempotence=True,
        middlewares=[AuditCopy, KafkaTelemetryMiddleware(tracer_provider=tracer_provider)],
    )


def service_broker(
    settings: LetheSettings, service: str, tracer_provider: TracerProvider | None
) -> KafkaBroker:
    """A service's broker (`create_broker`) as its settings ask."""
    return create_broker(
        settings.kafka_bootstrap_servers,
        service=service,
        tracer_provider=tracer_provider,
        log_each_message=settings.log_each_message,
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


def event_headers(env: Envelope) -> dict[str, str]:
    return {"content-type": "application/json", "lethe-event-type": env.type}


async def publish_event(broker: KafkaBroker, topic: str, env: Envelope) -> None:
    """Publish to `topic`; a broker from `create_broker` also copies it to the audit trail
    (`shared.messaging.AuditCopy`)."""
    env = with_trace(env)
    await broker.publish(
        env.model_dump_json().encode(), topic, key=env.key(), headers=event_headers(env)
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
