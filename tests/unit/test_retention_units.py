"""Pure pieces of retention: the cron schedule's previous period, the data map's retention
fields (checked when the map loads), and the policy categories it yields."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.intake.retention import Cron, CronError, categories
from shared.datamap import DataMapError, load_datamap

pytestmark = pytest.mark.unit
SAMPLE = Path(__file__).resolve().parents[2] / "deploy/local/sample/datamap.yaml"


def at(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expr", "now", "previous"),
    [
        ("0 3 * * *", at(2026, 11, 23, 11, 0), at(2026, 11, 23, 3, 0)),
        ("0 3 * * *", at(2026, 11, 23, 2, 59), at(2026, 11, 22, 3, 0)),
        ("0 3 * * *", at(2026, 11, 23, 3, 0), at(2026, 11, 23, 3, 0)),
        ("*/15 * * * 1-5", at(2026, 11, 22, 11, 7), at(2026, 11, 20, 23, 45)),  # Sunday
        ("30 2 1 * *", at(2026, 3, 15, 0, 0), at(2026, 3, 1, 2, 30)),
        ("0 0 * * 0", at(2026, 11, 25, 0, 0), at(2026, 11, 22, 0, 0)),
        ("0 0 * * 7", at(2026, 11, 25, 0, 0), at(2026, 11, 22, 0, 0)),
        ("0 4 29 2 *", at(2026, 3, 1, 0, 0), at(2024, 2, 29, 4, 0)),
    ],
)
def test_previous_period(expr: str, now: datetime, previous: datetime) -> None:
    assert Cron.parse(expr).previous(now) == previous


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("0 3 * *", "five fields"),
        ("60 3 * * *", "minute"),
        ("0 24 * * *", "hour"),
        ("0 3 0 * *", "day of month"),
        ("0 3 * 13 *", "month"),
        ("x 3 * * *", "minute"),
        ("*/0 3 * * *", "minute"),
    ],
)
def test_bad_cron_is_refused_naming_the_field(expr: str, words: str) -> None:
    with pytest.raises(CronError, match=words):
        Cron.parse(expr)


def test_sample_map_categories_and_defaults() -> None:
    dm = load_datamap(SAMPLE)
    assert categories(dm) == {"logs": 30, "messages": 90, "metrics": 365}
    assert dm.retention_tables("anonymous") == ["anonymous_uploads"]
    assert dm.descendants("messages") == ["media_objects"]
    assert dm.retention_org("messages") == ("conversations", "conversation_id", "org_id")


HEAD = "version: 1\nsubject: {table: users, org_column: org_id, identities: {email: email}}\n"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            "tables:\n  users: {primary_key: id, retention_column: created_at}\n",
            "needs a `retention` category",
        ),
        (
            "retention_categories: {logs: {days: 30}}\n"
            "tables:\n  users: {primary_key: id}\n"
            "  logs: {primary_key: id, retention: logs, retention_column: at}\n",
            "org_column",
        ),
    ],
)
def test_retention_fields_checked_on_load(tmp_path: Path, body: str, words: str) -> None:
    path = tmp_path / "map.yaml"
    path.write_text(HEAD + body)
    with pytest.raises(DataMapError, match=words):
        load_datamap(path)
