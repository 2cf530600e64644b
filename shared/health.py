"""Health, readiness, metrics endpoint and graceful shutdown, shared by every service.

`attach(app, broker, settings, ...)` is called by each service's `create_app`:

- **/healthz**: the process is up (liveness).
- **/readyz**: Kafka answers, every consumer has joined its group, and each named check
  (Postgres, each S3 bucket the service uses as `s3:<bucket>`, ...) passes; 503 naming what
  failed otherwise, and 503 once draining.
- **/metrics**: the process's Prometheus registry (`shared.metrics`).
- **Drain** (first shutdown hook, so before the broker stops): no subscriber takes a new
  message (FastStream's `consume` returns at once when its subscriber is not running, so a
  message fetched now is neither handled nor committed: it is redelivered elsewhere); the
  messages in hand get most of the grace period to finish and commit their offsets; what
  is still running then is abandoned (cancelled, uncommitted, redelivered). Handlers are
  idempotent, so finished work stays finished and abandoned work is redone exactly once.

The Kafka-only services serve these on a small asyncio HTTP server at `LETHE_OPS_PORT`
(0: none, the default for tests); intake serves them on its own HTTP port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from faststream import FastStream
from faststream.kafka import KafkaBroker

from shared.metrics import CONTENT_TYPE, Metrics
from shared.settings import LetheSettings
from shared.storage import check_bucket

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[Any]]
CHECK_TIMEOUT = 3.0


# --------------------------------------------------------------------------- checks


async def postgres_check(pool: Any) -> None:
    async with pool.acquire(timeout=CHECK_TIMEOUT) as conn:
        await conn.fetchval("SELECT 1", timeout=CHECK_TIMEOUT)


async def s3_check(client: Any) -> None:
    await client.list_buckets()


def bucket_checks(client: Callable[[], Any], *buckets: str) -> dict[str, Check]:
    """One readiness check per bucket, named `s3:<bucket>`: it exists and is reachable."""

    def check(bucket: str) -> Check:
        return lambda: check_bucket(client(), bucket)

    return {f"s3:{b}": check(b) for b in dict.fromkeys(buckets)}


def _consumers(broker: KafkaBroker) -> list[Any]:
    found: list[Any] = []
    for sub in broker.subscribers:
        group = getattr(sub, "consumer_subgroup", None)
        if group:
            found.extend(group)
        else:
            found.append(getattr(sub, "consumer", None))  # None: not started
    return found


def _joined(consumer: Any) -> bool:
    """Has had an assignment from its group (possibly empty: more replicas than partitions)."""
    if consumer is None:
        return False
    subscription = getattr(getattr(consumer, "_subscription", None), "subscription", None)
    if subscription is None:
        return bool(consumer.assignment())
    return getattr(subscription, "assignment", None) is not None


async def kafka_check(broker: KafkaBroker) -> None:
    if not await broker.ping(timeout=CHECK_TIMEOUT):
        raise RuntimeError("Kafka does not answer")
    waiting = sum(1 for c in _consumers(broker) if not _joined(c))
    if waiting:
        raise RuntimeError(f"{waiting} consumer(s) not yet assigned by their group")


async def consumer_lag(broker: KafkaBroker, metrics: Metrics) -> None:
    metrics.lag.clear()
    metrics.partitions.clear()
    for consumer in _consumers(broker):
        if consumer is None:
            continue
        group = str(getattr(consumer, "_group_id", "") or "")
        assigned = consumer.assignment()
        metrics.partitions.labels(group).inc(len(assigned))
        for tp in assigned:
            end = consumer.highwater(tp)
            if end is None:
                continue
            with contextlib.suppress(Exception):
                position = await asyncio.wait_for(consumer.position(tp), 1.0)
                metrics.lag.labels(group, tp.topic, str(tp.partition)).set(max(0, end - position))


# --------------------------------------------------------------------------- ops


class Ops:
    """Readiness checks, metrics and the drain of one service process."""

    def __init__(
        self,
        broker: KafkaBroker,
        settings: LetheSettings,
        metrics: Metrics,
        checks: Mapping[str, Check],
        *,
        grace: float | None = None,
    ) -> None:
        self.broker = broker
        self.settings = settings
        self.metrics = metrics
        self.checks = {"kafka": lambda: kafka_check(broker), **checks}
        self.grace = settings.shutdown_grace_seconds if grace is None else grace
        self.draining = False
        self.server: asyncio.Server | None = None
        metrics.add_refresher(lambda m: consumer_lag(broker, m))

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        if self.draining:
            self.metrics.ready.set(0)
            return False, {"shutdown": "draining"}
        names = list(self.checks)

        async def run(name: str) -> str:
            try:
                await asyncio.wait_for(self.checks[name](), CHECK_TIMEOUT + 1)
                return "ok"
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__

        results = dict(zip(names, await asyncio.gather(*(run(n) for n in names)), strict=True))
        ok = all(v == "ok" for v in results.values())
        self.metrics.ready.set(1 if ok else 0)
        return ok, results

    # ------------------------------------------------------------------ drain

    async def drain(self) -> None:
        """Stop taking messages; let those in hand finish within the budget; abandon the rest."""
        self.draining = True
        subscribers = list(self.broker.subscribers)
        for sub in subscribers:
            sub.running = False
        budget = max(0.0, self.grace - min(5.0, self.grace / 4))
        deadline = time.monotonic() + budget
        busy = [s for s in subscribers if not getattr(s.lock, "empty", True)]
        if busy:
            log.info("draining: %d subscriber(s) finishing their current message", len(busy))
        while busy and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            busy = [s for s in busy if not getattr(s.lock, "empty", True)]
        if busy:
            log.warning(
                "grace period used up: abandoning the message in hand of %d subscriber(s) "
                "(not committed; another replica gets it again)",
                len(busy),
            )
            for sub in busy:
                for task in getattr(sub, "tasks", []):
                    task.cancel()
        else:
            log.info("drained: every message in hand finished and committed")

    # ------------------------------------------------------------------ HTTP

    async def respond(self, path: str) -> tuple[int, str, bytes]:
        if path == "/healthz":
            return 200, "application/json", b'{"status":"ok"}'
        if path == "/readyz":
            ok, results = await self.readiness()
            body = json.dumps({"status": "ready" if ok else "unready", "checks": results})
            return (200 if ok else 503), "application/json", body.encode()
        if path == "/metrics":
            return 200, CONTENT_TYPE, await self.metrics.render()
        return 404, "text/plain", b"not found\n"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.decode("latin-1").split()
            if len(parts) < 2 or parts[0] not in ("GET", "HEAD"):
                status, ctype, body = 405, "text/plain", b"method not allowed\n"
            else:
                status, ctype, body = await self.respond(parts[1].split("?", 1)[0])
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}.get(
                status, "Service Unavailable"
            )
            head = (
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + (body if parts and parts[0] == "GET" else b""))
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def start_server(self) -> None:
        s = self.settings
        if not s.ops_port or self.server is not None:
            return
        self.server = await asyncio.start_server(self._serve, s.ops_host, s.ops_port)
        log.info("ops endpoint on http://%s:%d (/healthz /readyz /metrics)", s.ops_host, s.ops_port)

    async def stop_server(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)
            self.server = None


def attach(
    app: FastStream,
    broker: KafkaBroker,
    settings: LetheSettings,
    service: str,
    checks: Mapping[str, Check] | None = None,
    *,
    grace: float | None = None,
    serve: bool = True,
) -> Ops:
    """Metrics middleware, drain as the first shutdown hook and (with `serve`) the ops server."""
    metrics = Metrics(service)
    broker.add_middleware(metrics.middleware())
    ops = Ops(broker, settings, metrics, checks or {}, grace=grace)
    app.on_shutdown(ops.drain)
    if serve:
        app.on_startup(ops.start_server)
        app.after_shutdown(ops.stop_server)
    return ops


def arm_watchdog(app: FastStream, grace: float) -> None:
    """Process only: once shutdown starts, exit (code 1) if still alive after `grace` seconds."""

    def start() -> None:
        def expire() -> None:
            log.error("shutdown took longer than %.0f s: exiting now", grace)
            logging.shutdown()
            os._exit(1)

        timer = threading.Timer(grace, expire)
        timer.daemon = True
        timer.start()

    app.on_shutdown(start)
    hooks = getattr(app, "_on_shutdown_calling", None)
    if isinstance(hooks, list) and hooks:
        hooks.insert(0, hooks.pop())  # before the drain: the clock starts with the signal


__all__ = [
    "Ops",
    "arm_watchdog",
    "attach",
    "bucket_checks",
    "kafka_check",
    "postgres_check",
    "s3_check",
]
