"""The intake service layer's pure parts: the unit of work's commit-then-wake rule (on a fake
connection), how refusals become typed errors, and how each entry point words them."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.intake.auth import RateLimiter
from services.intake.domain import Caller, Refused
from services.intake.http.opendsr import _refusal
from services.intake.service import errors, opendsr, orgs, requests
from services.intake.service.retention import validate
from services.intake.service.uow import UnitOfWork
from shared import lifecycle
from shared.events import Actor, make_event
from shared.events.progress import JobFailed

pytestmark = pytest.mark.unit
OWNER = Caller(
    org_id="o1", org_name="Acme", role="owner", key_id=uuid.uuid4(), recovery_window_days=7
)


class FakeTransaction:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def start(self) -> None:
        self.log.append("begin")

    async def commit(self) -> None:
        self.log.append("commit")

    async def rollback(self) -> None:
        self.log.append("rollback")


class FakeConn:
    def __init__(self) -> None:
        self.log: list[str] = []

    def transaction(self) -> FakeTransaction:
        return FakeTransaction(self.log)

    async def execute(self, sql: str, *args: Any) -> str:
        self.log.append(sql.split()[2])  # the table written: INSERT INTO <table>
        return "INSERT 0 1"


class FakePool:
    def __init__(self) -> None:
        self.conn, self.released = FakeConn(), 0

    async def acquire(self) -> FakeConn:
        return self.conn

    async def release(self, conn: FakeConn) -> None:
        self.released += 1


def _uow() -> tuple[UnitOfWork, FakePool, list[str]]:
    pool, woken = FakePool(), []
    return UnitOfWork(pool, lambda: woken.append("wake")), pool, woken


ENV = make_event(JobFailed(reason="x"), actor=Actor(kind="service", id="t"), job_id=uuid.uuid4())


async def test_the_relay_is_woken_after_the_commit_of_outbox_rows() -> None:
    uow, pool, woken = _uow()
    async with uow:
        await uow.emit("lethe.audit.v1", ENV, timeline=True)
        assert woken == []  # not before the commit: the relay would find nothing yet
    assert pool.conn.log == ["begin", "lethe.outbox", "lethe.job_events", "commit"]
    assert woken == ["wake"] and pool.released == 1


async def test_nothing_is_woken_without_outbox_rows_or_after_a_rollback() -> None:
    uow, pool, woken = _uow()
    async with uow:
        pass
    with pytest.raises(errors.NotFound):
        async with uow:  # entered again after it exited
            await uow.emit("lethe.audit.v1", ENV, timeline=False)
            raise errors.NotFound("no job")
    assert pool.conn.log == ["begin", "commit", "begin", "lethe.outbox", "rollback"]
    assert woken == [] and pool.released == 2


async def test_a_unit_of_work_is_not_entered_twice_at_once() -> None:
    uow, _, _ = _uow()
    with pytest.raises(RuntimeError):
        uow.conn  # noqa: B018 (outside `async with`)
    async with uow:
        with pytest.raises(RuntimeError, match="already open"):
            await uow.__aenter__()


@pytest.mark.parametrize(
    "refusal, kind",
    [(Refused(403, "owners only"), errors.Forbidden), (Refused(422, "x"), errors.Invalid)],
)
def test_domain_refusals_keep_their_status_and_reason(refusal: Refused, kind: type) -> None:
    exc = errors.refused(refusal)
    assert isinstance(exc, kind)
    assert (exc.status, exc.message) == (refusal.status, refusal.reason)


def test_a_command_the_state_does_not_allow_is_a_409_naming_the_state() -> None:
    exc = errors.NotAllowedNow(lifecycle.IllegalTransition("cancel", "completed"))
    assert exc.status == 409 and exc.job_status == "completed"
    assert exc.message.startswith("cannot cancel a job that is completed")


def test_the_rate_limit_says_when_to_retry() -> None:
    clock = [0.0]
    limiter = RateLimiter(per_minute=60, burst=1, clock=lambda: clock[0])
    requests.take_turn(limiter, OWNER)
    with pytest.raises(errors.RateLimited) as got:
        requests.take_turn(limiter, OWNER)
    assert (got.value.status, got.value.retry_after) == (429, 1)
    clock[0] = 1.0
    requests.take_turn(limiter, OWNER)  # a token back after a second


def test_another_organisations_settings_are_refused_and_audited_as_such() -> None:
    orgs.own_org(OWNER, "o1", "retention policy")
    with pytest.raises(errors.Forbidden) as got:
        orgs.own_org(OWNER, "o2", "retention policy")
    assert got.value.message == "your key belongs to organisation o1, not o2"
    assert got.value.audit_reason == "retention policy of another organisation"


def test_retention_changes_list_every_problem_by_category() -> None:
    known = {"messages": 30, "logs": 14}
    assert validate({"messages": 7}, known) == {"messages": 7}
    with pytest.raises(errors.Invalid) as got:
        validate({"messages": 0, "logs": True, "nope": 3}, known)
    assert got.value.status == 422
    assert got.value.errors == [
        "messages: 0 is outside the range 1..3650 days",
        "logs: must be a whole number of days between 1 and 3650",
        "nope: unknown category (one of messages, logs)",
    ]
    assert got.value.message == "; ".join(got.value.errors)
    with pytest.raises(errors.Invalid, match="body: an object"):
        validate([], known)


async def test_a_bad_upstream_message_is_rejected_before_the_database() -> None:
    uow, pool, woken = _uow()
    with pytest.raises(requests.Rejected) as got:
        await requests.submit_upstream(uow, b'{"org_id": 1}', None)  # type: ignore[arg-type]
    assert got.value.org_id is None and got.value.rejection.reason.startswith("invalid message")
    assert pool.conn.log == [] and woken == []


@pytest.mark.parametrize(
    "exc, status, reason",
    [
        (errors.NotFound("no request"), 404, "NotFound"),
        (errors.DuplicateRequest("r1", uuid.uuid4()), 409, "Conflict"),
        (errors.RateLimited(2.2), 429, "RateLimited"),
        (errors.Invalid("subject: required"), 400, "IllegalArgumentException"),
        (errors.Forbidden("viewers cannot submit requests"), 403, "IllegalArgumentException"),
        (opendsr.NotPending("r1", "completed"), 400, "IllegalStateException"),
        (opendsr.Handed("r1"), 400, "IllegalStateException"),
    ],
)
def test_opendsr_words_each_refusal_in_its_error_shape(
    exc: errors.ServiceError, status: int, reason: str
) -> None:
    got = _refusal(exc)
    assert (got.status, got.reason) == (status, reason)
    if isinstance(exc, errors.RateLimited):
        assert got.headers == {"Retry-After": "2"}
    if isinstance(exc, errors.DuplicateRequest):
        assert got.message == "subject_request_id r1 was already used for a different request"


def test_only_pending_erasures_can_be_cancelled_over_opendsr() -> None:
    assert opendsr.CANCELLABLE
    assert set(opendsr.CANCELLABLE) <= set(lifecycle.COMMANDS["cancel"])
    assert all(s not in opendsr.CANCELLABLE for s in lifecycle.FINAL)
