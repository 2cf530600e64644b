"""The exporter's, notifier's, auditor's and intake's routers through TestKafkaBroker: the
right handler per event type, retries then the DLQ with the error header, poison to the DLQ
at once, the audit copy of what they publish."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from services.auditor import handlers as auditor_handlers
from services.auditor import store as auditor_store
from services.exporter import handlers as exporter_handlers
from services.exporter import service as exporter_service
from services.intake import handlers as intake_handlers
from services.intake.service import progress as intake_progress
from services.notifier import handlers as notifier_handlers
from services.notifier import service as notifier_service
from services.notifier import webhooks  # where the webhook recorder looks up enqueue
from services.notifier.opendsr import handlers as opendsr  # where the recorder looks up enqueue
from shared.events import Actor, Envelope, Payload, make_event
from shared.events.jobs import CancelExport, ExportRequested
from shared.events.notifications import NotificationSent, SendEmail
from shared.events.progress import JobCancelled
from shared.events.requests import RequestRejected
from shared.events.topics import (
    AUDIT,
    JOBS_EXPORT,
    NOTIFICATIONS,
    PROGRESS,
    REQUESTS,
    REQUESTS_REJECTED,
)
from tests.unit.kafka_fakes import failing, fake_runtime, fake_settings, recorder, running, send

pytestmark = pytest.mark.unit
ACTOR = Actor(kind="service", id="test")
Calls = list[tuple[str, Envelope]]


def _event(payload: Payload) -> Envelope:
    return make_event(payload, actor=ACTOR, job_id=uuid.uuid4(), org_id="org-1")


def _patch(monkeypatch: pytest.MonkeyPatch, calls: Calls, *targets: tuple[Any, str]) -> None:
    for module, name in targets:
        monkeypatch.setattr(module, name, recorder(calls, name))


def _groups(dlq: list[tuple[bytes, dict[str, Any]]]) -> list[str]:
    return [h["lethe-consumer-group"] for _, h in dlq]


# --- exporter ------------------------------------------------------------------------------


def _export() -> ExportRequested:
    return ExportRequested(
        scope="organisation", regulation="gdpr", due_at=datetime.now(UTC), channel="http"
    )


async def test_exporter_routes_exports_and_cancels(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: Calls = []
    _patch(monkeypatch, calls, (exporter_service, "export"), (exporter_service, "cancel"))
    rt = fake_runtime(settings=fake_settings(), deps=object())
    export, cancel = _event(_export()), _event(CancelExport(reason="no"))
    async with running(exporter_handlers.build_router(rt)) as (broker, seen):
        await send(broker, JOBS_EXPORT, export)
        await send(broker, JOBS_EXPORT, cancel)
        done = _event(JobCancelled(done=0, total=0))
        await rt.outputs.emit(PROGRESS, done)
    assert calls == [("export", export), ("cancel", cancel)]
    assert seen.dlq == []
    # What the exporter publishes is copied to the audit trail (as are the commands, which
    # came through a Lethe broker too).
    assert [e.event_id for e in seen.audit] == [export.event_id, cancel.event_id, done.event_id]


async def test_exporter_dead_letters_a_failing_export_and_fails_the_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: Calls = []
    monkeypatch.setattr(exporter_service, "export", failing(calls, "export"))
    _patch(monkeypatch, calls, (exporter_service, "fail"))
    rt = fake_runtime(settings=fake_settings(dlq_retries=2), deps=object())
    export = _event(_export())
    async with running(exporter_handlers.build_router(rt)) as (broker, seen):
        await send(broker, JOBS_EXPORT, export)
    assert [n for n, _ in calls] == ["export", "export", "fail"]
    [(body, headers)] = seen.dlq
    assert body == export.model_dump_json().encode()
    assert headers["lethe-source-topic"] == JOBS_EXPORT
    assert headers["lethe-consumer-group"] == "test-lethe-exporter"
    assert "export is down" in headers["lethe-error"]


# --- notifier ------------------------------------------------------------------------------


def _notifier_runtime() -> Any:
    settings = fake_settings(
        opendsr_signing_key=None,
        opendsr_signing_key_file=None,
        opendsr_processor_domain="lethe.test",
        opendsr_callback_timeout_seconds=1,
        opendsr_callback_deadline_seconds=1,
        opendsr_callback_retries=1,
        opendsr_callback_backoff_seconds=0.01,
        opendsr_callback_max_backoff_seconds=0.01,
        opendsr_callback_per_endpoint=1,
        webhook_timeout_seconds=1,
        webhook_retry_horizon_seconds=1,
        webhook_max_backoff_seconds=0.01,
        webhook_per_org_concurrency=1,
        callback_allowed_networks=[],
    )
    return fake_runtime(settings=settings, deps=object(), pool=object())


async def test_notifier_routes_emails_and_state_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: Calls = []
    _patch(
        monkeypatch,
        calls,
        (notifier_service, "send_email"),
        (opendsr, "enqueue"),
    )
    monkeypatch.setattr(webhooks, "enqueue", recorder(calls, "record_webhooks"))
    router, _ = notifier_handlers.build_router(rt := _notifier_runtime())
    email, change = (
        _event(SendEmail(template="job_completed")),
        _event(JobCancelled(done=0, total=0)),
    )
    async with running(router) as (broker, seen):
        await send(broker, NOTIFICATIONS, email)
        await send(broker, PROGRESS, change)
        sent = _event(
            NotificationSent(template="t", channel="email", command_event_id="x", recipient="k")
        )
        await rt.outputs.emit(AUDIT, sent)
    assert sorted(calls, key=lambda c: c[0]) == [
        ("enqueue", change),
        ("record_webhooks", change),
        ("send_email", email),
    ]
    assert seen.dlq == []
    # Commands and state changes get their audit copy; an audit event is not copied again.
    assert [e.event_id for e in seen.audit] == [email.event_id, change.event_id, sent.event_id]


async def test_notifier_gives_up_an_email_after_its_retries(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="lethe.errors")
    calls: Calls = []
    monkeypatch.setattr(notifier_service, "send_email", failing(calls, "send_email"))
    given_up: list[tuple[Envelope, str, str]] = []

    async def give_up(env: Envelope, deps: object, error: str, *, channel: str) -> None:
        given_up.append((env, error, channel))

    monkeypatch.setattr(notifier_service, "give_up", give_up)
    router, _ = notifier_handlers.build_router(_notifier_runtime())
    email = _event(SendEmail(template="job_completed"))
    async with running(router) as (broker, seen):
        await send(broker, NOTIFICATIONS, email)
        await broker.publish(b"{}", NOTIFICATIONS)  # poison: not an envelope
    assert [n for n, _ in calls] == ["send_email"] * 3
    assert _groups(seen.dlq) == ["test-lethe-notifier"] * 2
    assert seen.dlq[1][1]["lethe-error"].startswith("invalid message")
    [(env, error, channel)] = given_up
    # What is recorded (and audited) names the error and its log line, not the text.
    assert (env, channel) == (email, "email") and error.startswith("RuntimeError (error_id=")
    error_id = error.split("error_id=")[1].split(";")[0]
    assert "send_email is down" not in error
    assert any(
        f"error_id={error_id}" in r.getMessage() and "send_email is down" in r.getMessage()
        for r in caplog.records
    )


# --- auditor -------------------------------------------------------------------------------


async def test_auditor_appends_every_event_and_dead_letters_what_it_cannot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    appended: list[Envelope] = []

    async def append_batch(pool: object, envs: list[Envelope], *, signer: object) -> None:
        if any(env.type == "JobCancelled" for env in envs):
            raise RuntimeError("disk full")
        appended.extend(envs)

    monkeypatch.setattr(auditor_store, "append_batch", append_batch)
    rt = fake_runtime(settings=fake_settings(), pool=object(), signer=object())
    ok = _event(
        NotificationSent(template="t", channel="email", command_event_id="x", recipient="k")
    )
    bad = _event(JobCancelled(done=0, total=0))
    async with running(auditor_handlers.build_router(rt)) as (broker, seen):
        await send(broker, AUDIT, ok)
        await send(broker, AUDIT, bad)
        await broker.publish(b"not json", AUDIT)
    assert appended == [ok]
    assert _groups(seen.dlq) == ["test-lethe-auditor"] * 2
    assert "disk full" in seen.dlq[0][1]["lethe-error"]


async def test_a_poison_record_in_an_audit_batch_is_dead_lettered_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batches: list[list[Envelope]] = []

    async def append_batch(pool: object, envs: list[Envelope], *, signer: object) -> None:
        batches.append(envs)

    monkeypatch.setattr(auditor_store, "append_batch", append_batch)
    rt = fake_runtime(settings=fake_settings(), pool=object(), signer=object())
    first, last = _event(JobCancelled(done=0, total=0)), _event(JobCancelled(done=1, total=1))
    async with running(auditor_handlers.build_router(rt)) as (broker, seen):
        await broker.publish_batch(
            first.model_dump_json().encode(),
            b'{"not": "an envelope"}',
            last.model_dump_json().encode(),
            topic=AUDIT,
        )
    # One transaction for the batch, in order, without the poison; it alone is dead-lettered.
    assert batches == [[first, last]]
    [(body, headers)] = seen.dlq
    assert body == b'{"not": "an envelope"}' and headers["lethe-source-topic"] == AUDIT
    assert headers["lethe-error"].startswith("invalid message")


# --- intake --------------------------------------------------------------------------------


async def test_intake_follows_progress_and_rejects_bad_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: Calls = []
    monkeypatch.setattr(intake_progress, "take", failing(calls, "progress.take"))
    # A malformed request is answered before any unit of work or policy is used.
    rt = fake_runtime(
        settings=fake_settings(), pool=object(), uow=lambda: None, submit_policy=lambda: None
    )
    change = _event(JobCancelled(done=0, total=0))
    router = intake_handlers.build_router(rt)
    async with running(router, also=(REQUESTS_REJECTED,)) as (broker, seen):
        await send(broker, PROGRESS, change)
        # Not a valid SubmitRequest: answered with RequestRejected, keyed as it came.
        await broker.publish(b'{"org_id": ""}', REQUESTS, key=b"upstream-key")
    assert [n for n, _ in calls] == ["progress.take"] * 3
    assert _groups(seen.dlq) == ["test-lethe-intake"]
    [reply] = seen.topics[REQUESTS_REJECTED]
    assert reply.payload_as(RequestRejected).original_key == "upstream-key"
    # The rejection is copied to the audit trail.
    assert reply.event_id in [e.event_id for e in seen.audit]


class _Tx:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Conn:
    def transaction(self) -> _Tx:
        return _Tx()


class _Acquired:
    async def __aenter__(self) -> _Conn:
        return _Conn()

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Pool:
    """Transactions that do nothing: the folds are the test's."""

    def acquire(self) -> _Acquired:
        return _Acquired()


