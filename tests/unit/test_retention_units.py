"""Pure pieces of retention: the cron schedule's previous period and next run, the data map's
retention fields (checked when the map loads), the policy categories it yields, and what the
resolver lets a retention batch reach and what holds an aged row."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.intake.retention import Cron, CronError, categories
from shared.datamap import Column, DataMapError, ForeignKey, LiveSchema, load_datamap
from shared.resolver import Resolver

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
    ("expr", "now", "following"),
    [
        ("0 3 * * *", at(2026, 11, 23, 2, 59), at(2026, 11, 23, 3, 0)),
        ("0 3 * * *", at(2026, 11, 23, 3, 0), at(2026, 11, 24, 3, 0)),  # strictly after
        ("*/15 * * * 1-5", at(2026, 11, 21, 11, 7), at(2026, 11, 23, 0, 0)),  # Saturday
        ("0 0 13 * 5", at(2026, 11, 14, 0, 0), at(2026, 11, 20, 0, 0)),  # day or weekday
        ("0 4 29 2 *", at(2027, 3, 1, 0, 0), at(2028, 2, 29, 4, 0)),
        ("0 4 29 2 *", at(2026, 3, 1, 0, 0), None),  # beyond a year: the page shows none
    ],
)
def test_next_run(expr: str, now: datetime, following: datetime | None) -> None:
    assert Cron.parse(expr).next(now) == following


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


SHOPS = Path(__file__).resolve().parents[1] / "schemas/shops/datamap.yaml"


def _shops_live() -> LiveSchema:
    """What the live database says about the shop schema, as far as these tests look."""
    dm = load_datamap(SHOPS)
    columns = {t: {c: Column("integer", True) for c in dm.tables[t].pk_columns} for t in dm.tables}
    columns["orders"] |= {
        "shop_id": Column("integer", True),
        "placed_at": Column("timestamptz", True),
    }
    fks = [
        ForeignKey("order_line", ("order_id",), "orders", ("order_id",)),
        ForeignKey("order_note", ("order_id",), "orders", ("order_id",)),
        ForeignKey("invoice", ("order_id",), "orders", ("order_id",)),
        ForeignKey("complaint", ("order_id",), "orders", ("order_id",)),  # not in the map
    ]
    return LiveSchema(columns, fks)


def test_retention_batch_reaches_owned_and_shared_tables_not_references() -> None:
    sample = load_datamap(SAMPLE)
    assert Resolver(sample, LiveSchema({})).reached("messages") == ["messages", "media_objects"]
    shops = Resolver(load_datamap(SHOPS), _shops_live())
    assert set(shops.reached("orders")) == {"orders", "order_line", "order_note", "label"}


def test_only_links_retention_cannot_follow_hold_an_aged_row() -> None:
    shops = Resolver(load_datamap(SHOPS), _shops_live())
    # Lines and notes (owned) go with the order, the invoice (reference) is detached: only
    # the complaint, a link the map does not declare, keeps an aged order.
    assert shops.holders("orders") == [("complaint", ["order_id"])]
    sql, args = shops.aged_keys_sql("orders", "7", at(2026, 1, 1, 0, 0), after="41", limit=5)
    assert '"shop_id" = $2::text::integer' in sql and "NOT EXISTS" in sql
    assert sql.endswith("LIMIT 5") and args == [at(2026, 1, 1, 0, 0), "7", "41"]
