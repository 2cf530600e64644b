"""Reliable consuming, written once: retries with backoff, the dead-letter topic, give-up hooks.

A router's subscribers are declared with `Delivery.consumer(...)`, which records the policy of
that consumer group and returns the subscriber settings every Lethe consumer uses (earliest
offset, offset committed after the handler). `Delivery` is also the router's middleware: it
runs the handler (FastStream's validation of the typed payload included) and

- dead-letters a message that does not validate at once (retrying cannot help);
- retries an outage (`faults.transient`: Postgres, Kafka or S3 not there right now) with
  exponential backoff and jitter, each wait capped (`max_backoff_seconds`), for as long as the
  retry horizon allows since the first attempt (default 2 minutes: a database failover is
  ridden out, not turned into dead letters); any other failure (a bug, bad data) gets
  `retries` attempts, also within the horizon;
- then dead-letters it with the error (headers lethe-source-topic, lethe-consumer-group,
  lethe-error; the original bytes) and runs the group's give-up hook (e.g. mark the job
  failed) with the envelope, when it reads as one;
- when the dead-letter publish itself fails, does not commit: the message is redelivered.

A message retried for the whole horizon holds its consumer that long without a poll, so each
group's `max_poll_interval_ms` is its budget for one attempt plus the horizon: a consumer
riding out an outage is never thrown out of its group (which would redeliver the message to
another replica, in parallel).

A batch subscriber's message (many records) is retried as a whole and, when given up, each of
its records is dead-lettered alone; isolating a poison record inside a batch is the handler's:
it raises `RecordsFailed` naming the records that failed (the rest handled), and only those
are dead-lettered when the batch is given up.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faststream import AckPolicy, BaseMiddleware
from faststream.exceptions import NackMessage
from pydantic import ValidationError

from shared.errors import reference
from shared.events import Envelope
from shared.events.topics import DLQ
from shared.messaging.faults import transient

if TYPE_CHECKING:
    from faststream._internal.context.repository import ContextRepo
    from faststream.kafka import KafkaBroker
    from faststream.message import StreamMessage

log = logging.getLogger(__name__)

GiveUp = Callable[[Envelope, str], Awaitable[None]]
DEFAULT_POLL_MS = 5 * 60 * 1000  # one attempt's budget between polls, before the horizon
DEFAULT_HORIZON_SECONDS = 120.0
MAX_BACKOFF_SECONDS = 15.0


class RecordsFailed(Exception):
    """Some records of a batch failed, the others were handled (idempotently: a retry handles
    them again). Retried like any failure of the batch; given up, only `records` (bytes, key)
    are dead-lettered."""

    def __init__(self, records: list[tuple[bytes, bytes | None]], cause: Exception) -> None:
        super().__init__(f"{len(records)} records failed: {describe(cause)}")
        self.records, self.cause = records, cause


@dataclass(frozen=True)
class Policy:
    retries: int = 3  # attempts for a failure that is not an outage
    backoff_seconds: float = 0.5  # before the second attempt; doubles each time
    on_give_up: GiveUp | None = None
    horizon_seconds: float = DEFAULT_HORIZON_SECONDS  # retrying never goes past this
    max_backoff_seconds: float = MAX_BACKOFF_SECONDS  # no single wait is longer

    def wait(self, attempt: int, elapsed: float, *, outage: bool = False) -> float | None:
        """Seconds to wait after failed `attempt` (1-based), `elapsed` seconds after the first
        began; None: give up now. An outage is retried until the horizon, anything else at
        most `retries` times. Jitter (75-125 %) keeps replicas that failed together (a
        database restart) from retrying in lockstep."""
        if not outage and attempt >= self.retries:
            return None
        base = min(self.backoff_seconds * 2 ** min(attempt - 1, 30), self.max_backoff_seconds)
        delay = base * random.uniform(0.75, 1.25)
        if elapsed + delay > self.horizon_seconds:
            return None
        return delay


async def dead_letter(
    broker: KafkaBroker,
    topic: str,
    group_id: str,
    raw: bytes,
    error: str,
    *,
    key: bytes | None = None,
) -> None:
    """The original bytes, under their original key (so `lethe dlq replay` keeps the order per
    job), with where they came from and why they stopped."""
    log.error("dead-lettering a message from %s (group %s): %s", topic, group_id, error)
    await broker.publish(
        raw,
        DLQ,
        key=key or None,
        headers={
            "lethe-source-topic": topic,
            "lethe-consumer-group": group_id,
            "lethe-error": error[:2000],
        },
    )


def poll_interval_ms(attempt_ms: int, horizon_seconds: float) -> int:
    """One attempt's budget plus the retry horizon: the longest a message may hold its consumer
    (the last wait ends within the horizon, then one more attempt runs)."""
    return attempt_ms + int(horizon_seconds * 1000)


def describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(exc)).strip()


def invalid(exc: ValidationError) -> str:
    """What did not fit, without the values (they may be personal data)."""
    problems = [
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
        for e in exc.errors(include_url=False, include_input=False)
    ]
    return f"invalid message: {'; '.join(problems)}"


class Delivery:
    """The delivery policies of one router's consumer groups, and the middleware applying them."""

    def __init__(self, *, horizon_seconds: float = DEFAULT_HORIZON_SECONDS) -> None:
        self._policies: dict[str, Policy] = {}
        self._horizon = horizon_seconds  # the default of this router's consumers

    def consumer(
        self,
        group_id: str,
        *,
        retries: int = 3,
        backoff_seconds: float = 0.5,
        on_give_up: GiveUp | None = None,
        horizon_seconds: float | None = None,
        max_poll_interval_ms: int = DEFAULT_POLL_MS,
        max_workers: int | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments for `router.subscriber(topic, **...)`; records the group's policy.
        `max_poll_interval_ms`: the longest one attempt may take; the retry horizon is added
        (see the module's docstring)."""
        horizon = self._horizon if horizon_seconds is None else horizon_seconds
        self._policies[group_id] = Policy(retries, backoff_seconds, on_give_up, horizon)
        options: dict[str, Any] = {
            "group_id": group_id,
            "auto_offset_reset": "earliest",
            "ack_policy": AckPolicy.ACK,
            "max_poll_interval_ms": poll_interval_ms(max_poll_interval_ms, horizon),
        }
        if max_workers is not None and max_workers > 1:
            options["max_workers"] = max_workers
        return options

    def policy(self, group_id: str) -> Policy:
        """The group's policy (the router's defaults for a group not declared here)."""
        return self._policies.get(group_id, Policy(horizon_seconds=self._horizon))

    def __call__(self, msg: Any, /, *, context: ContextRepo) -> BaseMiddleware:
        return _Scope(msg, context=context, delivery=self)


class _Scope(BaseMiddleware):
    def __init__(self, msg: Any, /, *, context: ContextRepo, delivery: Delivery) -> None:
        super().__init__(msg, context=context)
        self.delivery = delivery

    async def consume_scope(
        self, call_next: Callable[[Any], Awaitable[Any]], msg: StreamMessage[Any]
    ) -> Any:
        subscriber = self.context.get("handler_")
        group = str(getattr(subscriber, "group_id", "") or "")
        topic = _topic(msg)
        policy = self.delivery.policy(group)
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await call_next(msg)
            except ValidationError as exc:
                # Poison: a message that does not fit its schema never will.
                return await self._give_up(msg, topic, group, policy, invalid(exc))
            except Exception as exc:  # every other failure is retried, then dead-lettered
                outage = transient(exc)
                log.warning(
                    "handler for %s (group %s) failed (attempt %d, %s): %r",
                    topic,
                    group,
                    attempt,
                    "an outage: retried until the horizon" if outage else "not an outage",
                    exc,
                )
                delay = policy.wait(attempt, time.monotonic() - started, outage=outage)
                if delay is None:
                    return await self._give_up(msg, topic, group, policy, describe(exc), exc)
                await asyncio.sleep(delay)

    async def _give_up(
        self,
        msg: StreamMessage[Any],
        topic: str,
        group: str,
        policy: Policy,
        error: str,
        cause: Exception | None = None,
    ) -> None:
        """`error` goes with the dead letter (beside the original bytes); what the services
        record from `on_give_up` reaches the audit trail, so it gets a reference instead of
        the exception's text (shared.errors)."""
        broker: KafkaBroker = self.context.get("broker")
        # A batch subscriber's message holds many records: each is dead-lettered alone.
        if isinstance(cause, RecordsFailed):
            records = cause.records
        elif isinstance(msg.raw_message, tuple):
            records = [(r.value or b"", r.key) for r in msg.raw_message]
        else:
            records = [(msg.body, getattr(msg.raw_message, "key", None))]
        try:
            for raw, key in records:
                await dead_letter(broker, topic, group, raw, error, key=key)
        except Exception as exc:
            # Not dead-lettered: do not commit past it, so that it is delivered again.
            log.error(
                "dead-lettering from %s failed (%r); the message will be redelivered", topic, exc
            )
            raise NackMessage() from exc
        if policy.on_give_up is None:
            return
        recorded = reference(cause, f"{topic} ({group})") if cause else error
        for raw, _ in records:
            try:
                env = Envelope.model_validate_json(raw)
            except ValidationError:
                continue  # not an envelope: nothing to mark failed
            try:
                await policy.on_give_up(env, recorded)
            except Exception as exc:
                if not transient(exc):
                    raise
                # The hook (e.g. a chunk made a review item) met an outage: committing now
                # would leave the job waiting for it forever. Redelivered, it runs again.
                log.error("give-up hook for %s met an outage (%r); redelivered", topic, exc)
                raise NackMessage() from exc


def _topic(msg: StreamMessage[Any]) -> str:
    """The topic of a message's record, or of a batch subscriber's first record."""
    raw = msg.raw_message
    first = raw[0] if isinstance(raw, tuple) and raw else raw
    return str(getattr(first, "topic", ""))
