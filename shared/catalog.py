"""What the live platform database says about itself: tables, columns, keys (from pg_catalog).

Read by the map-independent verification scan (`shared/scan.py`) and by `lethe datamap draft`
and `check --scan`. A partitioned table is one table (its parent); its partitions are left
out. Lethe's own tables in the platform database (the eraser's restoration log) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

# Lethe's own tables in the platform database (services/eraser/platform_migrations and the
# migration runner's bookkeeping): never part of a subject's data.
LETHE_TABLES = frozenset({("lethe", "restoration_log"), ("lethe", "schema_migrations")})


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # as format_type prints it: "character varying(200)", "bigint", "jsonb"
    base: str  # pg_type name after domains, of the element for arrays: "varchar", "jsonb"
    not_null: bool = False
    is_array: bool = False


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]  # in this table
    ref_schema: str
    ref_table: str
    ref_columns: tuple[str, ...]


@dataclass(frozen=True)
class TableFacts:
    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    partitioned: bool = False
    size_bytes: int = 0  # estimate (pg_class.relpages, takes no lock), partitions included

    @property
    def label(self) -> str:
        """How reports name the table: bare in `public`, schema-qualified elsewhere."""
        return self.name if self.schema == "public" else f"{self.schema}.{self.name}"

    @property
    def sql_name(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_TABLES = """
SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind = 'p' AS partitioned,
       (WITH RECURSIVE tree(oid) AS (
            SELECT c.oid UNION ALL
            SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid)
        SELECT coalesce(sum(greatest(r.relpages, 0)), 0)::bigint
               * current_setting('block_size')::bigint
        FROM tree JOIN pg_class r ON r.oid = tree.oid) AS size_bytes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY($1::text[])
ORDER BY n.nspname, c.relname
"""

_COLUMNS = """
SELECT a.attrelid AS oid, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, t.typcategory = 'A' AS is_array,
       coalesce(b.typname, e.typname, t.typname) AS base
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
LEFT JOIN pg_type b ON b.oid = coalesce(e.typbasetype, t.typbasetype) AND b.oid <> 0
WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

# conparentid = 0: the constraint as declared, not its copies on each partition.
_CONSTRAINTS = """
SELECT con.conrelid AS oid, con.contype::text AS type,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(num, i)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num
             ORDER BY k.i)::text[] AS columns,
       rn.nspname AS ref_schema, rc.relname AS ref_table,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(num, i)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num
             ORDER BY k.i)::text[] AS ref_columns
FROM pg_constraint con
LEFT JOIN pg_class rc ON rc.oid = con.confrelid
LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.conrelid = ANY($1::oid[]) AND con.contype IN ('p', 'f') AND con.conparentid = 0
ORDER BY con.conrelid, con.contype, con.conname
"""


async def read_catalog(conn: asyncpg.Connection, schemas: list[str]) -> list[TableFacts]:
    """Every table of the schemas (partitioned ones once, by their parent), Lethe's own left
    out, with columns, primary key and foreign keys; sorted by schema and name."""
    tables = [
        r
        for r in await conn.fetch(_TABLES, schemas)
        if (r["schema"], r["name"]) not in LETHE_TABLES
    ]
    oids = [r["oid"] for r in tables]
    columns: dict[int, list[Column]] = {}
    for r in await conn.fetch(_COLUMNS, oids):
        columns.setdefault(r["oid"], []).append(
            Column(r["name"], r["type"], r["base"], r["not_null"], r["is_array"])
        )
    pks: dict[int, tuple[str, ...]] = {}
    fks: dict[int, list[ForeignKey]] = {}
    for r in await conn.fetch(_CONSTRAINTS, oids):
        if r["type"] == "p":
            pks[r["oid"]] = tuple(r["columns"])
        else:
            fks.setdefault(r["oid"], []).append(
                ForeignKey(
                    tuple(r["columns"]), r["ref_schema"], r["ref_table"], tuple(r["ref_columns"])
                )
            )
    return [
        TableFacts(
            schema=r["schema"],
            name=r["name"],
            columns=tuple(columns.get(r["oid"], ())),
            primary_key=pks.get(r["oid"], ()),
            foreign_keys=tuple(fks.get(r["oid"], ())),
            partitioned=r["partitioned"],
            size_bytes=r["size_bytes"],
        )
        for r in tables
    ]


