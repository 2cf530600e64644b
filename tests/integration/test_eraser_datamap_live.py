"""At start-up the data map is checked against the live database; mistakes name the place."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from shared.datamap import DataMapError, check_against_database, load_datamap

pytestmark = pytest.mark.integration
SAMPLE = Path(__file__).resolve().parents[2] / "deploy/local/sample/datamap.yaml"


async def _check(tmp_path: Path, platform_db: asyncpg.Pool, old: str, new: str) -> str:
    p = tmp_path / "map.yaml"
    text = SAMPLE.read_text()
    assert old in text
    p.write_text(text.replace(old, new, 1))
    dm = load_datamap(p)
    async with platform_db.acquire() as conn:
        with pytest.raises(DataMapError) as err:
            await check_against_database(dm, conn)
    assert str(p) in str(err.value)
    return str(err.value)


async def test_the_sample_map_fits_the_sample_schema(platform_db: asyncpg.Pool) -> None:
    async with platform_db.acquire() as conn:
        dm = load_datamap(SAMPLE)
        pk_types = (await check_against_database(dm, conn)).pk_types(dm)
    assert pk_types["users"] == "bigint"


async def test_unknown_table_in_the_database(tmp_path: Path, platform_db: asyncpg.Pool) -> None:
    msg = await _check(tmp_path, platform_db, "  newsletter_signups:\n", "  newsletter:\n")
    assert "tables.newsletter: unknown table 'newsletter'" in msg


async def test_unknown_columns(tmp_path: Path, platform_db: asyncpg.Pool) -> None:
    msg = await _check(tmp_path, platform_db, "object_key_column: s3_key", "object_key_column: key")
    assert "tables.media_objects.object_key_column: unknown column 'key'" in msg
    msg = await _check(
        tmp_path,
        platform_db,
        "{table: users, column: author_id, kind: owned}",
        "{table: users, column: writer_id, kind: owned}",
    )
    assert "tables.messages.parents[1].column: unknown column 'writer_id'" in msg
    msg = await _check(
        tmp_path, platform_db, "      billing_name: redact", "      billing_nam: redact"
    )
    assert "tables.payments.mask.billing_nam" in msg


async def test_relations_and_masks_must_fit_the_types(
    tmp_path: Path, platform_db: asyncpg.Pool
) -> None:
    msg = await _check(
        tmp_path,
        platform_db,
        "{table: messages, column: message_id}",
        "{table: messages, column: s3_key}",
    )
    assert "tables.media_objects.parents[0]" in msg and "text" in msg and "bigint" in msg
    msg = await _check(tmp_path, platform_db, '      user_id: "null"', "      amount_cents: hash")
    assert "tables.payments.mask.amount_cents" in msg and "writes text" in msg
