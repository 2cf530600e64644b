"""Intake dies between committing a job and publishing its event: after a restart the event
is published exactly once. Intake runs as a real process and is killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from deploy.local import infra
from deploy.local.stack import REPO_ROOT, _free_port, service_env, wait_http
from shared.events.topics import JOBS_ERASE
from tests.conftest import Org
from tests.helpers import eventually, find_record

pytestmark = pytest.mark.e2e


def _start_intake(
    name: str, ep: infra.Endpoints, state_dir: Path, relay: bool, group_prefix: str
) -> tuple[int, str]:
    port = _free_port()
    env = {
        **service_env(ep, port),
        "LETHE_OUTBOX_RELAY_ENABLED": str(relay).lower(),
        "LETHE_KAFKA_GROUP_PREFIX": group_prefix,
    }
    pid = infra.start_process(
        name, [sys.executable, "-m", "services.intake"], env, state_dir, cwd=REPO_ROOT
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", log=state_dir / "logs" / f"{name}.log")
    return pid, url


async def _records_for(bootstrap: str, key: bytes) -> int:
    count = 0

    def match(rec: object) -> bool:
        nonlocal count
        if getattr(rec, "key", None) == key:
            count += 1
        return False  # read to the end, counting

    try:
        await find_record(bootstrap, JOBS_ERASE, match)
    except AssertionError:
        pass
    return count


async def test_the_event_of_a_committed_job_survives_a_crash_and_is_published_once(
    prepared: infra.Endpoints,
    state_dir: Path,
    org: Org,
    lethe_db: asyncpg.Pool,
    group_prefix: str,
) -> None:
    # An intake whose relay cannot run stands for one that dies right after the commit.
    pid, url = _start_intake(
        "intake-crash", prepared, state_dir, relay=False, group_prefix=group_prefix
    )
    try:
        async with httpx.AsyncClient(base_url=url) as c:
            r = await c.post(
                "/v1/requests",
                headers=org.headers,
                json={
                    "type": "erasure",
                    "subject": {"email": "x@y.example"},
                    "request_id": f"crash-{uuid.uuid4()}",
                },
            )
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
    finally:
        os.kill(pid, signal.SIGKILL)
    key = job_id.encode()
    assert (
        await lethe_db.fetchval(
            "SELECT count(*) FROM lethe.outbox WHERE event->>'job_id' = $1", job_id
        )
        == 1
    )
    assert await _records_for(prepared.kafka_bootstrap_servers, key) == 0

    _, _ = _start_intake(
        "intake-restarted", prepared, state_dir, relay=True, group_prefix=group_prefix
    )
    try:

        async def published() -> bool:
            return await _records_for(prepared.kafka_bootstrap_servers, key) >= 1

        await eventually(published, what="the relay to publish after the restart")
        await eventually(lambda: _outbox_empty(lethe_db, job_id), what="the outbox to drain")
        assert await _records_for(prepared.kafka_bootstrap_servers, key) == 1
        assert (
            await lethe_db.fetchval(
                "SELECT count(*) FROM lethe.jobs WHERE id = $1", uuid.UUID(job_id)
            )
            == 1
        )
    finally:
        infra.stop_process("intake-restarted", state_dir)


async def _outbox_empty(db: asyncpg.Pool, job_id: str) -> bool:
    return (
        await db.fetchval("SELECT count(*) FROM lethe.outbox WHERE event->>'job_id' = $1", job_id)
        == 0
    )
