"""What the store functions take: reads work on a pool or a connection; writes take the
connection of the caller's transaction."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
