"""Stacks of their own for the fault tests: they restart, kill and pause parts, so they never
share the session's infrastructure.

`single_stack` (package scope: the broker-restart, Postgres-pause and S3 modules share it) is
`deploy/local/infra.py`'s one-broker setup; `cluster_stack` (its module only) has a 3-node
KRaft cluster from `deploy/local/parts/kafka_cluster.py` with topics at replication 3. Both
run the five services as processes (`deploy/local/stack.py`) with small, rate-limited chunks
so that a fault lands mid-job. Local processes only: no Java or no Postgres binaries skips.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from deploy.local import infra
from deploy.local.parts.common import free_port
from deploy.local.parts.endpoints import endpoints_for, load_ports
from deploy.local.parts.kafka import start_kafka
from deploy.local.parts.kafka_cluster import (
    KafkaNode,
    cluster_nodes,
    start_kafka_cluster,
)
from deploy.local.parts.postgres import ensure_databases, start_postgres
from deploy.local.parts.processes import read_pid, stop
from deploy.local.parts.s3_smtp import start_s3, start_smtp
from deploy.local.sample.seed import apply_schema
from deploy.local.stack import SERVICES, start_services
from services.intake import store as intake_store
from shared.db import create_pool, migrate
from shared.kafka import ensure_topics
from shared.settings import LetheSettings
from shared.storage import s3_client
from tests.conftest import Org
from tests.helpers import stop_together

REPO = Path(__file__).resolve().parents[2]
# Chunks of 50 rows at 150 rows/s: a subject of ~1,000 rows takes several seconds, long
# enough for a fault to land mid-job on a loaded machine.
FAULT_ENV = {
    "LETHE_ENV": "dev",
    "LETHE_ERASE_BATCH_SIZE": "50",
    "LETHE_ERASE_RATE_LIMIT_ROWS": "150",
    "LETHE_ERASE_PURGE_INTERVAL_SECONDS": "1",
    "LETHE_VERIFY_SCAN_SECONDS": "10",
    "LETHE_SHUTDOWN_GRACE_SECONDS": "3",
    # A call to a stopped S3 fails after one retry, not after four backed-off ones (up to
    # 15 s): the S3 test's purge attempts fail, and are retried by the sweep, sooner.
    "LETHE_S3_MAX_ATTEMPTS": "2",
}


@dataclass
class FaultStack:
    """A running stack of its own, and the faults it can suffer."""

    state_dir: Path
    ep: infra.Endpoints
    url: str
    ports: dict[str, int]
    nodes: list[KafkaNode] = field(default_factory=list)  # empty: the one broker `kafka`
    lethe: asyncpg.Pool | None = None
    platform: asyncpg.Pool | None = None
    s3: Any = None

    def _pid(self, name: str) -> int:
        rec = read_pid(name, self.state_dir)
        assert rec is not None, f"{name} is not running"
        return rec[0]

    # Kafka
    def restart_broker(self) -> None:
        """The one broker: stopped (SIGTERM, a clean shutdown) and started on its ports."""
        infra.stop_process("kafka", self.state_dir, timeout=30)
        start_kafka(self.state_dir, REPO, self.ports["kafka"], self.ports["kafka_controller"])

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node of the cluster (no shutdown of any kind)."""
        os.killpg(self._pid(f"kafka-{node_id}"), signal.SIGKILL)
        stop(f"kafka-{node_id}", self.state_dir, 5, signal.SIGKILL, group=True)  # reap

    # Postgres: the postmaster leads a process group with every backend in it.
    def pause_postgres(self) -> None:
        os.killpg(self._pid("postgres"), signal.SIGSTOP)

    def resume_postgres(self) -> None:
        os.killpg(self._pid("postgres"), signal.SIGCONT)

    # A service process, frozen and thawed (nothing of it runs in between).
    def pause_process(self, name: str) -> None:
        os.kill(self._pid(name), signal.SIGSTOP)

    def resume_process(self, name: str) -> None:
        os.kill(self._pid(name), signal.SIGCONT)

    # S3
    def stop_s3(self) -> None:
        infra.stop_process("s3", self.state_dir)

    def start_s3(self) -> None:
        start_s3(self.state_dir, REPO, self.ports["s3"])

    def log(self, name: str) -> str:
        return (self.state_dir / "logs" / f"{name}.log").read_text(errors="replace")

    async def new_org(self) -> Org:
        assert self.lethe is not None
        org_id = f"org-{uuid.uuid4().hex[:12]}"
        await intake_store.create_org(self.lethe, org_id, f"Fault org {org_id}")
        key = await intake_store.create_api_key(self.lethe, org_id, "owner", "fault tests")
        return Org(org_id, f"Fault org {org_id}", key)


