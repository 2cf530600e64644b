"""A claim with a lease: the one way the notifier takes something to send, for emails and
webhooks (`lethe.deliveries`) and OpenDSR callbacks (`lethe.opendsr_callbacks`) alike.

Claiming a row sets it `sending`, stamps `claimed_at` and counts an attempt. The claim is
its sender's for the lease; a row still `sending` after the lease ran out was left by a
sender that died mid-send (or could not record the outcome), and is claimable again, so
the delivery is taken over and sent. Finishing (sent, failed, released) clears the claim.

A queued delivery (OpenDSR callback, webhook) that failed is pending again after a backoff,
until it is out of attempts or past its deadline.

Pure: the SQL fragments the claims in the stores are built from, and the decisions.
"""

from __future__ import annotations

import enum
from datetime import datetime


class Claim(enum.Enum):
    GO = "go"  # ours to send now
    DONE = "done"  # already sent: a redelivery
    BUSY = "busy"  # another sender holds it, its lease still running


def seconds(attempt_timeout: float, margin: float) -> float:
    """A lease longer than any attempt can take: a live sender never loses its claim."""
    return attempt_timeout + margin


def take(alias: str) -> str:
    """SET list of a claim (`alias`: the claimed row's name in the statement)."""
    return f"status = 'sending', claimed_at = now(), attempts = {alias}.attempts + 1"


def ran_out(alias: str, lease_param: str) -> str:
    """The row is claimed, but its lease (seconds, in `lease_param`) has run out."""
    return (
        f"({alias}.status = 'sending' "
        f"AND {alias}.claimed_at < now() - make_interval(secs => {lease_param}))"
    )


def claimable(alias: str, ready: str, lease_param: str) -> str:
    """`ready` (a condition on `alias`: waiting to be sent), or taken over after its lease."""
    return f"(({ready}) OR {ran_out(alias, lease_param)})"


def outcome(claimed: bool, status: str | None) -> Claim:
    """What a claim attempt means for the sender, from whether it took the row and, when it
    did not, the row's status."""
    if claimed:
        return Claim.GO
    return Claim.DONE if status == "sent" else Claim.BUSY


def backoff_after(attempts: int, first: float, most: float) -> float:
    """The wait before the next attempt: `first`, doubling per attempt, at most `most`."""
    return float(min(most, first * 2 ** max(0, attempts - 1)))


def give_up_reason(
    attempts: int, max_attempts: int, retry_at: datetime, deadline: datetime | None
) -> str | None:
    """Why a failed delivery is not retried (None: it is, at `retry_at`)."""
    if attempts >= max_attempts:
        return "out of attempts"
    if deadline is not None and retry_at >= deadline:
        return "past its deadline"
    return None
