"""One erasure is one trace: spans from intake, eraser and auditor share a trace id.

The three services run in this process (so one in-memory exporter sees every span), each
with its own TracerProvider, against the real Kafka, Postgres and S3.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from deploy.local.sample.seed import seed_org
from services.auditor.app import create_app as create_auditor
from services.auditor.settings import AuditorSettings
from services.eraser.app import create_app as create_eraser
from services.eraser.settings import EraserSettings
from services.intake.app import create_http
from services.intake.settings import IntakeSettings
from shared.telemetry import tracer_provider
from tests.conftest import Org
from tests.helpers import eventually

pytestmark = pytest.mark.integration


async def test_one_erasure_is_one_trace(
    base_settings: dict[str, Any],
    org: Org,
    platform_db: asyncpg.Pool,
    s3: Any,
    lethe_db: asyncpg.Pool,
) -> None:
    async with platform_db.acquire() as conn:
        seeded = await seed_org(
            conn,
            s3,
            "lethe-platform",
            org.id,
            users=2,
            conversations_per_user=1,
            messages_per_conversation=5,
            media_every=2,
        )
    spans = InMemorySpanExporter()

    def tp(name: str) -> Any:
        return tracer_provider(name, processors=[SimpleSpanProcessor(spans)])

    http = create_http(IntakeSettings(**base_settings), tracer_provider=tp("intake"))
    eraser = create_eraser(EraserSettings(**base_settings), tracer_provider=tp("eraser"))
    auditor = create_auditor(AuditorSettings(**base_settings), tracer_provider=tp("auditor"))
    async with eraser, auditor, http.router.lifespan_context(http):
        transport = httpx.ASGITransport(app=http)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            r = await client.post(
                "/v1/requests",
                headers=org.headers,
                json={
                    "type": "erasure",
                    "subject": {"email": seeded.users[0].email},
                    "recovery_window_days": 0,  # purge at once: the trace runs to JobCompleted
                },
            )
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]

            async def completed_in_audit() -> bool:
                return bool(
                    await lethe_db.fetchval(
                        "SELECT 1 FROM lethe.audit_log "
                        "WHERE job_id = $1 AND action = 'JobCompleted'",
                        uuid.UUID(job_id),
                    )
                )

            await eventually(completed_in_audit, what="the erasure to complete", timeout=90)

            async def consumer_spans_ended() -> set[str] | None:
                finished = spans.get_finished_spans()
                roots = [s for s in finished if s.name == "intake submit request"]
                if not roots:
                    return None
                found = {
                    str(s.resource.attributes["service.name"])
                    for s in finished
                    if s.context.trace_id == roots[0].context.trace_id
                }
                return found if {"lethe-eraser", "lethe-auditor"} <= found else None

            await eventually(consumer_spans_ended, what="the consumers' spans to end", timeout=10)

    finished = spans.get_finished_spans()
    root = next(s for s in finished if s.name == "intake submit request")
    trace_id = root.context.trace_id
    services = {
        s.resource.attributes["service.name"] for s in finished if s.context.trace_id == trace_id
    }
    assert {"lethe-intake", "lethe-eraser", "lethe-auditor"} <= services, services
