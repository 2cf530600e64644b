"""The metrics a service derives from what it publishes (no Kafka needed)."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.events import Actor, make_event
from shared.events.notifications import NotificationFailed, NotificationSent
from shared.events.progress import BatchErased
from shared.events.topics import AUDIT, DLQ, PROGRESS
from shared.metrics import Metrics

pytestmark = pytest.mark.unit
ACTOR = Actor(kind="service", id="test")


def _headers(env_type: str) -> dict[str, str]:
    return {"lethe-event-type": env_type}


def _value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def test_published_events_move_the_counters() -> None:
    m = Metrics("eraser")
    batch = make_event(
        BatchErased(
            table="messages",
            rows=250,
            objects=3,
            done=250,
            total=1000,
            rows_per_second=10.0,
            eta_seconds=75.0,
        ),
        actor=ACTOR,
        job_id=uuid.uuid4(),
        org_id="o",
    )
    body = batch.model_dump_json().encode()
    m.published(PROGRESS, body, _headers("BatchErased"))
    m.published(AUDIT, body, _headers("BatchErased"))  # the audit copy counts nothing
    m.published(
        DLQ,
        b"raw",
        {"lethe-source-topic": "lethe.jobs.erase.v1", "lethe-consumer-group": "lethe-eraser"},
    )
    failed = make_event(
        NotificationFailed(
            template="job_completed", channel="webhook", command_event_id="x", error="timeout"
        ),
        actor=ACTOR,
        job_id=uuid.uuid4(),
        org_id="o",
    )
    sent = make_event(
        NotificationSent(template="job_completed", channel="email", command_event_id="x"),
        actor=ACTOR,
        job_id=uuid.uuid4(),
        org_id="o",
    )
    m.published(AUDIT, failed.model_dump_json().encode(), _headers("NotificationFailed"))
    m.published(AUDIT, sent.model_dump_json().encode(), _headers("NotificationSent"))
    m.published(PROGRESS, b"not json", _headers("BatchErased"))  # ignored, never raises

    text = (await m.render()).decode()
    assert _value(text, "lethe_rows_erased_total", table="messages") == 250
    assert _value(text, "lethe_objects_quarantined_total") == 3
    assert _value(text, "lethe_dlq_messages_total", source_topic="lethe.jobs.erase.v1") == 1
    assert _value(text, "lethe_notifications_total", channel="webhook", outcome="failed") == 1
    assert _value(text, "lethe_notifications_total", channel="email", outcome="sent") == 1


async def test_a_failing_refresher_does_not_break_the_scrape() -> None:
    m = Metrics("intake")

    async def broken(_: Metrics) -> None:
        raise ConnectionError("postgres is down")

    async def jobs(metrics: Metrics) -> None:
        metrics.jobs.labels("erasure", "running").set(2)

    m.add_refresher(broken)
    m.add_refresher(jobs)
    text = (await m.render()).decode()
    assert _value(text, "lethe_jobs", type="erasure", status="running") == 2