async def test_intake_folds_a_progress_batch_and_dead_letters_only_what_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, bad, last = (_event(JobCancelled(done=i, total=2)) for i in range(3))
    folded: list[uuid.UUID] = []
    followed: list[uuid.UUID] = []

    async def fold(conn: object, env: Envelope, completed: object = None) -> bool:
        if env.event_id == bad.event_id:
            raise RuntimeError("a bug in the fold of this one event")
        folded.append(env.event_id)
        return True

    async def follow(uow: object, env: Envelope) -> int:
        followed.append(env.event_id)
        return 0

    monkeypatch.setattr(intake_progress.store, "fold", fold)
    monkeypatch.setattr(intake_progress.duplicates, "tell_linked", follow)
    monkeypatch.setattr(intake_progress.bulk, "on_job_event", follow)
    rt = fake_runtime(
        settings=fake_settings(status_links=lambda: None), pool=_Pool(), uow=lambda: None
    )
    async with running(intake_handlers.build_router(rt)) as (broker, seen):
        await broker.publish_batch(
            first.model_dump_json().encode(),
            b'{"not": "an envelope"}',
            bad.model_dump_json().encode(),
            last.model_dump_json().encode(),
            topic=PROGRESS,
        )
    # Each of the 3 attempts: the batch's transaction (rolled back at `bad`), then each event
    # alone, in order; the good ones folded (idempotent) and followed up.
    assert folded == [first.event_id, first.event_id, last.event_id] * 3
    assert followed == [first.event_id, first.event_id, last.event_id, last.event_id] * 3
    # Given up: the failing event and the poison record, each alone; the good ones are not.
    bodies = sorted(body for body, _ in seen.dlq)
    assert bodies == sorted([bad.model_dump_json().encode(), b'{"not": "an envelope"}'])
    assert _groups(seen.dlq) == ["test-lethe-intake", "test-lethe-intake"]
