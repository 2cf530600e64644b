"""The privacy centre's rules without infrastructure: each refusal names its rule, the code
is sealed for the notifier and stored only keyed, and the mail carries the code."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.intake.domain import privacy as rules
from services.notifier import domain as notifier
from services.notifier.templates import render
from shared import privacy_codes as codes
from shared.crypto import CryptoError
from shared.events.notifications import SendEmail

pytestmark = pytest.mark.unit
KEY = b"k" * 32
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LIMITS = rules.Limits(
    ttl_seconds=900, max_attempts=5, per_address=3, per_source=20, window_seconds=3600
)


def _row(**over: object) -> dict[str, object]:
    cid = uuid.UUID(int=1)
    row: dict[str, object] = {
        "subject_hash": "s",
        "code_hash": codes.code_hash(KEY, cid, "12345678"),
        "used_at": None,
        "attempts": 0,
        "expires_at": NOW + timedelta(minutes=15),
    }
    return row | over


def _check(row: dict[str, object] | None, code: str = "12345678", **kw: object) -> str | None:
    refusal = rules.check_code(
        row,
        subject_hash=str(kw.get("subject_hash", "s")),
        code_hash=codes.code_hash(KEY, uuid.UUID(int=1), code),
        now=kw.get("now", NOW),  # type: ignore[arg-type]
        max_attempts=5,
    )
    return None if refusal is None else f"{refusal.status} {refusal.reason}"


def test_each_refusal_names_its_rule() -> None:
    assert _check(_row()) is None
    assert _check(_row(), "87654321") == "422 wrong_code"
    assert _check(_row(), subject_hash="other") == "422 wrong_code"  # another address
    assert _check(_row(attempts=4), "87654321") == "429 too_many_attempts"  # the last one
    assert _check(_row(attempts=5)) == "429 too_many_attempts"  # dead, even the right code
    assert _check(_row(), now=NOW + timedelta(minutes=15)) == "410 expired_code"
    assert _check(_row(used_at=NOW)) == "409 replayed_code"
    assert _check(None) == "404 unknown_challenge"


def test_rate_limits_per_address_then_per_source() -> None:
    assert rules.rate_refusal(2, 19, LIMITS) is None
    address = rules.rate_refusal(3, 0, LIMITS)
    source = rules.rate_refusal(0, 20, LIMITS)
    assert address is not None and address.reason == "rate_limited_address"
    assert source is not None and source.reason == "rate_limited_source"
    assert address.status == source.status == 429 and address.retry_after == 3600


def test_codes_are_random_digits_stored_keyed_and_sealed_for_one_challenge() -> None:
    made = {codes.new_code() for _ in range(200)}
    assert len(made) > 190 and all(len(c) == codes.DIGITS and c.isdigit() for c in made)
    cid, other = uuid.uuid4(), uuid.uuid4()
    assert codes.code_hash(KEY, cid, "12345678") != codes.code_hash(KEY, other, "12345678")
    key = codes.code_key(KEY)
    assert key != KEY
    sealed = codes.seal_code(key, cid, "12345678")
    assert "12345678" not in sealed
    assert codes.open_code(key, cid, sealed) == "12345678"
    with pytest.raises(CryptoError):
        codes.open_code(key, other, sealed)  # bound to its challenge


def test_the_notifier_opens_the_code_for_the_mail_and_the_audit_never_sees_it() -> None:
    cid = uuid.uuid4()
    cmd = SendEmail(
        template="privacy_code",
        to="ann@example.com",
        audience="requester",
        context={
            "challenge_id": str(cid),
            "code_sealed": codes.seal_code(codes.code_key(KEY), cid, "24681357"),
            "minutes": 15,
            "what": rules.WHAT["export"],
            "org_name": "Acme",
        },
    )
    audit = cmd.audit_details()
    assert "ann@example.com" not in str(audit) and audit["context"]["code_sealed"] == "(redacted)"
    opened = notifier.opened(cmd, codes.code_key(KEY))
    r = render(opened.template, opened.context)
    assert "24681357" in r.text and "24681357" not in r.subject and "Acme" in r.subject
    assert "15 minutes" in r.text and "$" not in r.text + r.html


def test_slugs_and_masked_addresses() -> None:
    assert rules.slug_problem("acme-shop") is None
    for bad in ("", "-acme", "Acme", "a_b", "a" * 64):
        assert rules.slug_problem(bad)
    assert rules.default_slug("org-1") == "org-1" and rules.default_slug("Org 1") is None
    assert rules.mask_email("ann.smith@example.com") == "a••••••@example.com"
