"""Thin handlers for the exporter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from faststream.kafka import KafkaBroker

from services.exporter import domain
from shared.crypto import parse_master_key
from shared.events import Envelope
from shared.events.jobs import CancelExport, ExportRequested
from shared.events.topics import JOBS_EXPORT
from shared.kafka import publish_event, subscribe

if TYPE_CHECKING:
    from services.exporter.app import Runtime


def deps_for(broker: KafkaBroker, rt: Runtime) -> domain.ExporterDeps:
    async def emit(topic: str, env: Envelope) -> None:
        await publish_event(broker, topic, env)

    s = rt.settings
    return domain.ExporterDeps(
        lethe=rt.lethe,
        platform=rt.platform,
        s3=rt.s3,
        bucket=s.exports_bucket,
        media_bucket=s.platform_bucket,
        datamap=rt.datamap,
        live=rt.live,
        emit=emit,
        master_key=parse_master_key(s.master_key.get_secret_value()),
        token_key=s.download_token_key.get_secret_value().encode(),
        hash_key=s.subject_hash_key.get_secret_value().encode(),
        api_url=s.public_api_url.rstrip("/"),
        part_bytes=s.export_part_bytes,
        batch_rows=s.export_batch_rows,
        rate_limit_rows=s.export_rate_limit_rows,
        max_downloads=s.export_link_max_downloads,
    )


CONTROL_GROUP = "lethe-exporter-control"


def register(broker: KafkaBroker, rt: Runtime) -> None:
    """Two groups on `lethe.jobs.export.v1`: `lethe-exporter` builds exports (one at a time per
    partition); `lethe-exporter-control` takes cancels, which must not wait behind the export
    they stop (it records them; the export checks between batches)."""

    async def on_export_requested(env: Envelope) -> None:
        if env.type == ExportRequested.event_type:
            await domain.export(env, deps_for(broker, rt))

    async def on_control(env: Envelope) -> None:
        if env.type == CancelExport.event_type:
            await domain.cancel(env, deps_for(broker, rt))

    async def on_give_up(env: Envelope, error: str) -> None:
        await domain.fail(env, deps_for(broker, rt), error)

    subscribe(
        broker,
        JOBS_EXPORT,
        group_id=rt.settings.group("lethe-exporter"),
        handler=on_export_requested,
        retries=rt.settings.dlq_retries,
        on_give_up=on_give_up,
        max_poll_interval_ms=60 * 60 * 1000,
    )
    subscribe(
        broker,
        JOBS_EXPORT,
        group_id=rt.settings.group(CONTROL_GROUP),
        handler=on_control,
        retries=rt.settings.dlq_retries,
    )
