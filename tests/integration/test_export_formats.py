"""The exporter's COPY formatting against real Postgres: for every column type it lets
Postgres format, each value's text is exactly what the Python writers (`json_value`,
`csv_value`) make of the value asyncpg reads, edge values included."""

from __future__ import annotations

import csv
import io
import json
import uuid
import zipfile
from typing import Any

import asyncpg
import pytest

from services.exporter import pgformat
from services.exporter.archive import CsvCopy, JsonCopy, csv_value, json_value

pytestmark = pytest.mark.integration

COLUMNS = """
    id int8 PRIMARY KEY, i2 int2, i4 int4, t text, v varchar(20), c char(4), u uuid,
    b bool, n numeric, f8 float8, f4 float4, ts timestamptz, tsn timestamp, d date,
    tm time, by bytea, ta text[], ia int8[], jb jsonb, js json
"""
ROWS = """
(1, 1, -2, 'plain', 'v', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true, 1.50, 0.1,
 0.1, '2026-11-27 16:33:52.12+02', '2026-11-27 16:33:52', '2026-01-02', '07:08:09.5',
 '\\x00ff10', '{"a,b","say \\"hi\\"",NULL}', '{1,2}', '{"k": [1, "x"], "a": null}',
 '{"z": 1,\n "a": [true]}'),
(2, NULL, NULL, E'line\\nbreak, "quoted" é ☃', '', NULL, NULL, false, 0, 1e300, NULL,
 '2026-11-27 16:33:52+00', '2026-11-27 16:33:52.000001', NULL, '23:59:59', NULL, '{}',
 NULL, '"a string"', 'null'),
(3, NULL, NULL, E'tab\\there\\u0001', NULL, NULL, NULL, NULL, 12345678901234567890.123,
 -2.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '3', NULL)
"""


@pytest.fixture
async def probe(platform_db: asyncpg.Pool) -> Any:
    table = f"fmt_probe_{uuid.uuid4().hex[:8]}"
    await platform_db.execute(f"CREATE TABLE {table} ({COLUMNS})")
    await platform_db.execute(
        f"INSERT INTO {table} VALUES {ROWS}".replace("\\x00ff10", "\\x" + "00ff10" * 30)
    )
    yield table
    await platform_db.execute(f"DROP TABLE {table}")


async def _copy(conn: asyncpg.Connection, table: str, fmt: str) -> tuple[bytes, int] | None:
    stmt = await conn.prepare(f"SELECT * FROM {table}")
    columns = [(a.name, a.type.name) for a in stmt.get_attributes()]
    select = pgformat.select_list(columns, fmt)
    if select is None:
        return None
    sql = pgformat.copy_query(f"SELECT {select} FROM {table} x ORDER BY x.id", fmt)
    opts = pgformat.JSON_COPY if fmt == "json" else pgformat.CSV_COPY
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w") as zf:
        entry = JsonCopy(zf, table) if fmt == "json" else CsvCopy(zf, table)

        async def out(chunk: bytes) -> None:
            entry.feed(chunk)

        status = await conn.copy_from_query(sql, output=out, **opts)
        entry.close()
    with zipfile.ZipFile(sink) as zf:
        return zf.read(entry.name), int(status.split()[-1])


async def test_postgres_formats_each_value_as_the_python_writers_do(
    platform_db: asyncpg.Pool, probe: str
) -> None:
    async with platform_db.acquire() as conn:
        rows = [dict(r) for r in await conn.fetch(f"SELECT * FROM {probe} ORDER BY id")]
        as_json = await _copy(conn, probe, "json")
        # floats (Python's repr) and json (re-spaced) in CSV: the cursor writes those
        assert await _copy(conn, probe, "csv") is None
        without_floats = f"{probe}_nofloat"
        await conn.execute(
            f"CREATE TEMP TABLE {without_floats} AS SELECT * FROM {probe}; "
            f"ALTER TABLE {without_floats} DROP COLUMN f8, DROP COLUMN f4, DROP COLUMN js"
        )
        as_csv = await _copy(conn, without_floats, "csv")
    assert as_json is not None and as_csv is not None
    data, n = as_json
    assert n == len(rows)
    want = [{k: json_value(v) for k, v in r.items()} for r in rows]
    got = json.loads(data)
    assert got == want
    # Byte for byte where the value is a JSON string (timestamps, numerics, bytes, text).
    for g, w in zip(got, want, strict=True):
        for k, v in w.items():
            if isinstance(v, str):
                assert g[k] == v, k
    data, n = as_csv
    lines = list(csv.reader(io.StringIO(data.decode(), newline="")))
    cols = [k for k in rows[0] if k not in ("f8", "f4", "js")]
    assert lines[0] == cols
    assert lines[1:] == [[csv_value(r[k]) for k in cols] for r in rows]
    assert n == len(rows)
