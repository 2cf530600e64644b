"""The notifier's leased claim, its pure rules: what a claim attempt means to the sender,
and a lease that outlasts any attempt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.notifier import lease
from services.notifier.lease import Claim

pytestmark = pytest.mark.unit


def test_a_claim_taken_is_ours_to_send() -> None:
    assert lease.outcome(True, None) is Claim.GO


def test_a_claim_not_taken_is_a_redelivery_when_sent_else_someone_elses() -> None:
    assert lease.outcome(False, "sent") is Claim.DONE
    assert lease.outcome(False, "sending") is Claim.BUSY
    assert lease.outcome(False, None) is Claim.BUSY


def test_the_lease_outlasts_an_attempt() -> None:
    assert lease.seconds(10, 5) == 15
    assert lease.seconds(15, 30) > 15


def test_a_failed_delivery_backs_off_doubling_up_to_the_most() -> None:
    assert [lease.backoff_after(n, 1, 5) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_a_failed_delivery_is_given_up_out_of_attempts_or_past_its_deadline() -> None:
    now = datetime.now(UTC)
    later = now + timedelta(seconds=10)
    assert lease.give_up_reason(2, 3, now, later) is None
    assert lease.give_up_reason(3, 3, now, later) == "out of attempts"
    assert lease.give_up_reason(1, 3, later, now) == "past its deadline"
    assert lease.give_up_reason(1, 3, later, None) is None
