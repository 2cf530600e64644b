"""The compliance report's pure parts: the month range's rules, the figures put together from
the store's rows (quiet months, values beyond the known ones), the CSV, and the charts'
geometry."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.intake.domain import Refused, reports
from services.intake.web import charts

pytestmark = pytest.mark.unit
NOW = datetime(2026, 1, 15, 12, tzinfo=UTC)


def test_the_default_range_is_the_twelve_months_up_to_this_one() -> None:
    rng = reports.month_range(None, None, date(2026, 1, 15))
    assert rng.months() == [f"2025-{m:02d}" for m in range(2, 13)] + ["2026-01"]
    assert rng.start == datetime(2025, 2, 1, tzinfo=UTC)
    assert rng.end == datetime(2026, 2, 1, tzinfo=UTC)
    only_to = reports.month_range(None, "2024-03", date(2026, 1, 15))
    assert only_to.months()[0] == "2023-04" and only_to.months()[-1] == "2024-03"


def test_a_range_across_december_ends_at_the_next_january() -> None:
    rng = reports.month_range("2025-11", "2025-12", date(2026, 1, 1))
    assert rng.months() == ["2025-11", "2025-12"]
    assert rng.end == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("first", "last", "rule"),
    [
        ("2025-00", "2025-01", "from: give a month as YYYY-MM"),
        ("2025-01", "25-01", "to: give a month as YYYY-MM"),
        ("1969-12", "1970-01", "from: give a month as YYYY-MM, from 1970-01 to 9998-12"),
        ("9999-01", "9999-02", "from: give a month as YYYY-MM"),
        ("2025-02", "2025-01", "from (2025-02) must not be after to (2025-01)"),
        ("2024-01", "2026-01", "the report covers at most 24 months"),
    ],
)
def test_a_bad_range_is_refused_naming_its_rule(first: str, last: str, rule: str) -> None:
    with pytest.raises(Refused) as refused:
        reports.month_range(first, last, NOW.date())
    assert refused.value.status == 422 and refused.value.reason.startswith(rule)


def _stats(month: str | None, **counts: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(reports.COUNTS, 0)
    row.update(month=month, dimension=None, key=None, median_seconds=None, p90_seconds=None)
    row.update(counts)
    return row


def _split(month: str | None, dimension: str, key: str, n: int) -> dict[str, Any]:
    return {"month": month, "dimension": dimension, "key": key, "requests": n}


def test_figures_fill_quiet_months_and_keep_unknown_values() -> None:
    rng = reports.month_range("2025-01", "2025-03", NOW.date())
    rows = [
        _stats("2025-02", requests=3, closed=2, on_time=1, late=2, median_seconds=129600.0,
               p90_seconds=86400 * 9.99, open=1, overdue=1),
        _split("2025-02", "type", "erasure", 3),
        _split("2025-02", "channel", "bulk", 2),
        _split("2025-02", "channel", "kafka", 1),
        _split("2025-02", "regulation", "gdpr", 3),
        _stats(None, requests=3, closed=2, on_time=1, late=2, open=1, overdue=1),
        _split(None, "channel", "bulk", 2),
    ]  # fmt: skip
    report = reports.compile_report("org-1", rng, rows, NOW)
    jan, feb, _ = report.months
    assert jan.requests == 0 and jan.on_time_rate is None and jan.median_days_to_close is None
    assert jan.by_channel == {"http": 0, "kafka": 0, "opendsr": 0, "bulk": 0}
    assert feb.by_channel == {"http": 0, "kafka": 1, "opendsr": 0, "bulk": 2}
    assert feb.median_days_to_close == 1.5 and feb.p90_days_to_close == 9.99
    assert feb.on_time_rate == 0.3333
    assert report.keys("channel") == ["http", "kafka", "opendsr", "bulk"]
    lines = reports.as_csv(report).splitlines()
    assert lines[0].split(",")[2:9] == [
        "type:erasure", "type:export", "channel:http", "channel:kafka", "channel:opendsr",
        "channel:bulk", "regulation:gdpr",
    ]  # fmt: skip
    assert lines[1].startswith("2025-01,0,0,0,0,0,0,0,0,0,0,0,,,0,0,,0,0,0")
    assert lines[-1].startswith("total,3,")
    body = reports.as_json(report)
    assert (body["from"], body["to"], len(body["months"])) == ("2025-01", "2025-03", 3)


def test_file_names_keep_to_safe_characters() -> None:
    rng = reports.month_range("2025-01", "2025-02", NOW.date())
    report = reports.compile_report('org "x"/y', rng, [], NOW)
    assert reports.file_name(report, "csv") == "lethe-compliance-org__x__y-2025-01-2025-02.csv"


@pytest.mark.parametrize(
    ("n", "top", "step"),
    [(0, 1, 1), (1, 5, 1), (5, 5, 1), (6, 6, 2), (7, 8, 2), (11, 15, 5), (73, 80, 20)],
)
def test_the_axis_top_is_a_round_number(n: int, top: int, step: int) -> None:
    assert charts.nice_max(n) == (top, step)


def _report(first: str, last: str, per_month: dict[str, tuple[int, int, int, int]]) -> Any:
    """per month: (erasures, exports, on time, late)."""
    rng = reports.month_range(first, last, NOW.date())
    rows = []
    for month, (erasures, exports, on_time, late) in per_month.items():
        rows.append(_stats(month, requests=erasures + exports, on_time=on_time, late=late))
        rows += [
            _split(month, "type", "erasure", erasures),
            _split(month, "type", "export", exports),
        ]
    return reports.compile_report("org-1", rng, rows, NOW)


def test_bars_stack_by_type_in_proportion() -> None:
    report = _report("2025-01", "2025-03", {"2025-01": (3, 1, 0, 0), "2025-03": (0, 2, 0, 0)})
    c = charts.requests_chart(report, {"erasure": "Erasure", "export": "Export"})
    jan, feb, mar = c.bars
    assert [s.height for s in jan.segments] == [
        pytest.approx(3 * mar.segments[0].height / 2),
        pytest.approx(mar.segments[0].height / 2),
    ]
    assert feb.segments == [] and (jan.total, feb.total) == ("4", "0")
    assert jan.segments[0].y + jan.segments[0].height == pytest.approx(c.base)  # from the axis
    assert [t.text for t in c.ticks] == ["0", "1", "2", "3", "4", "5"]
    assert "Jan 2025: 4 (3 erasure, 1 export); Feb 2025: 0; Mar 2025: 2 (2 export)" in c.desc


def test_the_line_breaks_where_a_month_has_no_rate() -> None:
    report = _report(
        "2025-01", "2025-04",
        {"2025-01": (1, 0, 1, 0), "2025-02": (2, 0, 1, 1), "2025-04": (1, 0, 0, 1)},
    )  # fmt: skip
    c = charts.on_time_chart(report)
    assert [len(run) for run in c.lines] == [2, 1]
    top, half = c.lines[0][0].y, c.lines[0][1].y
    assert top == charts.TOP and half == pytest.approx(charts.TOP + charts.PLOT_H / 2)
    assert c.lines[1][0].y == pytest.approx(c.base) and c.lines[1][0].text == "0.0 %"
    assert "Mar 2025: no request due yet" in c.desc


def test_two_years_of_months_get_twelve_labels_with_their_years() -> None:
    report = _report("2024-02", "2026-01", {})
    c = charts.requests_chart(report, {})
    assert len(c.labels) == 12 and c.bars[0].total == ""
    assert [(lb.month, lb.year) for lb in c.labels[:3]] == [
        ("Feb", "2024"),
        ("Apr", ""),
        ("Jun", ""),
    ]
    # Every second month from Feb 2024: Feb 2025 is the first label of 2025, Jan 2026 has none.
    assert [(lb.month, lb.year) for lb in c.labels if lb.year] == [("Feb", "2024"), ("Feb", "2025")]
