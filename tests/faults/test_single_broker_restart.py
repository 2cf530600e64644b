"""The one Kafka broker restarted mid-erasure: the job completes and nothing is lost."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.faults.checks import erase_through
from tests.faults.conftest import FaultStack

pytestmark = pytest.mark.e2e


async def test_broker_restarted_mid_job_loses_nothing(
    single_stack: FaultStack, client_of: Any
) -> None:
    stack = single_stack

    async def restart() -> dict[str, Any]:
        # A clean stop and a start on the same ports (as a rolling restart of one broker).
        await asyncio.to_thread(stack.restart_broker)
        return {"fault": "broker stopped (SIGTERM) and started again"}

    counts = await erase_through(stack, client_of(stack), restart)
    counts.print("broker restarted mid-job")
    counts.assert_nothing_lost()
