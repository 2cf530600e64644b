"""Postgres frozen (SIGSTOP of the postmaster and every backend) for 20 s mid-erasure, as in
a failover: the job completes, no review items, every event in the audit log."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.faults.checks import erase_through
from tests.faults.conftest import FaultStack

pytestmark = pytest.mark.e2e
PAUSE_SECONDS = 20


async def test_postgres_paused_mid_job_loses_nothing(
    single_stack: FaultStack, client_of: Any
) -> None:
    stack = single_stack

    async def pause() -> dict[str, Any]:
        stack.pause_postgres()
        try:
            await asyncio.sleep(PAUSE_SECONDS)  # the fault itself: the one fixed wait
        finally:
            stack.resume_postgres()
        return {"fault": f"Postgres stopped (SIGSTOP) for {PAUSE_SECONDS} s"}

    counts = await erase_through(stack, client_of(stack), pause)
    counts.print(f"Postgres paused {PAUSE_SECONDS} s mid-job")
    counts.assert_nothing_lost()
