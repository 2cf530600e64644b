"""`GET/PUT /v1/orgs/{org}/retention` on real Postgres and Kafka: defaults, changes audited
with old and new values, every validation and authorisation case."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from services.intake import store
from services.intake.app import create_http
from services.intake.settings import IntakeSettings
from shared.events.topics import AUDIT
from tests.conftest import Org
from tests.helpers import find_record

pytestmark = pytest.mark.integration
DEFAULTS = {"logs": 30, "messages": 90, "metrics": 365}


@pytest.fixture(scope="module")
async def api(base_settings: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    http = create_http(IntakeSettings(**base_settings, scheduler_enabled=False))
    async with http.router.lifespan_context(http):
        transport = httpx.ASGITransport(app=http)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            yield client


async def _key(db: asyncpg.Pool, org_id: str, role: str) -> dict[str, str]:
    key = await store.create_api_key(db, org_id, role, f"{role} key")
    return {"Authorization": f"Bearer {key}"}


async def test_defaults_change_and_audit(
    api: httpx.AsyncClient, org: Org, base_settings: dict[str, Any]
) -> None:
    url = f"/v1/orgs/{org.id}/retention"
    r = await api.get(url, headers=org.headers)
    assert r.status_code == 200, r.text
    assert r.json()["policy"] == DEFAULTS and r.json()["range"] == [1, 3650]

    r = await api.put(url, json={"messages": 30, "metrics": 3650}, headers=org.headers)
    assert r.status_code == 200, r.text
    new = {"logs": 30, "messages": 30, "metrics": 3650}
    assert r.json()["policy"] == new
    assert (await api.get(url, headers=org.headers)).json()["policy"] == new
    r = await api.put(url, json={"logs": 1}, headers=org.headers)
    assert r.json()["policy"] == {**new, "logs": 1}

    def changed(rec: Any) -> bool:
        env = json.loads(rec.value)
        return bool(env["type"] == "RetentionPolicyChanged" and env["org_id"] == org.id)

    first = json.loads(await find_record(base_settings["kafka_bootstrap_servers"], AUDIT, changed))
    assert first["payload"] == {"old": DEFAULTS, "new": new}
    assert first["actor"]["kind"] == "api_key"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"messages": 0}, ["messages", "1..3650"]),
        ({"logs": 3651}, ["logs", "1..3650"]),
        ({"metrics": -5}, ["metrics", "1..3650"]),
        ({"messages": "90"}, ["messages", "between 1 and 3650"]),
        ({"messages": "ninety"}, ["messages", "between 1 and 3650"]),
        ({"messages": 1.5}, ["messages", "between 1 and 3650"]),
        ({"messages": True}, ["messages", "between 1 and 3650"]),
        ({"messages": None}, ["messages", "between 1 and 3650"]),
        ({"forever": 10}, ["forever", "unknown category"]),
        ({"anonymous": 10}, ["anonymous", "unknown category"]),
        ({}, ["category -> days"]),
        ([90], ["category -> days"]),
    ],
)
async def test_invalid_values_are_422_naming_the_field_and_range(
    api: httpx.AsyncClient, org: Org, body: Any, words: list[str]
) -> None:
    url = f"/v1/orgs/{org.id}/retention"
    r = await api.put(url, json=body, headers=org.headers)
    assert r.status_code == 422, r.text
    for w in words:
        assert w in r.json()["detail"], r.text
    assert (await api.get(url, headers=org.headers)).json()["policy"] == DEFAULTS


async def test_owners_of_the_org_only(
    api: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool
) -> None:
    url = f"/v1/orgs/{org.id}/retention"
    for role in ("viewer", "admin"):
        headers = await _key(lethe_db, org.id, role)
        assert (await api.get(url, headers=headers)).status_code == 403
        r = await api.put(url, json={"messages": 10}, headers=headers)
        assert r.status_code == 403 and "owner" in r.json()["detail"]
    other = "other-" + org.id
    await store.create_org(lethe_db, other, "Other")
    other_owner = await _key(lethe_db, other, "owner")
    assert (await api.get(url, headers=other_owner)).status_code == 403
    r = await api.put(url, json={"messages": 10}, headers=other_owner)
    assert r.status_code == 403 and other in r.json()["detail"]
    assert (await api.get(url)).status_code == 401
    assert (await api.put(url, json={"messages": 10})).status_code == 401
    assert (await api.get(url, headers=org.headers)).json()["policy"] == DEFAULTS
