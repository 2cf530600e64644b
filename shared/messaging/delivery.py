"""Reliable consuming, written once: retries with backoff, the dead-letter topic, give-up hooks.

A router's subscribers are declared with `Delivery.consumer(...)`, which records the policy of
that consumer group and returns the subscriber settings every Lethe consumer uses (earliest
offset, offset committed after the handler). `Delivery` is also the router's middleware: it
runs the handler (FastStream's validation of the typed payload included) and

- dead-letters a message that does not validate at once (retrying cannot help);
- retries any other failure with exponential backoff and jitter, within the retry horizon
  (no wait ends past it: a consumer is never held longer), then dead-letters it with the error
  (headers lethe-source-topic, lethe-consumer-group, lethe-error; the original bytes) and runs
  the group's give-up hook (e.g. mark the job failed) with the envelope, when it reads as one;
- when the dead-letter publish itself fails, does not commit: the message is redelivered.
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

if TYPE_CHECKING:
    from faststream._internal.context.repository import ContextRepo
    from faststream.kafka import KafkaBroker
    from faststream.message import StreamMessage

log = logging.getLogger(__name__)

GiveUp = Callable[[Envelope, str], Awaitable[None]]
DEFAULT_POLL_MS = 5 * 60 * 1000


DEFAULT_HORIZON_SECONDS = 120.0


@dataclass(frozen=True)
class Policy:
    retries: int = 3  # attempts before dead-lettering
    backoff_seconds: float = 0.5  # before the second attempt; doubles each time
    on_give_up: GiveUp | None = None
    horizon_seconds: float = DEFAULT_HORIZON_SECONDS  # retrying never goes past this

    def wait(self, attempt: int, elapsed: float) -> float | None:
        """Seconds to wait after failed `attempt` (1-based), `elapsed` seconds after the first
        began; None: give up now. Jitter (75-125 %) keeps replicas that failed together
        (a database restart) from retrying in lockstep."""
        if attempt >= self.retries:
            return None
        delay = self.backoff_seconds * 2 ** (attempt - 1) * random.uniform(0.75, 1.25)
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
        """Keyword arguments for `router.subscriber(topic, **...)`; records the group's policy."""
        horizon = self._horizon if horizon_seconds is None else horizon_seconds
        self._policies[group_id] = Policy(retries, backoff_seconds, on_give_up, horizon)
        options: dict[str, Any] = {
            "group_id": group_id,
            "auto_offset_reset": "earliest",
            "ack_policy": AckPolicy.ACK,
            "max_poll_interval_ms": max_poll_interval_ms,
        }
        if max_workers is not None and max_workers > 1:
            options["max_workers"] = max_workers
        return options

    def policy(self, group_id: str) -> Policy:
        return self._policies.get(group_id, Policy())

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
        topic = str(getattr(msg.raw_message, "topic", ""))
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
                log.warning(
                    "handler for %s (group %s) failed (attempt %d/%d): %r",
                    topic,
                    group,
                    attempt,
                    policy.retries,
                    exc,
                )
                delay = policy.wait(attempt, time.monotonic() - started)
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
        raw: bytes = msg.body
        key = getattr(msg.raw_message, "key", None)
        broker: KafkaBroker = self.context.get("broker")
        try:
            await dead_letter(broker, topic, group, raw, error, key=key)
        except Exception as exc:
            # Not dead-lettered: do not commit past it, so that it is delivered again.
            log.error(
                "dead-lettering from %s failed (%r); the message will be redelivered", topic, exc
            )
            raise NackMessage() from exc
        if policy.on_give_up is None:
            return
        try:
            env = Envelope.model_validate_json(raw)
        except ValidationError:
            return  # not an envelope: nothing to mark failed
        await policy.on_give_up(env, reference(cause, f"{topic} ({group})") if cause else error)
