"""Legal deadlines of data-subject requests, as the law counts them. Pure: no I/O, no clock.

- **GDPR** (Art. 12(3)): answer "within one month of receipt". A month is a calendar month
  with the end-of-month rule (Regulation 1182/71, Art. 3(2)(c)): the same day number next
  month, or that month's last day when it has no such day: 31 January -> 28 February (29 in
  a leap year), 1 February -> 1 March. The period "may be extended by two further months
  where necessary", once, counted from the original due date, and the requester must be
  told "within one month of receipt of the request, together with the reasons": so only
  before the first due date, and with a reason.
- **CCPA** (Cal. Civ. Code 1798.130(a)(2); 11 CCR 7021(b)): 45 calendar days from receipt,
  extendable once by up to 45 more calendar days (90 in all) with notice and an explanation
  given within the first 45 days. 11 CCR 7021(a): receipt is confirmed within 10 business
  days (weekends and the configured holidays do not count).
- **custom**: `due_in_days` calendar days, set by the caller; not extendable.

Due dates keep the time of day of receipt (UTC): never later than the law allows.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

GDPR_SOURCE = "GDPR Art. 12(3)"
CCPA_SOURCE = "CCPA (Cal. Civ. Code 1798.130, 11 CCR 7021)"
CCPA_DAYS = 45
CCPA_EXTENSION_DAYS = 45
GDPR_EXTENSION_MONTHS = 2
RECEIPT_BUSINESS_DAYS = 10


class DeadlineRuleBroken(Exception):
    """An extension the law does not allow. `status` is 409 (too late, already extended,
    not extendable) or 422 (too long, no reason); the message names the rule."""

    def __init__(self, status: int, rule: str, message: str) -> None:
        super().__init__(f"{rule}: {message}")
        self.status, self.rule = status, rule


def add_months(at: datetime, months: int) -> datetime:
    """The same day `months` calendar months later, or that month's last day (end-of-month
    rule); the time of day is kept."""
    index = at.month - 1 + months
    year, month = at.year + index // 12, index % 12 + 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)


def due_at(received_at: datetime, regulation: str, custom_days: int | None = None) -> datetime:
    if regulation == "gdpr":
        return add_months(received_at, 1)
    if regulation == "ccpa":
        return received_at + timedelta(days=CCPA_DAYS)
    if regulation == "custom" and custom_days:
        return received_at + timedelta(days=custom_days)
    raise ValueError(f"no deadline rule for regulation {regulation!r}")


def max_extended_due(regulation: str, due: datetime) -> datetime | None:
    """The latest extended due date the law allows, or None when not extendable."""
    if regulation == "gdpr":
        return add_months(due, GDPR_EXTENSION_MONTHS)
    if regulation == "ccpa":
        return due + timedelta(days=CCPA_EXTENSION_DAYS)
    return None


def source(regulation: str) -> str:
    return {"gdpr": GDPR_SOURCE, "ccpa": CCPA_SOURCE}.get(regulation, regulation)


@dataclass(frozen=True)
class Extension:
    """What an extension asks: a number of days, or (GDPR) of calendar months."""

    days: int | None = None
    months: int | None = None
    reason: str | None = None


def _check_may_extend(
    rule: str, due: datetime, already_extended: datetime | None, ask: Extension, now: datetime
) -> None:
    """Once, before the original due date, with a reason, as days or as months."""
    if already_extended is not None:
        raise DeadlineRuleBroken(
            409,
            rule,
            f"one extension only: the deadline was already extended once, to "
            f"{already_extended:%Y-%m-%d}",
        )
    if now > due:
        raise DeadlineRuleBroken(
            409,
            rule,
            f"an extension must be notified before the original due date "
            f"({due:%Y-%m-%d %H:%M} UTC), which has passed",
        )
    if not ask.reason or len(ask.reason.strip()) < 3:
        raise DeadlineRuleBroken(
            422, rule, "an extension needs its reason, which is sent to the requester"
        )
    if (ask.days is None) == (ask.months is None):
        raise DeadlineRuleBroken(422, rule, "give the extension as days or as months, not both")


def extended_due(
    regulation: str,
    due: datetime,
    already_extended: datetime | None,
    ask: Extension,
    now: datetime,
) -> datetime:
    """The new due date, or DeadlineRuleBroken naming the rule."""
    rule = source(regulation)
    limit = max_extended_due(regulation, due)
    if limit is None:
        raise DeadlineRuleBroken(
            409, "custom deadline", f"a {regulation} deadline cannot be extended"
        )
    _check_may_extend(rule, due, already_extended, ask, now)
    if ask.months is not None:
        if regulation != "gdpr":
            raise DeadlineRuleBroken(
                422, rule, f"extend by days (at most {CCPA_EXTENSION_DAYS}), not months"
            )
        if not 1 <= ask.months <= GDPR_EXTENSION_MONTHS:
            raise DeadlineRuleBroken(
                422, rule, f"at most {GDPR_EXTENSION_MONTHS} further months, not {ask.months}"
            )
        return add_months(due, ask.months)
    assert ask.days is not None
    if ask.days < 1:
        raise DeadlineRuleBroken(422, rule, "an extension is at least 1 day")
    new = due + timedelta(days=ask.days)
    if new > limit:
        most = (limit - due).days
        what = (
            "at most two further calendar months"
            if regulation == "gdpr"
            else f"at most {CCPA_EXTENSION_DAYS} further days"
        )
        raise DeadlineRuleBroken(
            422,
            rule,
            f"{what}: until {limit:%Y-%m-%d} ({most} days from the due date "
            f"{due:%Y-%m-%d}), not {ask.days} days",
        )
    return new


def is_business_day(day: date, holidays: Iterable[date] = ()) -> bool:
    return day.weekday() < 5 and day not in set(holidays)


def add_business_days(start: datetime, n: int, holidays: Iterable[date] = ()) -> datetime:
    """The n-th business day after `start` (weekends and holidays skipped), same time."""
    off = set(holidays)
    at, left = start, n
    while left > 0:
        at += timedelta(days=1)
        if is_business_day(at.date(), off):
            left -= 1
    return at


def receipt_confirmation_due(
    received_at: datetime, regulation: str, holidays: Iterable[date] = ()
) -> datetime | None:
    """When the receipt must be confirmed by (CCPA: 10 business days), or None."""
    if regulation != "ccpa":
        return None
    return add_business_days(received_at, RECEIPT_BUSINESS_DAYS, holidays)
