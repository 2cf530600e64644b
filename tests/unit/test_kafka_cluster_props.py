"""The local Kafka's server.properties: one node as `make up` runs it, and a node of a
3-node cluster (deploy/local/parts/kafka_cluster.py) as the fault tests run it."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.local.parts.kafka import kafka_properties
from deploy.local.parts.kafka_cluster import bootstrap_servers, cluster_nodes, node_properties

pytestmark = pytest.mark.unit


def _props(text: str) -> dict[str, str]:
    pairs = (ln.split("=", 1) for ln in text.splitlines() if ln and not ln.startswith("#"))
    return {k: v for k, v in pairs}


def test_a_single_node_replicates_nothing() -> None:
    p = _props(kafka_properties(Path("/d"), 9092, 9093))
    assert p["node.id"] == "1" and p["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert p["default.replication.factor"] == "1" and p["min.insync.replicas"] == "1"
    assert p["offsets.topic.replication.factor"] == "1"


def test_a_node_of_three_votes_with_the_others_and_replicates_to_three(tmp_path: Path) -> None:
    nodes = cluster_nodes(3)
    ports = {n.port for n in nodes} | {n.controller_port for n in nodes}
    assert len(ports) == 6  # every listener on a port of its own
    p = _props(node_properties(tmp_path, nodes[1], nodes))
    voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in nodes)
    assert p["node.id"] == "2" and p["controller.quorum.voters"] == voters
    assert p["listeners"].startswith(f"PLAINTEXT://127.0.0.1:{nodes[1].port},")
    assert p["log.dirs"] == str(tmp_path / "kafka-2" / "data")
    for key in ("default", "offsets.topic", "transaction.state.log"):
        assert p[f"{key}.replication.factor"] == "3"
    assert p["min.insync.replicas"] == p["transaction.state.log.min.isr"] == "2"
    assert bootstrap_servers(nodes).count(",") == 2
