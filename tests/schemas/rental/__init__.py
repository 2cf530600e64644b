"""A single-tenant rental shop platform (pagila-like): schema, data map, seed."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMA = HERE / "schema.sql"
DATAMAP = HERE / "datamap.yaml"
PLATFORM_ORG = "rental-shop"  # the data map's platform_org
TOMBSTONE_CUSTOMER = 0
