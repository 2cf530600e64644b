"""Legal deadlines across month ends and leap years (GDPR Art. 12(3); CCPA 11 CCR 7021)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.intake.deadlines import (
    DeadlineRuleBroken,
    Extension,
    add_business_days,
    add_months,
    due_at,
    extended_due,
    max_extended_due,
    receipt_confirmation_due,
)

pytestmark = pytest.mark.unit


def at(y: int, m: int, d: int, h: int = 10) -> datetime:
    return datetime(y, m, d, h, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "received, due",
    [
        (at(2026, 1, 31), at(2026, 2, 28)),  # no 31 February: the month's last day
        (at(2028, 1, 31), at(2028, 2, 29)),  # leap year
        (at(2100, 1, 31), at(2100, 2, 28)),  # not a leap year (divisible by 100)
        (at(2000, 1, 30), at(2000, 2, 29)),  # leap year (divisible by 400)
        (at(2026, 2, 1), at(2026, 3, 1)),
        (at(2026, 2, 28), at(2026, 3, 28)),
        (at(2028, 2, 29), at(2028, 3, 29)),
        (at(2026, 3, 31), at(2026, 4, 30)),
        (at(2026, 8, 31), at(2026, 9, 30)),
        (at(2026, 12, 15), at(2027, 1, 15)),  # across the year end
        (at(2026, 12, 31), at(2027, 1, 31)),
    ],
)
def test_gdpr_is_one_calendar_month_with_the_end_of_month_rule(
    received: datetime, due: datetime
) -> None:
    assert due_at(received, "gdpr") == due


def test_months_roll_over_the_year_and_keep_the_time_of_day() -> None:
    assert add_months(at(2027, 11, 30, 23), 3) == at(2028, 2, 29, 23)
    assert add_months(at(2026, 10, 31), 14) == at(2027, 12, 31)


def test_ccpa_is_45_calendar_days_and_custom_stays() -> None:
    assert due_at(at(2026, 1, 31), "ccpa") == at(2026, 3, 17)
    assert due_at(at(2028, 1, 31), "ccpa") == at(2028, 3, 16)  # 29 February counts
    assert due_at(at(2026, 1, 31), "custom", 10) == at(2026, 2, 10)


@pytest.mark.parametrize(
    "due, limit",
    [
        (at(2026, 2, 28), at(2026, 4, 28)),
        (at(2025, 12, 31), at(2026, 2, 28)),  # two further months end on the month's last day
        (at(2027, 12, 31), at(2028, 2, 29)),
        (at(2026, 11, 30), at(2027, 1, 30)),
    ],
)
def test_gdpr_extension_is_two_further_calendar_months(due: datetime, limit: datetime) -> None:
    assert max_extended_due("gdpr", due) == limit
    now = due - timedelta(days=1)
    ask = Extension(months=2, reason="many systems involved")
    assert extended_due("gdpr", due, None, ask, now) == limit
    days = (limit - due).days
    assert extended_due("gdpr", due, None, Extension(days=days, reason="r r r"), now) == limit
    with pytest.raises(DeadlineRuleBroken, match=r"GDPR Art\. 12\(3\).*two further") as err:
        extended_due("gdpr", due, None, Extension(days=days + 1, reason="r r r"), now)
    assert err.value.status == 422 and f"until {limit:%Y-%m-%d}" in str(err.value)
    with pytest.raises(DeadlineRuleBroken, match="at most 2 further months") as err:
        extended_due("gdpr", due, None, Extension(months=3, reason="r r r"), now)
    assert err.value.status == 422


def test_ccpa_extension_is_up_to_45_days() -> None:
    due, now = at(2026, 3, 17), at(2026, 3, 1)
    ok = extended_due("ccpa", due, None, Extension(days=45, reason="complex"), now)
    assert ok == due + timedelta(days=45) == max_extended_due("ccpa", due)
    with pytest.raises(DeadlineRuleBroken, match=r"11 CCR 7021.*45 further days") as err:
        extended_due("ccpa", due, None, Extension(days=46, reason="complex"), now)
    assert err.value.status == 422
    with pytest.raises(DeadlineRuleBroken, match="by days"):
        extended_due("ccpa", due, None, Extension(months=1, reason="complex"), now)


@pytest.mark.parametrize(
    "regulation, extended, now_offset, ask, status, words",
    [
        ("gdpr", None, timedelta(seconds=1), Extension(days=5, reason="x y z"), 409, "passed"),
        ("ccpa", None, timedelta(days=3), Extension(days=5, reason="x y z"), 409, "passed"),
        ("gdpr", at(2026, 4, 1), -timedelta(days=1), Extension(days=1, reason="x y"), 409, "once"),
        ("gdpr", None, -timedelta(days=1), Extension(days=5), 422, "reason"),
        ("ccpa", None, -timedelta(days=1), Extension(days=5, reason="  "), 422, "reason"),
        ("gdpr", None, -timedelta(days=1), Extension(reason="x y z"), 422, "days or"),
        ("custom", None, -timedelta(days=1), Extension(days=1, reason="x y z"), 409, "custom"),
    ],
)
def test_an_extension_the_law_does_not_allow_names_the_rule(
    regulation: str,
    extended: datetime | None,
    now_offset: timedelta,
    ask: Extension,
    status: int,
    words: str,
) -> None:
    due = at(2026, 3, 1)
    with pytest.raises(DeadlineRuleBroken) as err:
        extended_due(regulation, due, extended, ask, due + now_offset)
    assert err.value.status == status and words in str(err.value)
    if regulation != "custom":
        assert str(err.value).startswith(("GDPR Art. 12(3)", "CCPA (Cal. Civ. Code 1798.130"))


def test_business_days_skip_weekends_and_holidays() -> None:
    friday = at(2026, 12, 18)
    assert add_business_days(friday, 1) == at(2026, 12, 21)  # Monday
    assert add_business_days(friday, 10) == at(2027, 1, 1)
    holidays = [date(2026, 12, 24), date(2026, 12, 25), date(2027, 1, 1)]
    assert add_business_days(friday, 10, holidays) == at(2027, 1, 6)
    # Received on a Saturday: the count starts on Monday.
    assert receipt_confirmation_due(at(2026, 1, 3), "ccpa") == at(2026, 1, 16)
    assert receipt_confirmation_due(at(2026, 1, 3), "gdpr") is None
