"""A small multi-tenant shop platform whose tenant column is an integer (`shop_id`), for
retention on a schema other than the sample one: schema, data map, seed."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMA = HERE / "schema.sql"
DATAMAP = HERE / "datamap.yaml"
