"""Session fixtures: real Kafka, Postgres, S3 and SMTP, started once per test run.

Where `KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`, `PLATFORM_DATABASE_URL`, `S3_ENDPOINT_URL`,
`SMTP_HOST`/`SMTP_PORT` (and `LETHE_MAIL_DIR`) are all set, the tests use that infrastructure.
Otherwise they start their own and stop it afterwards: as containers (tests/containers.py)
when a Docker engine answers or `LETHE_TEST_INFRA=containers`, else as local processes with
`deploy/local/infra.py` (or `LETHE_TEST_INFRA=processes`), in a state directory of their own
(tests/infra_mode.py decides). Every test makes its own organisation, so tests share nothing
else.
"""

from __future__ import annotations

import os
import shutil
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from deploy.local import infra
from deploy.local.parts.postgres import ensure_pg_bindir
from deploy.local.parts.processes import stop as stop_pid
from deploy.local.stack import prepare
from services.intake import store as intake_store
from shared.db import create_pool
from shared.settings import LetheSettings
from shared.storage import s3_client
from tests.helpers import group_prefix as make_group_prefix
from tests.helpers import start_groups_at_end
from tests.infra_mode import docker_answers, select_infra
from tests.schemas import databases, rental

REPO = Path(__file__).resolve().parents[1]
# A test deployment: the public development secrets are accepted (in every settings object the
# tests build and every process they start); a test of production rules sets env="production".
os.environ["LETHE_ENV"] = "dev"
# The brokers the tests start live minutes: the C1 compiler only and the serial collector
# spend a fraction of the CPU of a full JIT warm-up (the suite is CPU-bound on two cores).
os.environ.setdefault("LETHE_KAFKA_JAVA_OPTS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
# Service processes are forked from a launcher that imported their code once per state
# directory (deploy/local/parts/preload.py), not exec'd: imports are most of a service's
# start-up CPU, and the tests start well over a hundred. `=0` execs each one.
os.environ.setdefault("LETHE_PRELOAD_SERVICES", "1")


def pytest_sessionstart(session: pytest.Session) -> None:
    """With `-n N` (pytest-xdist) every worker starts infrastructure of its own, in a state
    directory of its own (its pid), so workers share nothing. What is installed once for all
    (the Kafka jars by mvn, Postgres binaries by apt) is installed here, in the controller,
    before any worker starts: workers never race on it. External endpoints are one shared
    deployment whose topics every worker's services would read: refused with `-n`."""
    config = session.config
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return
    mode = select_infra(os.environ, docker_answers)
    if mode == "external":
        raise pytest.UsageError(
            "-n runs one infrastructure per worker; with KAFKA_BOOTSTRAP_SERVERS etc. set the "
            "workers would share one deployment's topics: run without -n (or -n 0)"
        )
    if mode == "processes":
        infra.ensure_kafka_libs(REPO)
        ensure_pg_bindir()


# The order files are handed to xdist's workers (`--no-loadscope-reorder` keeps it): the
# longest first, so that the run never ends on one long file while the other workers idle
# (longest-processing-time scheduling). Seconds per file as measured on two cores with
# `--durations` (a file over 15 s belongs here); the rest follow by tier, slow tiers first.
_LONG_FILES = (
    "faults/test_single_*",  # three files on one stack of their own: one unit, see below
    "e2e/test_drain.py",
    "e2e/test_ops_shutdown.py",
    "browser/test_privacy_centre.py",
    "faults/test_cluster_broker_killed.py",
    "browser/test_bulk_ui.py",
    "browser/test_web_ui.py",
    "e2e/test_approvals.py",
    "e2e/test_export_restart.py",
    "integration/test_webhook_fairness.py",
    "integration/test_opendsr.py",
    "e2e/test_bulk_requests.py",
    "e2e/test_outage_rebuild.py",
    "browser/test_approvals_page.py",
    "e2e/test_audit_e2e.py",
    "e2e/test_erase_replicas.py",
    "integration/test_api_contract.py",
    "e2e/test_outcomes.py",
    "integration/test_eraser_fencing.py",
    "integration/test_audit_trail.py",
)
_TIER_ORDER = ("faults", "e2e", "browser", "integration")


def work_unit(path: str) -> str:
    """The unit a worker takes whole: a test file, except the fault files that share one
    package-scoped stack (`tests/faults/test_single_*`), which go to one worker together so
    that it is started once, not once per worker."""
    file = Path(path)
    name = (file.relative_to(REPO) if file.is_absolute() else file).relative_to("tests")
    unit = name.as_posix()
    return "faults/test_single_*" if unit.startswith("faults/test_single_") else unit


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> tuple[int, int]:
        unit = work_unit(str(item.path))
        if unit in _LONG_FILES:
            return 0, _LONG_FILES.index(unit)
        tier = Path(str(item.path)).parent.name
        return 1, _TIER_ORDER.index(tier) if tier in _TIER_ORDER else len(_TIER_ORDER)

    items.sort(key=rank)  # stable: each file's tests stay together and in order


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile`, with `work_unit` as the unit."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class UnitScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid.split("::", 1)[0])

    return UnitScheduling(config, log)


@pytest.fixture(scope="session")
def state_dir() -> Iterator[Path]:
    path = REPO / ".local" / f"test-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    yield path


@pytest.fixture(scope="session")
def endpoints(state_dir: Path) -> Iterator[infra.Endpoints]:
    mode = select_infra(os.environ, docker_answers)
    if mode == "external":
        yield infra.Endpoints(
            kafka_bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            database_url=os.environ["DATABASE_URL"],
            platform_database_url=os.environ["PLATFORM_DATABASE_URL"],
            s3_endpoint_url=os.environ["S3_ENDPOINT_URL"],
            smtp_host=os.environ["SMTP_HOST"],
            smtp_port=int(os.environ["SMTP_PORT"]),
            mail_dir=Path(os.environ["LETHE_MAIL_DIR"]),
        )
        return
    if mode == "containers":
        yield from _containers(state_dir)
        return
    ep = infra.up(state_dir, REPO)
    try:
        yield ep
    finally:
        if not os.environ.get("LETHE_KEEP_TEST_STATE"):
            # Its data goes with the directory: a broker's clean shutdown takes seconds.
            stop_pid("kafka", state_dir, 5, signal.SIGKILL, group=True)
        infra.down(state_dir)
        _remove_state(state_dir)


def _containers(state_dir: Path) -> Iterator[infra.Endpoints]:
    from tests import containers  # imports testcontainers: only in this mode

    with containers.started(state_dir, REPO) as ep:
        yield ep
    _remove_state(state_dir)


def _remove_state(state_dir: Path) -> None:
    if not os.environ.get("LETHE_KEEP_TEST_STATE"):
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
async def prepared(endpoints: infra.Endpoints) -> infra.Endpoints:
    """Migrations (as production runs them), the sample platform schema, the topics."""
    await prepare(endpoints)
    return endpoints


@pytest.fixture(scope="module")
async def group_prefix(request: pytest.FixtureRequest, prepared: infra.Endpoints) -> str:
    """This module's `LETHE_KAFKA_GROUP_PREFIX`: the services it starts join consumer groups of
    their own (never another module's), which start at the end of every topic."""
    prefix = make_group_prefix(request.module.__name__)
    await start_groups_at_end(prepared.kafka_bootstrap_servers, prefix)
    return prefix


@pytest.fixture(scope="module")
def base_settings(infra_settings: dict[str, Any], group_prefix: str) -> dict[str, Any]:
    """Keyword arguments for any service's Settings(...), in this module's consumer groups."""
    return {**infra_settings, "kafka_group_prefix": group_prefix}


@pytest.fixture(scope="session")
def infra_settings(prepared: infra.Endpoints) -> dict[str, Any]:
    """The infrastructure part of `base_settings`, for session-wide clients."""
    return {
        "kafka_bootstrap_servers": prepared.kafka_bootstrap_servers,
        "database_url": prepared.database_url,
        "platform_database_url": prepared.platform_database_url,
        "s3_endpoint_url": prepared.s3_endpoint_url,
        "smtp_host": prepared.smtp_host,
        "smtp_port": prepared.smtp_port,
        "datamap_path": REPO / "deploy/local/sample/datamap.yaml",
    }


@pytest.fixture(scope="session")
async def lethe_db(prepared: infra.Endpoints) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(prepared.database_url)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def platform_db(prepared: infra.Endpoints) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(prepared.platform_database_url)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def s3(infra_settings: dict[str, Any]) -> AsyncIterator[Any]:
    async with s3_client(LetheSettings(**infra_settings)) as client:
        yield client


@dataclass(frozen=True)
class SchemaDB:
    """A platform database of another schema than the sample one."""

    pool: asyncpg.Pool
    dsn: str


@pytest.fixture(scope="session")
async def rental_db(prepared: infra.Endpoints) -> AsyncIterator[SchemaDB]:
    """A fresh database `rental_<random>` on the test Postgres with the rental platform's
    schema (tests/schemas/rental) and the eraser's platform migrations; dropped at the end."""
    admin = prepared.platform_database_url
    dsn = await databases.create_database(admin, "rental")
    try:
        await databases.apply_sql(dsn, rental.SCHEMA)
        await databases.apply_platform_migrations(dsn)
        pool = await create_pool(dsn)
        try:
            yield SchemaDB(pool, dsn)
        finally:
            await pool.close()
    finally:
        await databases.drop_database(admin, dsn)


class Org:
    def __init__(self, org_id: str, name: str, owner_key: str) -> None:
        self.id, self.name, self.owner_key = org_id, name, owner_key

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.owner_key}"}


@pytest.fixture
async def org(lethe_db: asyncpg.Pool) -> Org:
    """A fresh organisation in Lethe with an owner key (ids never repeat across tests)."""
    org_id = f"org-{uuid.uuid4().hex[:12]}"
    name = f"Test Org {org_id}"
    await intake_store.create_org(lethe_db, org_id, name)
    key = await intake_store.create_api_key(lethe_db, org_id, "owner", "test owner")
    return Org(org_id, name, key)


@pytest.fixture(scope="session")
async def rental_org(lethe_db: asyncpg.Pool) -> Org:
    """The Lethe organisation the single-tenant rental platform maps to (its data map's
    `platform_org`), with an owner key."""
    await intake_store.create_org(lethe_db, rental.PLATFORM_ORG, "Rental shop")
    key = await intake_store.create_api_key(lethe_db, rental.PLATFORM_ORG, "owner", "test owner")
    return Org(rental.PLATFORM_ORG, "Rental shop", key)
