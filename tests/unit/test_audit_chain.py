from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from services.auditor.domain import GENESIS, chain, check_row, details_of, next_row
from shared.events import Actor, make_event
from shared.events.jobs import ErasureRequested, Subject
from shared.events.notifications import SendEmail

pytestmark = pytest.mark.unit
ACTOR = Actor(kind="service", id="test")


def _erasure() -> ErasureRequested:
    return ErasureRequested(
        scope="subject",
        subject=Subject(email="ann@example.com"),
        requester_email="dpo@example.com",
        regulation="gdpr",
        due_at=datetime(2030, 1, 1, tzinfo=UTC),
        recovery_window_days=7,
        channel="http",
    )


def _chain(n: int) -> list:
    rows, prev, seq = [], GENESIS, 0
    for _ in range(n):
        row = next_row(
            make_event(_erasure(), actor=ACTOR, org_id="o"),
            prev_seq=seq,
            prev_hash=prev,
            recorded_at=datetime.now(UTC),
        )
        rows.append(row)
        prev, seq = row.hash, row.seq
    return rows


def test_a_valid_chain_checks_out() -> None:
    rows = _chain(3)
    prev = GENESIS
    for i, row in enumerate(rows, start=1):
        assert check_row(row, prev, i) is None
        prev = row.hash


def test_an_edited_row_is_named() -> None:
    rows = _chain(3)
    tampered = dataclasses.replace(rows[1], details={**rows[1].details, "regulation": "ccpa"})
    assert check_row(tampered, rows[0].hash, 2) == "hash does not match the row's contents"


def test_a_removed_row_breaks_the_link() -> None:
    rows = _chain(3)
    assert check_row(rows[2], rows[0].hash, 2) is not None


def test_audit_details_never_hold_personal_data() -> None:
    env = make_event(_erasure(), actor=ACTOR, org_id="o")
    details = details_of(env)
    assert "subject" not in details and "requester_email" not in details
    assert "ann@example.com" not in str(details) and "dpo@example.com" not in str(details)
    mail = make_event(SendEmail(template="job_completed", to="ann@example.com"), actor=ACTOR)
    assert "ann@example.com" not in str(details_of(mail))


def test_a_batch_chains_as_its_events_would_one_by_one() -> None:
    envs = [make_event(_erasure(), actor=ACTOR, org_id="o") for _ in range(5)]
    at = datetime.now(UTC)
    head = _chain(2)[-1]
    rows = chain(envs, prev_seq=head.seq, prev_hash=head.hash, recorded_at=at)
    prev, seq = head.hash, head.seq
    for env, row in zip(envs, rows, strict=True):
        assert row == next_row(env, prev_seq=seq, prev_hash=prev, recorded_at=at)
        assert check_row(row, prev, seq + 1) is None
        prev, seq = row.hash, row.seq
    assert [r.seq for r in rows] == [3, 4, 5, 6, 7]
