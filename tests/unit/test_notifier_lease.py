"""The notifier's leased claim, its pure rules: what a claim attempt means to the sender,
and a lease that outlasts any attempt."""

from __future__ import annotations

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
