"""Prometheus metrics of one service process: one registry per app, never a global.

Most counters come from a broker middleware that watches what the service consumes and
publishes, so no handler carries metrics code (as tracing is middleware too):

- `lethe_message_duration_seconds{topic}`: time to handle one message; on
  `lethe.erase.tasks.v1` that is one erase batch (the batch latency).
- `lethe_messages_total{topic,outcome}`: messages handled (`ok` or `error`).
- `lethe_rows_erased_total{table}` / `lethe_objects_quarantined_total`: from every
  `BatchErased` the process publishes.
- `lethe_dlq_messages_total{source_topic,group}`: messages this process dead-lettered.
- `lethe_notifications_total{channel,outcome}`: deliveries sent or given up (the audit
  events `NotificationSent`/`NotificationFailed`, OpenDSR callbacks as channel `opendsr`).

Read when scraped: `lethe_consumer_lag{group,topic,partition}` (high watermark minus this
process's position), `lethe_consumer_partitions{group}` and, on intake, `lethe_jobs{type,status}`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import BaseMiddleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from shared.events.topics import AUDIT, DLQ, PROGRESS

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_NOTIFY = {
    "NotificationSent": "sent",
    "NotificationFailed": "failed",
    "OpenDSRCallbackSent": "sent",
    "OpenDSRCallbackFailed": "failed",
}
Refresher = Callable[["Metrics"], Awaitable[None]]


class Metrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.message_seconds = Histogram(
            "lethe_message_duration_seconds",
            "Time to handle one message (lethe.erase.tasks.v1: one erase batch).",
            ["topic"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.messages = Counter(
            "lethe_messages", "Messages handled.", ["topic", "outcome"], registry=r
        )
        self.rows_erased = Counter(
            "lethe_rows_erased",
            "Rows erased (deleted or masked) by batches.",
            ["table"],
            registry=r,
        )
        self.objects_quarantined = Counter(
            "lethe_objects_quarantined", "S3 objects moved to quarantine by batches.", registry=r
        )
        self.dlq = Counter(
            "lethe_dlq_messages",
            "Messages sent to the dead-letter topic.",
            ["source_topic", "group"],
            registry=r,
        )
        self.notifications = Counter(
            "lethe_notifications",
            "Notification deliveries by final outcome.",
            ["channel", "outcome"],
            registry=r,
        )
        self.jobs = Gauge(
            "lethe_jobs",
            "Jobs by type and status (read from Postgres).",
            ["type", "status"],
            registry=r,
        )
        self.lag = Gauge(
            "lethe_consumer_lag",
            "Records between this process's position and the partition's end.",
            ["group", "topic", "partition"],
            registry=r,
        )
        self.partitions = Gauge(
            "lethe_consumer_partitions",
            "Partitions assigned to this process.",
            ["group"],
            registry=r,
        )
        self.ready = Gauge("lethe_ready", "1 when /readyz answers ready.", registry=r)
        self._refreshers: list[Refresher] = []

    def add_refresher(self, refresh: Refresher) -> None:
        """Run on every scrape before rendering (e.g. gauges read from Postgres)."""
        self._refreshers.append(refresh)

    async def render(self) -> bytes:
        for refresh in self._refreshers:
            try:
                await refresh(self)
            except Exception as exc:  # a scrape still answers; the gauge keeps its last value
                log.warning("metrics refresh failed: %r", exc)
        return generate_latest(self.registry)

    # ------------------------------------------------------------------ observers

    def published(self, topic: str, body: Any, headers: dict[str, Any]) -> None:
        if topic == DLQ:
            self.dlq.labels(
                str(headers.get("lethe-source-topic", "")),
                str(headers.get("lethe-consumer-group", "")),
            ).inc()
            return
        event_type = headers.get("lethe-event-type")
        if topic == PROGRESS and event_type == "BatchErased":
            payload = _payload(body)
            self.rows_erased.labels(str(payload.get("table", ""))).inc(
                int(payload.get("rows") or 0)
            )
            self.objects_quarantined.inc(int(payload.get("objects") or 0))
        elif topic == AUDIT and event_type in _NOTIFY:
            channel = "opendsr" if event_type.startswith("OpenDSR") else None
            if channel is None:
                channel = str(_payload(body).get("channel") or "email")
            self.notifications.labels(channel, _NOTIFY[event_type]).inc()

    def middleware(self) -> Callable[..., BaseMiddleware]:
        metrics = self

        class _Middleware(BaseMiddleware):
            async def consume_scope(self, call_next: Any, msg: Any) -> Any:
                topic = str(getattr(msg.raw_message, "topic", "") or "")
                start = time.perf_counter()
                outcome = "error"
                try:
                    result = await call_next(msg)
                    outcome = "ok"
                    return result
                finally:
                    metrics.message_seconds.labels(topic).observe(time.perf_counter() - start)
                    metrics.messages.labels(topic, outcome).inc()

            async def publish_scope(self, call_next: Any, cmd: Any) -> Any:
                result = await call_next(cmd)
                try:
                    metrics.published(str(cmd.destination), cmd.body, dict(cmd.headers or {}))
                except Exception as exc:  # metrics never break publishing
                    log.debug("metrics: %r", exc)
                return result

        return _Middleware


def _payload(body: Any) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        return {}
    payload = data.get("payload") if isinstance(data, dict) else None
    return payload if isinstance(payload, dict) else {}


__all__ = ["CONTENT_TYPE", "Metrics"]
