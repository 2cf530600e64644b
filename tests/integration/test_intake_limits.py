"""Intake's input limits against real Postgres and Kafka, intake served by uvicorn in this
process: the body size counted as it arrives (chunked too) before authentication, refusals
without a key audited as counts per source and window, live progress streams capped per API
key and per status link, non-ASCII credentials refused (never a server error)."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI

from services.intake import store
from services.intake.app import create_http
from services.intake.settings import IntakeSettings
from shared.events.topics import AUDIT
from tests.conftest import Org
from tests.helpers import eventually, json_record

pytestmark = pytest.mark.integration
LIMIT = 65536
WINDOW = 2  # seconds per refusal count (60 in production)
CAP = 2  # live streams per API key and per status link
ERASE = {"type": "erasure", "subject": {"email": "ann@example.com"}}


@pytest.fixture(scope="module")
async def served(base_settings: dict[str, Any]) -> AsyncIterator[tuple[FastAPI, str]]:
    http = create_http(
        IntakeSettings(
            **base_settings,
            submit_burst=1000,
            max_body_bytes=LIMIT,
            auth_failure_window_seconds=WINDOW,
            sse_max_per_key=CAP,
            sse_max_per_status_link=CAP,
        )
    )
    server = uvicorn.Server(uvicorn.Config(http, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: _true(server.started), what="uvicorn to start", timeout=60)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield http, f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


async def _true(value: bool) -> bool:
    return value


@pytest.fixture
async def api(served: tuple[FastAPI, str]) -> AsyncIterator[httpx.AsyncClient]:
    """A client over real HTTP (source 127.0.0.1)."""
    async with httpx.AsyncClient(base_url=served[1], timeout=30) as client:
        yield client


@pytest.fixture
async def source(served: tuple[FastAPI, str]) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """A client from an address of its own (198.18.0.0/15, for tests), on the same app."""
    address = f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"
    transport = httpx.ASGITransport(app=served[0], client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        yield address, client


async def audit_records(bootstrap: str, match: Callable[[dict[str, Any]], bool]) -> list[Any]:
    """Every event on the audit topic, from the beginning to its current end, that matches."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        metadata = await consumer._client.fetch_all_metadata()
        parts = [TopicPartition(AUDIT, p) for p in metadata.partitions_for_topic(AUDIT) or ()]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        found: list[Any] = []
        while any([await consumer.position(p) < end[p] for p in parts]):
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                found += [e for r in records if (e := json_record(r.value)) and match(e)]
        return found
    finally:
        await consumer.stop()


async def _written(db: asyncpg.Pool, org_id: str) -> tuple[int, int]:
    jobs = await db.fetchval("SELECT count(*) FROM lethe.jobs WHERE org_id = $1", org_id)
    outbox = await db.fetchval(
        "SELECT count(*) FROM lethe.outbox WHERE event->>'org_id' = $1", org_id
    )
    return jobs, outbox


