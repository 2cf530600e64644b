"""The one resolver: a subject (or an organisation) -> its rows, table by table, as SQL.

Eraser, exporter, verification and retention all ask this module, so what is exported is
exactly what would be erased. Rules (docs/datamap.md):

- **Subject scope**: the identities are first resolved to the subject row in the subject
  table; identities that point at more than one row are `Ambiguous` (nothing is done), and
  from then on the subject is that one key. Tables with `identities` add the rows they match.
- **Organisation scope**: every table with an org column gives all its rows of the org.
- **Relations** add rows: `owned` always, `shared` only when no row outside the subject's
  still references the row and its other shared links point at the subject or nowhere,
  `reference` never (the row is someone else's; its link is detached: `detach_sql`).

Everything is composed SQL (`keys_sql`, `rows_sql`), run by Postgres, streamed by the caller
through a server-side cursor (`stream_keys`): no key list is ever collected here. Identifiers
come from the validated map and are quoted; values are parameters.

- `scope`: what is asked (`Scope`) and what it resolves to (`Subject`); the errors;
- `sql`: quoting, keys as text, parameters, `stream_keys`;
- `subject`: `resolve` (identities -> the subject row);
- `keys`: the composed key SQL and `materialize`;
- `retention`: aged rows, held rows, batches.
"""

from __future__ import annotations

from shared.datamap import DataMap, TableMap
from shared.resolver.keys import KeySql
from shared.resolver.retention import RetentionSql
from shared.resolver.scope import Ambiguous, Rows, Scope, ScopeError, Subject
from shared.resolver.sql import key_match, key_text, q, stream_keys
from shared.resolver.subject import SubjectResolution

__all__ = [
    "Ambiguous",
    "Resolver",
    "Rows",
    "Scope",
    "ScopeError",
    "Subject",
    "key_match",
    "key_text",
    "q",
    "stream_keys",
    "table_map",
]


class Resolver(SubjectResolution, KeySql, RetentionSql):
    """The one resolver, over a data map and what the live database says about it:
    `resolve` (scope -> subject), composed key SQL (`keys_sql`, `rows_sql`, `detach_sql`,
    `materialize`) and retention SQL (`aged_keys_sql`, `batch`)."""


def table_map(dm: DataMap, table: str) -> TableMap:
    return dm.tables[table]
