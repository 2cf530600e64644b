"""The eraser's router through TestKafkaBroker: each command reaches its handler, failures
are retried then dead-lettered (and the job told), poison goes to the DLQ at once."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from services.eraser import handlers, service
from services.eraser.service import retention
from shared.events import Actor, Envelope, make_event
from shared.events.jobs import CancelErasure, EraseChunk, ErasureRequested, RestoreErasure
from shared.events.progress import JobCompleted
from shared.events.retention import RetentionRequested
from shared.events.topics import ERASE_TASKS, JOBS_ERASE, PROGRESS
from tests.unit.kafka_fakes import failing, fake_runtime, fake_settings, recorder, running, send

pytestmark = pytest.mark.unit
ACTOR = Actor(kind="service", id="test")
Calls = list[tuple[str, Envelope]]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    seen: Calls = []
    for module, name in [
        (service, "plan"),
        (service, "process_chunk"),
        (service, "give_up"),
        (service, "chunk_failed"),
        (service, "cancel"),
        (service, "restore"),
        (retention, "cancel_arrived"),
        (retention, "request_cancel"),
        (retention, "run_job"),
        (retention, "give_up"),
    ]:
        monkeypatch.setattr(module, name, recorder(seen, name))
    return seen


def _runtime() -> Any:
    return fake_runtime(settings=fake_settings(), deps=object())


def _job(payload: object) -> Envelope:
    return make_event(payload, actor=ACTOR, job_id=uuid.uuid4(), org_id="org-1")  # type: ignore[arg-type]


def _requested() -> ErasureRequested:
    return ErasureRequested(
        scope="organisation",
        regulation="gdpr",
        due_at=datetime.now(UTC),
        recovery_window_days=7,
        channel="http",
    )


def _retention() -> RetentionRequested:
    return RetentionRequested(category="logs", days=30, cutoff=datetime.now(UTC))


async def test_each_job_command_reaches_its_handler(calls: Calls) -> None:
    events = {
        "plan": _job(_requested()),
        "cancel": _job(CancelErasure(reason="asked")),
        "restore": _job(RestoreErasure()),
        "run_job": _job(_retention()),
    }
    async with running(handlers.build_router(_runtime())) as (broker, seen):
        for env in events.values():
            await send(broker, JOBS_ERASE, env)
    by_name = {name: env for name, env in calls}
    for name, env in events.items():
        # The handler gets the envelope exactly as sent (payload untouched).
        assert by_name[name] == env, name
    # The cancel group records cancels of retention runs; it ignores the other commands.
    assert [e.type for n, e in calls if n == "request_cancel"] == ["CancelErasure"]
    assert "cancel_arrived" in by_name
    assert seen.dlq == []


async def test_a_failing_plan_is_retried_then_dead_lettered_and_the_job_failed(
    calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "plan", failing(calls, "plan"))
    env = _job(_requested())
    async with running(handlers.build_router(_runtime())) as (broker, seen):
        await send(broker, JOBS_ERASE, env)
    assert [n for n, _ in calls].count("plan") == 3
    [(body, headers)] = seen.dlq
    assert body == env.model_dump_json().encode()
    assert headers["lethe-source-topic"] == JOBS_ERASE
    assert headers["lethe-consumer-group"] == "test-lethe-eraser"
    assert "plan is down" in headers["lethe-error"]
    assert ("give_up", env) in calls


async def test_a_failing_retention_run_is_given_up_as_retention(
    calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "run_job", failing(calls, "run_job"))
    env = _job(_retention())
    async with running(handlers.build_router(_runtime())) as (broker, seen):
        await send(broker, JOBS_ERASE, env)
    assert len(seen.dlq) == 1
    names = [n for n, _ in calls]
    assert "give_up" in names and ("give_up", env) in calls


async def test_poison_goes_to_the_dlq_at_once(calls: Calls) -> None:
    incomplete = _job(_requested()).model_dump(mode="json")
    incomplete["payload"] = {"subject": {"email": "secret@example.com"}}
    async with running(handlers.build_router(_runtime())) as (broker, seen):
        await broker.publish(b"not json", JOBS_ERASE, key=b"k")
        # A well-formed envelope of a type the topic does not carry is poison too.
        await send(broker, JOBS_ERASE, _job(EraseChunk(chunk_no=1, wave=0, table="t")))
        await broker.publish(json.dumps(incomplete).encode(), JOBS_ERASE)
    # Both consumer groups of the job topic dead-letter each, at the first attempt.
    groups = sorted(h["lethe-consumer-group"] for _, h in seen.dlq)
    assert groups == ["test-lethe-eraser"] * 3 + ["test-lethe-eraser-cancels"] * 3
    assert all(h["lethe-error"].startswith("invalid message") for _, h in seen.dlq)
    assert b"not json" in [b for b, _ in seen.dlq]
    assert not [n for n, _ in calls if n in {"plan", "cancel", "restore", "run_job"}]
    # The error names what is missing, never the values (personal data).
    errors = [h["lethe-error"] for _, h in seen.dlq]
    assert any("payload.regulation: Field required" in e for e in errors)
    assert not any("secret@example.com" in e for e in errors)


async def test_a_chunk_is_processed_and_a_failing_one_becomes_a_review_item(
    calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _job(EraseChunk(chunk_no=1, wave=0, table="users"))
    async with running(handlers.build_router(_runtime())) as (broker, seen):
        await send(broker, ERASE_TASKS, good)
        assert ("process_chunk", good) in calls
        monkeypatch.setattr(service, "process_chunk", failing(calls, "process_chunk"))
        bad = _job(EraseChunk(chunk_no=2, wave=0, table="users"))
        await send(broker, ERASE_TASKS, bad)
    assert [h["lethe-consumer-group"] for _, h in seen.dlq] == ["test-lethe-eraser-tasks"]
    assert ("chunk_failed", bad) in calls


async def test_published_events_get_an_audit_copy_and_chunks_do_not(calls: Calls) -> None:
    rt = _runtime()
    router = handlers.build_router(rt)
    async with running(router) as (_, seen):
        progress = _job(JobCompleted(done=1, total=1, verification={}))
        await rt.emit(PROGRESS, progress)
        await rt.publish_chunk(_job(EraseChunk(chunk_no=3, wave=0, table="users")))
    assert [e.event_id for e in seen.audit] == [progress.event_id]
