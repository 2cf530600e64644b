"""Intake's OpenAPI document is true: schemathesis (`--checks all`: status codes, content
types, headers, response schemas, schema-valid requests accepted and schema-invalid ones
rejected, 405 with `Allow`, stateful links) against intake on real Postgres and Kafka, with
an owner key, finds nothing. A short seeded run (deterministic generation). A second
organisation's key then sees none of what the run made."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn

from deploy.local.parts.common import free_port
from services.intake import opendsr
from services.intake import store as intake_store
from services.intake.app import create_http
from services.intake.settings import IntakeSettings
from tests.conftest import REPO, Org

pytestmark = pytest.mark.integration

# Beyond schemathesis' defaults: 413 (a body over `LETHE_MAX_BODY_BYTES`, documented on every
# route with a body) is a rejection, and the answer to a schema-valid body too large to read;
# and one rule the schema cannot hold (below).
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", 401, 403, 404, 409, 413, 429]

# How long an extension may be depends on the job's regulation (GDPR: two months, CCPA: 45
# days, no months): a schema-valid extension the law refuses for this job is a documented 422
# naming the rule.
[[operations]]
include-path = "/v1/jobs/{job_id}/extend"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = [
  "2xx", "3xx", 401, 403, 404, 409, 413, 422, 429
]

# The compliance report's months each match YYYY-MM; that `from` is not after `to`, that the
# range spans at most 24 months and that the year is 1970..9998 the schema cannot hold: a
# documented 422 naming the rule.
[[operations]]
include-path = "/v1/reports/compliance"
include-method = "GET"
checks.positive_data_acceptance.expected-statuses = [
  "2xx", "3xx", 401, 403, 404, 409, 413, 422, 429
]
"""
EXAMPLES = 5  # per operation and phase: the run stays well under a minute here


def _free_port() -> int:
    return free_port()  # this xdist worker's own block (deploy/local/parts/common.py)


@pytest.fixture(scope="module")
def intake_url(
    base_settings: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Intake over real HTTP in a thread of its own (its own event loop, pool and broker)."""
    key_file = tmp_path_factory.mktemp("opendsr") / "signing.pem"
    key_file.write_bytes(opendsr.new_signing_key_pem())
    settings = IntakeSettings(
        **base_settings,
        submit_burst=100_000,
        submit_rate_per_minute=100_000,
        opendsr_signing_key_file=key_file,
        # Callback URLs are not resolved (random host names would wait on DNS); production's
        # https/public-address rule answers a documented 400.
        opendsr_allow_insecure_callbacks=True,
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_http(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "intake did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)


async def test_the_openapi_document_is_true(
    intake_url: str, org: Org, lethe_db: asyncpg.Pool, tmp_path: Path
) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.integration.schemathesis_hooks",
        "LETHE_TEST_ORG_NAME": org.name,
        "LETHE_TEST_ORG_ID": org.id,
        "PYTHONPATH": str(REPO),
    }
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from schemathesis.cli import schemathesis; schemathesis()",
        "--config-file",
        str(config),
        "run",
        f"{intake_url}/openapi.json",
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {org.owner_key}",
        "--seed",
        "20261127",
        "--generation-deterministic",
        "--max-examples",
        str(EXAMPLES),
        "--workers",
        "1",
        "--no-color",
        cwd=tmp_path,  # schemathesis keeps its state (.schemathesis/) where it runs
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    report = out.decode(errors="replace")
    summary = report[report.find("WARNINGS") :] if "WARNINGS" in report else report[-3000:]
    print(f"schemathesis ran {time.monotonic() - started:.1f} s:\n{summary}")
    failures = report[report.find("FAILURES") : report.find("WARNINGS")]
    assert proc.returncode == 0, failures[:30_000] or report[-20_000:]
    tested = re.search(r"Tested: (\d+)", report)
    assert tested and int(tested.group(1)) >= 19, summary  # every documented operation

    # What the run made is its organisation's alone: another org's owner sees none of it.
    jobs = await lethe_db.fetch("SELECT id FROM lethe.jobs WHERE org_id = $1", org.id)
    assert jobs, "the run submitted no request: the positive cases never got through"
    other = f"org-other-{os.getpid()}-{time.time_ns() % 10**9}"
    await intake_store.create_org(lethe_db, other, "Another org")
    stranger = await intake_store.create_api_key(lethe_db, other, "owner", "stranger")
    headers = {"Authorization": f"Bearer {stranger}"}
    async with httpx.AsyncClient(base_url=intake_url, headers=headers) as client:
        assert (await client.get("/v1/jobs")).json()["jobs"] == []
        for row in jobs[:5]:
            assert (await client.get(f"/v1/jobs/{row['id']}")).status_code == 404
        r = await client.get("/v1/audit", params={"org": org.id})
        assert r.status_code == 403
