"""Building blocks of the resolver's SQL: quoting, keys as text, key matches, parameters,
and streaming keys from a server-side cursor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from shared.datamap import DataMap, LiveSchema


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def key_text(dm: DataMap, table: str, alias: str) -> str:
    """A row's key as text: `pk::text`, or a JSON array for a composite key."""
    pks = dm.tables[table].pk_columns
    if len(pks) == 1:
        return f"{alias}.{q(pks[0])}::text"
    return f"json_build_array({', '.join(f'{alias}.{q(c)}' for c in pks)})::text"


def key_match(dm: DataMap, live: LiveSchema, table: str, alias: str, param: str) -> str:
    """`alias`'s key is one of the text keys in `param` (a text[] placeholder)."""
    pks = dm.tables[table].pk_columns
    types = live.key_types(dm, table)
    if len(pks) == 1:
        return f"{alias}.{q(pks[0])} = ANY({param}::text[]::{types[0]}[])"
    parts = ", ".join(f"(k.j->>{i})::{typ}" for i, typ in enumerate(types))
    cols = ", ".join(f"{alias}.{q(c)}" for c in pks)
    return f"({cols}) IN (SELECT {parts} FROM (SELECT unnest({param}::text[])::json AS j) k)"


def tuple_of(alias: str, columns: list[str]) -> str:
    inner = ", ".join(f"{alias}.{q(c)}" for c in columns)
    return f"({inner})" if len(columns) > 1 else inner


@dataclass
class Params:
    values: list[Any] = field(default_factory=list)
    slots: dict[str, str] = field(default_factory=dict)

    def ref(self, name: str, value: Any) -> str:
        if name not in self.slots:
            self.values.append(value)
            self.slots[name] = f"${len(self.values)}"
        return self.slots[name]


async def stream_keys(
    conn: asyncpg.Connection, sql: str, args: list[Any], page: int
) -> AsyncIterator[list[str]]:
    """Pages of text keys from a server-side cursor (the caller holds a transaction)."""
    cur = await conn.cursor(sql, *args)
    while True:
        rows = await cur.fetch(page)
        if not rows:
            return
        yield [r[0] for r in rows]
