"""One request is one trace across the five services: an erasure's spans from intake,
eraser, notifier and auditor share its trace id, and an export's from intake, exporter,
notifier and auditor (the exporter takes no part in an erasure, nor the eraser in an export).

The five services run in this process (so one in-memory exporter sees every span), each
with its own TracerProvider, against the real Kafka, Postgres and S3.
"""

from __future__ import annotations

import uuid
from functools import partial
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
from services.exporter.app import create_app as create_exporter
from services.exporter.settings import ExporterSettings
from services.intake.app import create_http
from services.intake.settings import IntakeSettings
from services.notifier.app import create_app as create_notifier
from services.notifier.settings import NotifierSettings
from shared.telemetry import tracer_provider
from tests.conftest import Org
from tests.helpers import eventually

pytestmark = pytest.mark.integration


ERASURE_SERVICES = {"lethe-intake", "lethe-eraser", "lethe-notifier", "lethe-auditor"}
EXPORT_SERVICES = {"lethe-intake", "lethe-exporter", "lethe-notifier", "lethe-auditor"}


async def test_one_request_is_one_trace_across_the_services(
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
    exporter = create_exporter(ExporterSettings(**base_settings), tracer_provider=tp("exporter"))
    notifier = create_notifier(NotifierSettings(**base_settings), tracer_provider=tp("notifier"))
    auditor = create_auditor(AuditorSettings(**base_settings), tracer_provider=tp("auditor"))
    notify = f"dpo@{org.id}.test"  # the requester's mails make the notifier take part
    async with eraser, exporter, notifier, auditor, http.router.lifespan_context(http):
        transport = httpx.ASGITransport(app=http)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            erasure = await _submit(
                client,
                org,
                {
                    "type": "erasure",
                    "subject": {"email": seeded.users[0].email},
                    "notify_email": notify,
                    "recovery_window_days": 0,  # purged at once: the trace runs to JobCompleted
                },
            )
            export = await _submit(
                client,
                org,
                {"type": "export", "subject": {"email": seeded.users[1].email}},
            )
            # The roots, in the order of the requests (each submit ends before the next).
            roots = [s for s in spans.get_finished_spans() if s.name == "intake submit request"]
            assert len(roots) == 2
            traces = {
                erasure: (roots[0].context.trace_id, ERASURE_SERVICES, "JobCompleted"),
                export: (roots[1].context.trace_id, EXPORT_SERVICES, "ExportReady"),
            }
            for job_id, (_, _, last) in traces.items():
                await eventually(
                    partial(_audited, lethe_db, job_id, last),
                    what=f"{last} of job {job_id} in the audit trail",
                    timeout=90,
                )
            for trace_id, wanted, _ in traces.values():
                await eventually(
                    partial(_services_in, spans, trace_id, wanted),
                    what=f"spans of {sorted(wanted)} in one trace",
                    timeout=30,
                )
    for trace_id, wanted, _ in traces.values():
        services = {
            s.resource.attributes["service.name"]
            for s in spans.get_finished_spans()
            if s.context.trace_id == trace_id
        }
        assert wanted <= services, services


async def _submit(client: httpx.AsyncClient, org: Org, body: dict[str, Any]) -> str:
    r = await client.post("/v1/requests", headers=org.headers, json=body)
    assert r.status_code == 202, r.text
    job_id: str = r.json()["id"]
    return job_id


async def _audited(db: asyncpg.Pool, job_id: str, action: str) -> bool:
    return bool(
        await db.fetchval(
            "SELECT 1 FROM lethe.audit_log WHERE job_id = $1 AND action = $2",
            uuid.UUID(job_id),
            action,
        )
    )


async def _services_in(
    spans: InMemorySpanExporter, trace_id: int, wanted: set[str]
) -> set[str] | None:
    found = {
        str(s.resource.attributes["service.name"])
        for s in spans.get_finished_spans()
        if s.context.trace_id == trace_id
    }
    return found if wanted <= found else None
