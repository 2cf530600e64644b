"""A local KRaft cluster of N nodes (each a broker and a controller) from the jars and the
properties of `kafka.py`: process `kafka-<id>`, data in `<state>/kafka-<id>/`, one cluster id
for all in `<state>/kafka-cluster.id`. `infra.down(state)` stops them with every other recorded
process. The fault tests start one to kill a broker under load."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.local.parts.common import HOST, free_port, write_atomic
from deploy.local.parts.kafka import (
    kafka_properties,
    launch_node,
    new_cluster_id,
    wait_node_started,
)


@dataclass(frozen=True)
class KafkaNode:
    """One node of a local cluster: process `kafka-<id>`, data in `<state>/kafka-<id>/`."""

    node_id: int
    port: int
    controller_port: int

    @property
    def name(self) -> str:
        return f"kafka-{self.node_id}"


def cluster_nodes(count: int, exclude: set[int] | None = None) -> list[KafkaNode]:
    """`count` nodes (ids 1..count) on free ports other than `exclude`."""
    taken = set(exclude or ())
    nodes = []
    for node_id in range(1, count + 1):
        port = free_port(taken)
        controller = free_port(taken | {port})
        taken |= {port, controller}
        nodes.append(KafkaNode(node_id, port, controller))
    return nodes


def bootstrap_servers(nodes: Sequence[KafkaNode]) -> str:
    return ",".join(f"{HOST}:{n.port}" for n in nodes)


def _cluster_id_file(state_dir: Path) -> Path:
    return state_dir / "kafka-cluster.id"


def node_properties(state_dir: Path, node: KafkaNode, nodes: Sequence[KafkaNode]) -> str:
    voters = ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in nodes)
    data = state_dir / node.name / "data"
    return kafka_properties(
        data,
        node.port,
        node.controller_port,
        node_id=node.node_id,
        voters=voters,
        replication=min(3, len(nodes)),
    )


def start_kafka_cluster(state_dir: Path, repo_root: Path, nodes: Sequence[KafkaNode]) -> str:
    """Start every node of a KRaft cluster (each a broker and a voter) from the same jars;
    new topics get replication min(3, nodes) and min.insync.replicas 2 (of 3). All nodes are
    launched before any is waited for: a controller needs a quorum to finish starting.
    Returns the bootstrap servers."""
    state_dir = Path(state_dir).resolve()
    id_file = _cluster_id_file(state_dir)
    if not id_file.is_file():
        write_atomic(id_file, new_cluster_id() + "\n")
    cluster_id = id_file.read_text().strip()
    offsets = {}
    for node in nodes:
        props = node_properties(state_dir, node, nodes)
        kdir = state_dir / node.name
        offsets[node.name] = launch_node(state_dir, repo_root, node.name, kdir, props, cluster_id)
    for node in nodes:
        wait_node_started(state_dir, node.name, node.port, offsets[node.name])
    return bootstrap_servers(nodes)