def _counts_of(address: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("type") == "AuthFailuresCounted" and e["payload"]["source"] == address


async def test_a_chunked_body_over_the_limit_is_refused_before_auth_and_writes_nothing(
    api: httpx.AsyncClient,
    source: tuple[str, httpx.AsyncClient],
    org: Org,
    lethe_db: asyncpg.Pool,
    base_settings: dict[str, Any],
) -> None:
    address, client = source

    async def endless() -> AsyncIterator[bytes]:
        while True:  # never ends: the answer must come as soon as the limit is passed
            yield b"x" * 4096

    json_type = {"Content-Type": "application/json"}
    r = await asyncio.wait_for(
        client.post("/v1/requests", content=endless(), headers=json_type), timeout=30
    )
    assert r.status_code == 413 and f"larger than {LIMIT} bytes" in r.json()["detail"], r.text

    async def chunks(n: int) -> AsyncIterator[bytes]:
        for _ in range(n):
            yield b" " * 4096

    # Over real HTTP with a valid key: chunked (no Content-Length), refused the same way.
    headers = {**json_type, **org.headers}
    r = await api.post("/v1/requests", content=chunks(LIMIT // 4096 + 1), headers=headers)
    assert r.status_code == 413 and f"larger than {LIMIT} bytes" in r.text, r.text
    assert "content-length" not in r.request.headers
    # OpenDSR answers in its own dialect (section 7.5: a bad request is a 400).
    r = await api.post("/opendsr/requests", content=chunks(LIMIT // 4096 + 1), headers=headers)
    assert r.status_code == 400 and f"larger than {LIMIT} bytes" in r.text, r.text
    # Within the limit a chunked body is read as usual.
    r = await api.post("/v1/requests", content=_one(json.dumps(ERASE).encode()), headers=headers)
    assert r.status_code == 202, r.text
    assert (await _written(lethe_db, org.id))[0] == 1  # only the accepted request's job
    # The refused keyless body never reached authentication: no refusal counted for it.
    await asyncio.sleep(WINDOW * 2 + 1)
    bootstrap = base_settings["kafka_bootstrap_servers"]
    assert await audit_records(bootstrap, _counts_of(address)) == []


async def _one(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def test_keyless_requests_are_audited_as_counts_per_source_and_window(
    source: tuple[str, httpx.AsyncClient], base_settings: dict[str, Any]
) -> None:
    address, client = source
    started = asyncio.get_running_loop().time()
    for i in range(100):
        headers = {"Authorization": "Bearer nope"} if i % 2 else {}
        assert (await client.get("/v1/jobs", headers=headers)).status_code == 401
    windows = int((asyncio.get_running_loop().time() - started) // WINDOW) + 2
    bootstrap = base_settings["kafka_bootstrap_servers"]

    async def all_counted() -> list[Any] | None:
        found = await audit_records(bootstrap, _counts_of(address))
        return found if sum(e["payload"]["count"] for e in found) >= 100 else None

    counted = await eventually(all_counted, what="100 refusals counted", timeout=60)
    assert sum(e["payload"]["count"] for e in counted) == 100
    assert 1 <= len(counted) <= windows, (len(counted), windows)  # one per window, not 100
    reasons: dict[str, int] = {}
    for e in counted:
        assert e["payload"]["window_seconds"] == WINDOW and e["actor"]["kind"] == "anonymous"
        for reason, n in e["payload"]["reasons"].items():
            reasons[reason] = reasons.get(reason, 0) + n
    assert reasons == {"no API key": 50, "unknown or revoked API key": 50}
    assert len({e["payload"]["source_hash"] for e in counted}) == 1
    singles = await audit_records(
        bootstrap,
        lambda e: e.get("type") == "AuthFailed" and e["payload"].get("client") == address,
    )
    assert singles == []  # no event per request


async def _open_streams(
    stack: AsyncExitStack, api: httpx.AsyncClient, path: str, n: int
) -> list[tuple[httpx.Response, AsyncIterator[str]]]:
    """`n` live streams; each with its reader, kept (a dropped reader closes its stream)."""
    opened = []
    for _ in range(n):
        r = await stack.enter_async_context(api.stream("GET", path))
        assert r.status_code == 200, await r.aread()
        reader = r.aiter_text()
        assert (await anext(reader)).startswith("retry:")  # live: its retry hint came
        opened.append((r, reader))
    return opened


def _freed(api: httpx.AsyncClient, path: str) -> Callable[[], Awaitable[bool]]:
    """Whether a stream opens again (then closed at once): once the server saw one leave."""

    async def probe() -> bool:
        async with api.stream("GET", path) as r:
            return r.status_code == 200

    return probe


async def test_live_streams_are_capped_per_status_link_and_per_key(
    api: httpx.AsyncClient, served: tuple[FastAPI, str], org: Org, lethe_db: asyncpg.Pool
) -> None:
    job = (await api.post("/v1/requests", json=ERASE, headers=org.headers)).json()
    job_id = uuid.UUID(job["id"])  # pending (no eraser here): its stream stays open
    link = served[0].state.runtime.settings.status_links().path(job_id) + "/stream"
    who = await store.caller_for_key(lethe_db, org.owner_key)
    assert who is not None
    token, _ = await store.open_session(lethe_db, who.key_id, timedelta(hours=1))
    for path, cookies, holder in (
        (link, {}, "status link"),
        (f"/ui/stream?job={job_id}", {"lethe_session": token}, "API key"),
    ):
        api.cookies.clear()
        api.cookies.update(cookies)
        async with AsyncExitStack() as stack:
            opened = await _open_streams(stack, api, path, CAP)
            over = await api.get(path)
            assert over.status_code == 429, over.text
            assert f"this {holder}: at most {CAP} at once" in over.text
            assert over.headers["retry-after"]
            await opened[0][0].aclose()  # the client leaves: its slot is freed
            assert await eventually(_freed(api, path), what="a freed slot")
    api.cookies.clear()
    # Another status link is not held back by this one's streams.
    # (Another subject: a second request for this one would be linked to its open job.)
    someone_else = {**ERASE, "subject": {"email": "bob@example.com"}}
    other = (await api.post("/v1/requests", json=someone_else, headers=org.headers)).json()
    other_link = served[0].state.runtime.settings.status_links().path(uuid.UUID(other["id"]))
    async with AsyncExitStack() as stack:
        await _open_streams(stack, api, link, CAP)
        await _open_streams(stack, api, other_link + "/stream", 1)


async def test_non_ascii_credentials_are_refused_not_server_errors(
    api: httpx.AsyncClient, served: tuple[FastAPI, str], org: Org, lethe_db: asyncpg.Pool
) -> None:
    bad = "Bearer ключ-🔑".encode()
    r = await api.get("/v1/jobs", headers={b"Authorization": bad})
    assert r.status_code == 401, r.text
    r = await api.post(
        "/opendsr/requests",
        content=b"{}",
        headers={b"Authorization": bad, b"Content-Type": b"application/json"},
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == 401, r.text
    # Web sign-in: a non-ASCII key, and a non-ASCII CSRF token.
    api.cookies.clear()
    page = await api.get("/ui/login")
    csrf = page.cookies["lethe_login_csrf"]
    r = await api.post("/ui/login", data={"csrf": csrf, "api_key": "ключ-🔑"})
    assert r.status_code == 401 and "unknown or was revoked" in r.text, r.text
    r = await api.post("/ui/login", data={"csrf": "ключ", "api_key": org.owner_key})
    assert r.status_code == 401 and "expired" in r.text, r.text
    # A signed-in form with a non-ASCII CSRF token is refused as a bad token.
    who = await store.caller_for_key(lethe_db, org.owner_key)
    assert who is not None
    token, _ = await store.open_session(lethe_db, who.key_id, timedelta(hours=1))
    api.cookies.set("lethe_session", token)
    r = await api.post("/ui/logout", data={"csrf": "ключ"})
    assert r.status_code == 403 and "expired" in r.text, r.text
    api.cookies.clear()
    # A status link whose secret part is not ASCII is simply not valid.
    job = (await api.post("/v1/requests", json=ERASE, headers=org.headers)).json()
    r = await api.get(f"/status/{job['id']}/ключ")
    assert r.status_code == 404 and "not valid" in r.text, r.text
