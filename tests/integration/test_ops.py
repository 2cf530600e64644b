"""Operations on real infrastructure: `lethe topics apply` is idempotent, and /readyz follows
Postgres going away and coming back."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from typer.testing import CliRunner

from deploy.local import infra
from deploy.local.parts.common import free_port
from services.auditor.app import create_app as create_auditor
from services.auditor.settings import AuditorSettings
from services.cli import app as cli
from shared.db import migrate
from shared.events.topics import AUDIT, TopicSpec
from shared.kafka import _topic_configs, apply_topics
from tests.helpers import eventually

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    return free_port()  # this xdist worker's own block (deploy/local/parts/common.py)


# --------------------------------------------------------------------------- topics


def test_lethe_topics_apply_twice_changes_nothing_the_second_time(
    prepared: infra.Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", prepared.kafka_bootstrap_servers)
    monkeypatch.setenv("LETHE_ENV_FILE", "/nonexistent")
    runner = CliRunner()
    first = runner.invoke(cli, ["topics", "apply"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(cli, ["topics", "apply"])
    assert second.exit_code == 0, second.output
    assert "nothing to change" in second.output, second.output


async def test_apply_creates_grows_and_repairs_then_changes_nothing(
    prepared: infra.Endpoints,
) -> None:
    bootstrap = prepared.kafka_bootstrap_servers
    tag = uuid.uuid4().hex[:8]
    week = str(7 * 24 * 3600 * 1000)
    events = TopicSpec(
        f"test.ops.{tag}.events", 2, {"cleanup.policy": "delete", "retention.ms": week}
    )
    state = TopicSpec(f"test.ops.{tag}.state", 1, {"cleanup.policy": "compact"})
    created = await apply_topics(bootstrap, [events, state])
    assert created == [
        f"{events.name}: created (2 partitions)",
        f"{state.name}: created (1 partitions)",
    ]
    assert await apply_topics(bootstrap, [events, state]) == []

    # More partitions and a longer retention in the definition; the compacted topic's
    # policy changed by hand: one apply brings both back to the definitions.
    grown = TopicSpec(events.name, 4, {**events.config, "retention.ms": str(2 * int(week))})
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, state.name, {"cleanup.policy": "delete"})]
        )

        async def changed_by_hand() -> bool:
            configs = await _topic_configs(admin, [state.name])
            return configs[state.name]["cleanup.policy"] == "delete"

        await eventually(changed_by_hand, timeout=15, what="the hand-made change to show")
        changes = await apply_topics(bootstrap, [grown, state])
        assert f"{events.name}: partitions 2 -> 4" in changes
        assert f"{events.name}: retention.ms {week} -> {2 * int(week)}" in changes
        assert f"{state.name}: cleanup.policy delete -> compact" in changes
        assert await apply_topics(bootstrap, [grown, state]) == []
        (desc,) = await admin.describe_topics([events.name])
        assert len(desc["partitions"]) == 4
    finally:
        await admin.delete_topics([events.name, state.name])
        await admin.close()


# --------------------------------------------------------------------------- readiness


@pytest.fixture
def own_postgres() -> Iterator[tuple[Path, int]]:
    """A Postgres cluster of this test's own, so stopping it disturbs no other test."""
    if infra.find_pg_bindir() is None:
        pytest.skip("PostgreSQL server binaries are not installed")
    state = REPO / ".local" / f"test-ops-pg-{uuid.uuid4().hex[:8]}"
    state.mkdir(parents=True)
    port = _free_port()
    try:
        infra._start_postgres(state, port)
        infra._ensure_databases(port)
        yield state, port
    finally:
        infra._stop_postgres(state)
        shutil.rmtree(state, ignore_errors=True)


async def _skip_backlog(bootstrap: str, group: str) -> None:
    """Commit the group's offset at the end of the audit topic: only readiness is tested."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(AUDIT, 0)
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        await consumer.commit({tp: await consumer.position(tp)})
    finally:
        await consumer.stop()


async def test_readyz_goes_unready_without_postgres_and_ready_when_it_returns(
    own_postgres: tuple[Path, int], base_settings: dict[str, Any], prepared: infra.Endpoints
) -> None:
    state, pg_port = own_postgres
    dsn = f"postgresql://postgres@127.0.0.1:{pg_port}/lethe"
    await migrate(dsn)
    ops_port = _free_port()
    settings = AuditorSettings(
        **{**base_settings, "database_url": dsn}, ops_port=ops_port, shutdown_grace_seconds=5
    )
    group = f"test-ops-auditor-{uuid.uuid4().hex[:8]}"
    await _skip_backlog(prepared.kafka_bootstrap_servers, settings.group(group))
    app = create_auditor(settings, group_id=group)
    url = f"http://127.0.0.1:{ops_port}"

    async def readyz(client: httpx.AsyncClient, want: int) -> dict[str, Any] | None:
        r = await client.get("/readyz")
        return dict(r.json()) if r.status_code == want else None

    async with app, httpx.AsyncClient(base_url=url, timeout=10) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await eventually(lambda: readyz(client, 200), timeout=60, what="ready")
        assert ready["checks"] == {"kafka": "ok", "postgres": "ok"}
        metrics = (await client.get("/metrics")).text
        assert "lethe_ready 1.0" in metrics

        infra._stop_postgres(state)
        down = await eventually(lambda: readyz(client, 503), timeout=30, what="unready")
        assert down["status"] == "unready"
        assert down["checks"]["postgres"] != "ok" and down["checks"]["kafka"] == "ok"
        assert (await client.get("/healthz")).status_code == 200  # alive all the same

        infra._start_postgres(state, pg_port)
        back = await eventually(lambda: readyz(client, 200), timeout=60, what="ready again")
        assert back["checks"]["postgres"] == "ok"