# Everything read_catalog's answer depends on, as one digest (the sizes aside: they only
# order a scan): tables, their columns and types, primary keys and foreign keys.
_DIGEST = """
SELECT md5(concat(
  (SELECT string_agg(concat_ws(':', c.oid, n.nspname, c.relname, c.relkind, c.relispartition,
                               a.attnum, a.attname, a.atttypid, a.atttypmod, a.attnotnull,
                               a.attisdropped), ',' ORDER BY c.oid, a.attnum)
   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
   WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1::text[])),
  '|',
  (SELECT string_agg(concat_ws(':', con.oid, con.conrelid, con.contype, con.conkey,
                               con.confrelid, con.confkey), ',' ORDER BY con.oid)
   FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
   JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE con.contype IN ('p', 'f') AND n.nspname = ANY($1::text[]))))
"""


class CatalogCache:
    """read_catalog's answer, read again only when the schemas' definitions changed: one
    cheap query (a digest of tables, columns, types and keys) decides, so a table or column
    added, dropped, renamed or retyped is seen by the next call. The table sizes it keeps
    may be old; they only order a scan. One per process (the eraser's deps hold it)."""

    def __init__(self) -> None:
        self._key: tuple[str, tuple[str, ...]] | None = None
        self._tables: list[TableFacts] = []

    async def read(self, conn: asyncpg.Connection, schemas: list[str]) -> list[TableFacts]:
        digest: str = await conn.fetchval(_DIGEST, schemas)
        key = (digest, tuple(schemas))
        if key != self._key:
            tables = await read_catalog(conn, schemas)
            self._key, self._tables = key, tables
        return list(self._tables)


# Looks of a value (POSIX regular expressions, matched in the database: values never leave it).
EMAIL_LOOK = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_PHONE = r"((\+|00)[1-9][0-9 ().-]{6,18}[0-9]|0[1-9][0-9 ().-]{7,14}[0-9])"
PHONE_LOOK = f"^{_PHONE}$"
PHONE_IN_JSON = f'"{_PHONE}"'


def _lit(pattern: str) -> str:
    """Our own constant patterns as SQL string literals (E'' so backslashes stay escapes)."""
    return "E'" + pattern.replace("\\", "\\\\").replace("'", "''") + "'"


async def sample_looks(
    conn: asyncpg.Connection,
    table: TableFacts,
    columns: list[Column],
    *,
    rows: int = 200,
    timeout_ms: int = 5000,
) -> dict[str, set[str]]:
    """Which of the columns hold, in the table's first `rows` rows, values that look like an
    email or a phone number: column -> {"email", "phone"}. Only counts leave the database."""
    if not columns:
        return {}
    names = [quote_ident(c.name) for c in columns]
    counts = []
    for i, (c, n) in enumerate(zip(columns, names, strict=True)):
        if c.base in ("json", "jsonb"):
            text = f"{n}::jsonb::text"
            phone = f"{text} ~ {_lit(PHONE_IN_JSON)}"
        elif c.is_array:
            text = f"{n}::text"
            phone = f"EXISTS (SELECT 1 FROM unnest({n}::text[]) x WHERE x ~ {_lit(PHONE_LOOK)})"
        else:
            text = f"{n}::text"
            phone = f"{text} ~ {_lit(PHONE_LOOK)}"
        counts.append(f"count(*) FILTER (WHERE {text} ~ {_lit(EMAIL_LOOK)}) AS e{i}")
        counts.append(f"count(*) FILTER (WHERE {phone}) AS p{i}")
    sql = (
        f"SELECT {', '.join(counts)} "
        f"FROM (SELECT {', '.join(names)} FROM {table.sql_name} LIMIT {int(rows)}) s"
    )
    async with conn.transaction(readonly=True):
        await conn.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
        r = await conn.fetchrow(sql)
    assert r is not None
    found: dict[str, set[str]] = {}
    for i, c in enumerate(columns):
        looks = {k for k, key in (("email", f"e{i}"), ("phone", f"p{i}")) if r[key]}
        if looks:
            found[c.name] = looks
    return found
