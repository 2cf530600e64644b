"""Postgres formats the export's rows: per column an SQL expression whose text is exactly
what `archive.json_value` / `archive.csv_value` make of the value asyncpg returns, so a
table streams out by `COPY ... TO STDOUT` and Python only compresses, seals and uploads.

A column type with no exact expression here (timetz, intervals, float in CSV, ...) returns
None: that table (in that format) goes through the Python writers instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.resolver import q

# COPY options that pass a one-column text (JSON, one object a line) through untouched: CSV
# quoting only applies to values holding the delimiter, the quote, CR or LF, and JSON from
# row_to_json holds none of those raw (json columns get their line breaks turned to spaces).
JSON_COPY = {"format": "csv", "quote": "\x01", "delimiter": "\x02"}
CSV_COPY = {"format": "csv", "header": True}

_AS_IS = {"int2", "int4", "int8", "text", "varchar", "bpchar", "name", "uuid", "jsonb"}
_ARRAYS = {"int2[]", "int4[]", "int8[]", "text[]", "varchar[]", "bool[]"}


def _iso(col: str, typ: str) -> str | None:
    """Python's isoformat: microseconds only when not zero; timestamptz in UTC (as asyncpg
    returns it) with `+00:00`."""
    if typ == "timestamptz":
        stamp = f"to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
        return f"(replace({stamp}, '.000000', '') || '+00:00')"
    if typ == "timestamp":
        return f"replace(to_char({col}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '.000000', '')"
    if typ == "date":
        return f"to_char({col}, 'YYYY-MM-DD')"
    if typ == "time":
        return f"replace(to_char({col}::interval, 'HH24:MI:SS.US'), '.000000', '')"
    return None


def _common(col: str, typ: str) -> str | None:
    if typ in _AS_IS:
        return col
    if typ == "numeric":
        return f"{col}::text"  # str(Decimal): a JSON string
    if typ == "bytea":  # base64 without the line breaks encode() puts every 76 characters
        return f"translate(encode({col}, 'base64'), E'\\n', '')"
    return _iso(col, typ)


def json_expr(col: str, typ: str) -> str | None:
    """The value row_to_json renders as `json_value` would."""
    if typ in ("bool", "float8") or typ in _ARRAYS or typ == "float8[]":
        return col  # JSON booleans, numbers and arrays of them
    if typ == "float4":
        return f"{col}::float8"  # asyncpg widens to a double: its digits, not float4's
    if typ == "json":  # kept as written; line breaks between its tokens become spaces
        return f"translate({col}::text, E'\\r\\n', '  ')::json"
    return _common(col, typ)


def csv_expr(col: str, typ: str) -> str | None:
    """The text COPY writes as `csv_value` would (NULL stays an empty field)."""
    if typ == "bool":
        return f"{col}::text"  # 'true' / 'false'
    if typ in _ARRAYS:  # json.dumps' spacing is jsonb's
        return f"to_jsonb({col})::text"
    if typ == "jsonb":  # a JSON string as its text, null as NULL, the rest as JSON
        return (
            f"CASE jsonb_typeof({col}) WHEN 'string' THEN {col} #>> '{{}}' "
            f"WHEN 'null' THEN NULL ELSE {col}::text END"
        )
    return _common(col, typ)


def select_list(columns: Sequence[tuple[str, str]], fmt: str) -> str | None:
    """`expr AS "name", ...` over the table aliased `x`; None when a type has no exact
    expression in `fmt`."""
    make = json_expr if fmt == "json" else csv_expr
    parts = []
    for name, typ in columns:
        expr = make(f"x.{q(name)}", typ)
        if expr is None:
            return None
        parts.append(f"{expr} AS {q(name)}")
    return ", ".join(parts)


def copy_query(rows_sql: str, fmt: str) -> str:
    """The query COPY runs: CSV rows as selected, JSON one object a line (in order)."""
    if fmt == "json":
        return f"SELECT row_to_json(r) FROM ({rows_sql}) r"
    return rows_sql
