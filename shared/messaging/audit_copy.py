"""The audit copy of every event Lethe publishes, written once as broker middleware.

An event published to a topic of record (job commands, progress, notifications, rejected
requests) is also published, same bytes, key and headers, to the audit topic; both are
awaited side by side. Work items (erase chunks), the dead-letter topic and the audit topic
itself are not copied, nor anything that is not an envelope (no `lethe-event-type` header).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import BaseMiddleware
from faststream.kafka.response import KafkaPublishCommand

from shared.events.topics import (
    AUDIT,
    JOBS_ERASE,
    JOBS_EXPORT,
    NOTIFICATIONS,
    PROGRESS,
    REQUESTS_REJECTED,
)

AUDITED = frozenset({JOBS_ERASE, JOBS_EXPORT, PROGRESS, NOTIFICATIONS, REQUESTS_REJECTED})
EVENT_TYPE_HEADER = "lethe-event-type"


def audited(cmd: Any) -> bool:
    headers = getattr(cmd, "headers", None) or {}
    return cmd.destination in AUDITED and EVENT_TYPE_HEADER in headers


class AuditCopy(BaseMiddleware):
    """Broker middleware (first in the list, so each copy is traced on its own)."""

    async def publish_scope(self, call_next: Callable[[Any], Awaitable[Any]], cmd: Any) -> Any:
        if not isinstance(cmd, KafkaPublishCommand) or not audited(cmd):
            return await call_next(cmd)
        copy = KafkaPublishCommand(
            cmd.body,
            topic=AUDIT,
            key=cmd.key,
            headers=dict(cmd.headers),
            _publish_type=cmd.publish_type,
        )
        result, _ = await asyncio.gather(call_next(cmd), call_next(copy))
        return result
