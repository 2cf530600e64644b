"""A draft data map (version 2, docs/datamap.md) from what the live database says about
itself: tables, primary keys, foreign keys and column names and types. Pure: catalog facts
in (`shared.catalog.read_catalog`), YAML text out; `lethe datamap draft` prints it.

What is proposed, every table marked `# review:`:
- the subject table: `--subject`, else a table with an email column that other tables
  reference most; its identities: email, phone, external id columns by name, its key as user_id;
- `owned` (parents): a table with a foreign key to the subject or to a table owned by it;
  when a table has several such links, the one to the subject is owned, a nullable other one
  is a `reference` detached to null, a NOT NULL one stays owned and is flagged;
- `shared` (referenced_by): an address-like table (address, phone, postcode columns, no
  email) that an owned table points at;
- `reference`: a self-reference (employee -> manager), detached to null when nullable;
- the org column by name (org_id, tenant_id, store_id, ...) or none (single-tenant:
  `platform_org`); the organisation table itself maps with `org_column` on its own key.
  Given `platform_org`, the platform is single-tenant: no org column anywhere;
- tables with an email column and no link to the subject: matched by `identities` (on a
  multi-tenant platform only where the table has an org column; else left for review).
A partitioned table appears once (its parent; the catalog reader leaves partitions out).
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.catalog import TableFacts
from shared.datamap_draft.builder import build_draft
from shared.datamap_draft.columns import (
    ORG_COLUMNS,
    TEXT_BASES,
    DraftError,
    personal_columns,
    personal_kind,
)
from shared.datamap_draft.model import Draft, Relation, TableDraft
from shared.datamap_draft.render import render_draft

__all__ = [
    "ORG_COLUMNS",
    "TEXT_BASES",
    "Draft",
    "DraftError",
    "Relation",
    "TableDraft",
    "build_draft",
    "draft_datamap",
    "personal_columns",
    "personal_kind",
    "render_draft",
]


def draft_datamap(
    facts: Sequence[TableFacts],
    *,
    subject: str | None = None,
    platform_org: str | None = None,
    source: str = "the live database",
) -> str:
    """The draft map's YAML from the catalog facts."""
    return render_draft(
        build_draft(facts, subject=subject, platform_org=platform_org), source=source
    )
