"""Intake's Kafka handlers: job state follows the progress topic; upstream requests come in
on the request topic (bad ones answered with RequestRejected, carrying the original key).

The router also declares what intake publishes (its outbox relay's topics and the rejections),
so the AsyncAPI document shows it. Retries and dead-lettering are `shared.messaging.Delivery`.
"""

from __future__ import annotations

from typing import Annotated, Any

from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaBroker, KafkaMessage
from faststream.message import StreamMessage
from pydantic import ValidationError, WithJsonSchema

from services.intake import domain
from services.intake.runtime import Runtime
from services.intake.service import bulk, progress, requests
from shared.events import Actor, Envelope, make_event
from shared.events.exports import DownloadAttempted, LinkRevoked
from shared.events.jobs import (
    CancelErasure,
    CancelExport,
    ErasureRequested,
    ExportRequested,
    RestoreErasure,
)
from shared.events.keys import ApiKeyCreated, ApiKeyRevoked
from shared.events.notifications import SendEmail
from shared.events.opendsr import OpenDSRRequestReceived
from shared.events.privacy import (
    PrivacyCentreChanged,
    PrivacyCodeRefused,
    PrivacyCodeRequested,
    PrivacyCodeVerified,
)
from shared.events.progress import (
    JobCancelled,
    JobCompleted,
    ManualTaskClosed,
)
from shared.events.requests import (
    ApprovalRequired,
    AuthFailed,
    AuthFailuresCounted,
    CancelRequested,
    DeadlineExtended,
    OrgApprovalChanged,
    OrgDelegationChanged,
    RequestApproved,
    RequestDenied,
    RequestLinked,
    RequestRejected,
    RestoreRequested,
    SubmitRequest,
)
from shared.events.retention import RetentionPolicyChanged, RetentionRequested
from shared.events.topics import (
    AUDIT,
    JOBS_ERASE,
    JOBS_EXPORT,
    NOTIFICATIONS,
    PROGRESS,
    REQUESTS,
    REQUESTS_REJECTED,
)
from shared.messaging import Delivery, RecordsFailed, dead_letter
from shared.messaging.delivery import invalid
from shared.messaging.outputs import Outputs

OUTPUTS = {
    JOBS_ERASE: (ErasureRequested, CancelErasure, RestoreErasure, RetentionRequested),
    JOBS_EXPORT: (ExportRequested, CancelExport),
    PROGRESS: (OpenDSRRequestReceived, JobCancelled, RequestDenied, JobCompleted),
    NOTIFICATIONS: (SendEmail,),
    REQUESTS_REJECTED: (RequestRejected,),
    AUDIT: (
        CancelRequested,
        RestoreRequested,
        DeadlineExtended,
        OrgDelegationChanged,
        AuthFailed,
        AuthFailuresCounted,
        DownloadAttempted,
        LinkRevoked,
        RetentionPolicyChanged,
        ApiKeyCreated,
        ApiKeyRevoked,
        OrgApprovalChanged,
        ApprovalRequired,
        RequestApproved,
        RequestLinked,
        ManualTaskClosed,
        PrivacyCodeRequested,
        PrivacyCodeRefused,
        PrivacyCodeVerified,
        PrivacyCentreChanged,
    ),
}
# Upstream requests are read as bytes: a message that does not fit SubmitRequest is answered
# with RequestRejected (not dead-lettered), so it is validated by the handler, not FastStream.
UpstreamRequest = Annotated[bytes, WithJsonSchema(SubmitRequest.model_json_schema())]


async def raw_body(msg: StreamMessage[Any]) -> bytes:
    return bytes(msg.body)


# Up to this many progress events per transaction; a poll returns at once what has arrived,
# so the wait applies only to an idle topic.
PROGRESS_BATCH = 200
PROGRESS_WAIT_MS = 100


async def raw_records(msg: StreamMessage[Any]) -> list[bytes]:
    """The records' bytes, undecoded: each is read as an envelope on its own."""
    return [rec.value or b"" for rec in msg.raw_message]


def build_router(rt: Runtime) -> KafkaRouter:
    delivery = Delivery(horizon_seconds=rt.settings.dlq_retry_horizon_seconds)
    router = KafkaRouter(middlewares=[delivery])
    out = Outputs(router, "intake", OUTPUTS)
    retries = rt.settings.dlq_retries

    progress_group = rt.settings.group("lethe-intake")

    # Any job state change, from any service: the topic carries many types, all enveloped.
    # Read in batches, folded in one transaction each (service/progress.py); a record that is
    # not an envelope is dead-lettered alone, the rest folded.
    @router.subscriber(
        PROGRESS,
        batch=True,
        max_records=PROGRESS_BATCH,
        batch_timeout_ms=PROGRESS_WAIT_MS,
        decoder=raw_records,
        description="Batches of records, each an Envelope (JSON): any job state change.",
        **delivery.consumer(progress_group, retries=retries),
    )
    async def on_progress(records: list[bytes], message: KafkaMessage, broker: KafkaBroker) -> None:
        batch: list[progress.Record] = []
        poison: list[tuple[bytes, bytes | None, str]] = []
        for rec in message.raw_message:
            raw = rec.value or b""
            try:
                batch.append(progress.Record(Envelope.model_validate_json(raw), raw, rec.key))
            except ValidationError as exc:
                poison.append((raw, rec.key, invalid(exc)))
        if batch:
            try:
                await progress.take(rt.pool, rt.uow, batch, lambda: rt.settings.status_links())
            except RecordsFailed as exc:
                exc.records += [(raw, key) for raw, key, _ in poison]  # given up with them
                raise
        # After the rest (a retried batch would dead-letter them again).
        for raw, key, why in poison:
            await dead_letter(broker, PROGRESS, progress_group, raw, why, key=key)

    async def reject(key: bytes | None, rejection: domain.Rejection, org_id: str | None) -> None:
        env = make_event(
            RequestRejected(
                reason=rejection.reason,
                errors=rejection.errors,
                original_key=key.decode(errors="replace") if key else None,
                request_id=rejection.request_id,
            ),
            actor=Actor(kind="service", id="intake"),
            org_id=org_id,
        )
        await out.emit(REQUESTS_REJECTED, env)

    async def on_request(raw: bytes, key: bytes | None) -> None:
        try:
            if bulk.is_bulk_message(raw):
                await bulk.submit_upstream(rt.uow(), raw, rt.submit_policy())
            else:
                await requests.submit_upstream(rt.uow(), raw, rt.submit_policy())
        except requests.Rejected as exc:
            await reject(key, exc.rejection, exc.org_id)

    @router.subscriber(
        REQUESTS,
        decoder=raw_body,
        **delivery.consumer(rt.settings.group("lethe-intake-requests"), retries=retries),
    )
    async def on_submit_request(request: UpstreamRequest, message: KafkaMessage) -> None:
        await on_request(request, message.raw_message.key)  # type: ignore[union-attr]

    return router