def _require_local_processes() -> None:
    if shutil.which("java") is None:
        pytest.skip("the fault tests start Kafka from jars: no `java` on PATH")
    if infra.find_pg_bindir() is None and os.geteuid() != 0:
        pytest.skip("the fault tests start Postgres: no PostgreSQL server binaries")


@contextmanager
def _environ(overlay: Mapping[str, str]) -> Iterator[None]:
    """`overlay` laid over os.environ (what start_services passes to the services)."""
    saved = {k: os.environ.get(k) for k in overlay}
    os.environ.update(overlay)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


async def _prepare(ep: infra.Endpoints, replication_factor: int) -> None:
    await migrate(ep.database_url)
    await apply_schema(ep.platform_database_url)
    await ensure_topics(ep.kafka_bootstrap_servers, replication_factor=replication_factor)


async def _opened(stack: FaultStack) -> FaultStack:
    stack.lethe = await create_pool(stack.ep.database_url)
    stack.platform = await create_pool(stack.ep.platform_database_url)
    return stack


async def _closed(stack: FaultStack) -> None:
    for pool in (stack.lethe, stack.platform):
        if pool is not None:
            pool.terminate()  # close() would wait on a connection a fault left hanging


def _teardown(state_dir: Path, nodes: list[KafkaNode]) -> None:
    rec = read_pid("postgres", state_dir)
    if rec is not None:  # a test that failed mid-pause: let it shut down
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(rec[0], signal.SIGCONT)
    stop_together(state_dir, reversed(SERVICES))
    keep = bool(os.environ.get("LETHE_KEEP_TEST_STATE"))
    # No clean shutdown needed when the data goes with the directory (a broker's takes seconds).
    for name in [node.name for node in nodes] + ([] if keep else ["kafka"]):
        stop(name, state_dir, 5, signal.SIGKILL, group=True)
    infra.down(state_dir)
    if not keep:
        shutil.rmtree(state_dir, ignore_errors=True)


async def _with_s3(stack: FaultStack) -> AsyncIterator[FaultStack]:
    settings = LetheSettings(s3_endpoint_url=stack.ep.s3_endpoint_url)
    async with s3_client(settings) as s3:
        stack.s3 = s3
        yield stack


@pytest.fixture(scope="package")
async def single_stack() -> AsyncIterator[FaultStack]:
    """One broker, Postgres, S3, SMTP and the five services, for this package's modules."""
    _require_local_processes()
    state_dir = REPO / ".local" / f"test-{os.getpid()}-faults"
    try:
        ep = infra.up(state_dir, REPO)
        await _prepare(ep, replication_factor=1)
        with _environ(FAULT_ENV):
            url = start_services(ep, state_dir)
        ports = load_ports(state_dir)
        stack = await _opened(FaultStack(state_dir, ep, url, ports))
        try:
            async for s in _with_s3(stack):
                yield s
        finally:
            await _closed(stack)
    finally:
        _teardown(state_dir, [])


@pytest.fixture(scope="module")
async def cluster_stack() -> AsyncIterator[FaultStack]:
    """Three Kafka nodes (replication 3, min ISR 2), Postgres, S3, SMTP, the five services."""
    _require_local_processes()
    state_dir = (REPO / ".local" / f"test-{os.getpid()}-cluster").resolve()
    nodes: list[KafkaNode] = []
    try:
        ports: dict[str, int] = {}
        for part in ("postgres", "s3", "smtp"):
            ports[part] = free_port(set(ports.values()))
        start_postgres(state_dir, ports["postgres"])
        ensure_databases(ports["postgres"])
        start_s3(state_dir, REPO, ports["s3"])
        start_smtp(state_dir, REPO, ports["smtp"])
        nodes = cluster_nodes(3, exclude=set(ports.values()))
        bootstrap = start_kafka_cluster(state_dir, REPO, nodes)
        ep = dataclasses.replace(
            endpoints_for(state_dir, {**ports, "kafka": nodes[0].port}),
            kafka_bootstrap_servers=bootstrap,
        )
        await _prepare(ep, replication_factor=3)
        env = {**FAULT_ENV, "LETHE_TOPIC_REPLICATION_FACTOR": "3"}
        with _environ(env):
            url = start_services(ep, state_dir)
        stack = await _opened(FaultStack(state_dir, ep, url, ports, nodes))
        try:
            async for s in _with_s3(stack):
                yield s
        finally:
            await _closed(stack)
    finally:
        _teardown(state_dir, nodes)


@pytest.fixture
async def client_of() -> AsyncIterator[Any]:
    """`client_of(stack)`: an HTTP client on that stack's intake."""
    clients: list[httpx.AsyncClient] = []

    def make(stack: FaultStack) -> httpx.AsyncClient:
        c = httpx.AsyncClient(base_url=stack.url, timeout=30)
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.aclose()
