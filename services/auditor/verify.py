"""Walk the chain and name the first row that does not match."""

from __future__ import annotations

import asyncpg

from services.auditor import store
from services.auditor.domain import GENESIS, Verdict, check_row


async def verify_chain(pool: asyncpg.Pool | asyncpg.Connection) -> Verdict:
    prev, expected, count = GENESIS, 1, 0
    async for row in store.iter_rows(pool):
        reason = check_row(row, prev, expected)
        if reason:
            return Verdict(ok=False, rows=count, first_bad_seq=row.seq, reason=reason)
        prev, expected, count = row.hash, row.seq + 1, count + 1
    return Verdict(ok=True, rows=count)
