"""A 3-node KRaft cluster (replication 3, min ISR 2) loses the broker leading the audit topic
to SIGKILL mid-erasure: the job completes and nothing is lost."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from shared.events.topics import AUDIT, TOPICS
from tests.faults.checks import erase_through
from tests.faults.conftest import FaultStack

pytestmark = pytest.mark.e2e


async def _layout(bootstrap: str) -> dict[str, Any]:
    """Per topic: replicas of every partition, and min.insync.replicas; the audit leader."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([t.name for t in TOPICS])
        resources = [ConfigResource(ConfigResourceType.TOPIC, t.name) for t in TOPICS]
        isr: dict[str, str] = {}
        for response in await admin.describe_configs(resources):
            for res in response.resources:
                isr[res[3]] = next(e[1] for e in res[4] if e[0] == "min.insync.replicas")
    finally:
        await admin.close()
    replicas = {t["topic"]: {len(p["replicas"]) for p in t["partitions"]} for t in described}
    audit = next(t for t in described if t["topic"] == AUDIT)
    return {"replicas": replicas, "min_isr": isr, "audit_leader": audit["partitions"][0]["leader"]}


async def test_broker_killed_in_a_three_node_cluster_loses_nothing(
    cluster_stack: FaultStack, client_of: Any
) -> None:
    stack = cluster_stack
    layout = await _layout(stack.ep.kafka_bootstrap_servers)
    print(f"topics: replicas per partition {layout['replicas']}, min ISR {layout['min_isr']}")
    assert all(r == {3} for r in layout["replicas"].values()), layout
    assert set(layout["min_isr"].values()) == {"2"}, layout

    async def kill_leader() -> dict[str, Any]:
        # The broker leading the audit topic's one partition: the trail must move over.
        leader = (await _layout(stack.ep.kafka_bootstrap_servers))["audit_leader"]
        await asyncio.to_thread(stack.kill_node, leader)
        return {"fault": f"node {leader} (leader of {AUDIT}) killed with SIGKILL"}

    counts = await erase_through(stack, client_of(stack), kill_leader)
    counts.print("one of three brokers killed mid-job")
    counts.assert_nothing_lost()
