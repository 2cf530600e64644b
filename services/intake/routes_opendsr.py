"""OpenDSR processor endpoints under `/opendsr` (the spec: opengdpr/OpenDSR, specification.md).

Routes, each also under `/opendsr/v1` and `/opendsr/v2` (section 3.4 puts the major version
in the URL), with the current and the older OpenGDPR nouns (section 10.1):

    GET    /opendsr/discovery                          section 6
    POST   /opendsr/requests | /opengdpr_requests       section 7
    GET    /opendsr/requests/{subject_request_id}      section 8.1 (also /status/{id})
    DELETE /opendsr/requests/{subject_request_id}      section 9
    GET    /opendsr/cert.pem                           the X.509 certificate of the signing key

Authentication is the processor's to choose (section 4.3): Lethe's API keys, as on /v1 (the
key's organisation is the `controller_id`). Every answer is JSON signed with the processor's
RSA key in `X-OpenDSR-Signature`; every error is `{"error": {code, message, errors}}`, 400 for
a bad request (section 7.5). Status callbacks are sent by the notifier
(services/notifier/opendsr.py).
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from services.intake import domain, opendsr, store
from services.intake.auth import caller, role, runtime
from services.intake.domain import Caller
from shared import lifecycle, netguard
from shared.events import make_event
from shared.events.jobs import CancelErasure
from shared.events.opendsr import OpenDSRRequestReceived
from shared.events.progress import JobCancelled
from shared.events.topics import JOBS_ERASE, PROGRESS
from shared.kafka import current_trace

if TYPE_CHECKING:
    from services.intake.app import Runtime

router = APIRouter(prefix="/opendsr", tags=["opendsr"])
VERSIONS = ("", "/v1", "/v2")
NOUNS = ("requests", "opengdpr_requests")


class OpenDSRError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        errors: list[str] | None = None,
        reason: str = "IllegalArgumentException",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason
        self.errors = errors or [message]
        self.headers = headers or {}


def _key(request: Request) -> rsa.RSAPrivateKey:
    """The processor's signing key, loaded and checked with its certificate at start."""
    key = runtime(request).opendsr_key
    if key is None:
        raise OpenDSRError(
            503,
            "OpenDSR is not set up on this processor: set LETHE_OPENDSR_SIGNING_KEY_FILE (a "
            "PEM file) or LETHE_OPENDSR_SIGNING_KEY, and LETHE_OPENDSR_CERTIFICATE_FILE",
            reason="NotConfigured",
        )
    return key


def _signed(request: Request, body: dict[str, Any], status: int = 200) -> Response:
    raw = opendsr.dumps(body)
    headers = opendsr.signed_headers(
        _key(request), runtime(request).settings.opendsr_processor_domain, raw
    )
    return Response(raw, status_code=status, headers=headers, media_type="application/json")


def _error(request: Request, exc: OpenDSRError) -> Response:
    """Section 7.7; signed when a key is configured."""
    raw = opendsr.dumps(opendsr.error_body(exc.status, exc.message, exc.errors, exc.reason))
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache", **exc.headers}
    try:
        headers.update(
            opendsr.signed_headers(
                _key(request), runtime(request).settings.opendsr_processor_domain, raw
            )
        )
    except OpenDSRError:
        pass  # no key configured: the error says so, unsigned
    return Response(raw, status_code=exc.status, headers=headers, media_type="application/json")


async def _who(request: Request, minimum: str) -> Caller:
    """Lethe's API-key check, answered in the OpenDSR error shape."""
    try:
        who = await caller(request, request.headers.get("authorization"))
        return await role(minimum)(request, who)
    except HTTPException as exc:
        raise OpenDSRError(exc.status_code, str(exc.detail), reason="Unauthorized") from exc


def _request_id(value: str) -> str:
    if not opendsr.UUID4.match(value):
        raise OpenDSRError(
            400, "subject_request_id must be a lowercase UUID v4", [f"path: {value[:40]!r}"]
        )
    return value


# --- SQL (OpenDSR's own table; the job is intake's) ---------------------------------------

_FACTS = (
    "SELECT j.id, j.type, j.status, j.due_at, j.extended_due_at, j.received_at, j.done, "
    "j.result, j.request_fingerprint, o.api_version, o.request_fingerprint AS dsr_fingerprint, "
    "o.subject_request_id FROM lethe.jobs j JOIN lethe.opendsr_requests o ON o.job_id = j.id "
)


async def _find(pool: asyncpg.Pool, org_id: str, subject_request_id: str) -> dict[str, Any]:
    row = await pool.fetchrow(
        _FACTS + "WHERE o.org_id = $1 AND o.subject_request_id = $2",
        org_id,
        uuid.UUID(subject_request_id),
    )
    if row is None:
        raise OpenDSRError(
            404,
            f"no request {subject_request_id} for controller {org_id}",
            reason="NotFound",
        )
    return dict(row)


async def _record(
    db: asyncpg.Pool | asyncpg.Connection,
    job_id: uuid.UUID,
    org_id: str,
    req: opendsr.OpenDSRRequest,
    fp: str,
) -> None:
    """Idempotent: written with the job, and again (a no-op) after it."""
    await db.execute(
        "INSERT INTO lethe.opendsr_requests (job_id, org_id, subject_request_id, "
        "subject_request_type, regulation, api_version, property_id, submitted_time, "
        "status_callback_urls, request_fingerprint) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        job_id,
        org_id,
        uuid.UUID(req.subject_request_id),
        req.subject_request_type,
        req.regulation,
        req.api_version,
        None if req.property_id is None else str(req.property_id),
        req.submitted_time,
        req.status_callback_urls,
        fp,
    )


def facts(org_id: str, row: dict[str, Any]) -> opendsr.JobFacts:
    result = row["result"] if isinstance(row["result"], dict) else {}
    # The controller's export link, while the export can be downloaded (not once expired).
    link = result.get("results_url") if row["status"] == "ready" else None
    return opendsr.JobFacts(
        controller_id=org_id,
        subject_request_id=str(row["subject_request_id"]),
        job_status=row["status"],
        expected_completion_time=row["extended_due_at"] or row["due_at"],
        api_version=row["api_version"],
        results_count=row["done"],
        results_url=link if isinstance(link, str) else None,
    )


# --- endpoints --------------------------------------------------------------------------


async def discovery(request: Request) -> Response:
    """Section 6: public, so a controller can fetch the key to check callbacks."""
    try:
        url = runtime(request).settings.opendsr_certificate_url or str(
            request.url_for("opendsr_certificate")
        )
        return _signed(request, opendsr.discovery(url))
    except OpenDSRError as exc:
        return _error(request, exc)


async def certificate(request: Request) -> Response:
    """The processor's X.509 certificate (PEM) for its signing key and domain (section 4.1):
    the configured one, or in development a self-signed one; checked at start."""
    pem = runtime(request).opendsr_certificate
    if pem is None:
        return _error(request, OpenDSRError(503, "OpenDSR is not set up", reason="NotConfigured"))
    return Response(pem, media_type="application/x-pem-file")


async def create(request: Request) -> Response:
    """Section 7: 201 with the signed receipt; the same id again is 200 with the same receipt,
    another body under it 409."""
    try:
        return await _create(request)
    except OpenDSRError as exc:
        return _error(request, exc)


async def _create(request: Request) -> Response:
    rt = runtime(request)
    who = await _who(request, "admin")
    _key(request)  # refuse before writing anything when no key is configured
    wait = rt.limiter.take(str(who.key_id))
    if wait:
        raise OpenDSRError(
            429,
            "too many submissions for this API key; retry later",
            reason="RateLimited",
            headers={"Retry-After": str(max(1, round(wait)))},
        )
    raw = await request.body()
    try:
        req = opendsr.parse_request(
            raw,
            rt.settings.opendsr_processor_domain,
            allow_insecure_callbacks=rt.settings.opendsr_allow_insecure_callbacks,
        )
        lethe_req = opendsr.to_request_in(req)
    except opendsr.Invalid as exc:
        raise OpenDSRError(400, exc.message, exc.errors) from exc
    if not rt.settings.opendsr_allow_insecure_callbacks:
        policy = netguard.Policy.from_list(rt.settings.callback_allowed_networks)
        if errors := await opendsr.check_callback_hosts(req.status_callback_urls, policy):
            raise OpenDSRError(400, errors[0], errors)
    hash_key = rt.settings.subject_hash_key.get_secret_value().encode()
    with rt.tracer.start_as_current_span("intake opendsr request"):
        try:
            job = domain.plan_job(
                lethe_req,
                who,
                received_at=datetime.now(UTC),
                hash_key=hash_key,
                holidays=tuple(rt.settings.business_holidays),
                links=rt.settings.status_links(),
                channel="http",
                trace=current_trace(),
                # Access and portability complete with a results_url (section 8.3).
                results_link=req.subject_request_type != "erasure",
            )
        except domain.Refused as exc:
            raise OpenDSRError(400 if exc.status == 422 else exc.status, exc.reason) from exc
        fp = opendsr.fingerprint(req, hash_key)

        async def with_job(conn: asyncpg.Connection) -> None:
            # The record and the receipt's `pending` callback, before the job's own event:
            # the controller hears `pending` first, and the sender finds the record.
            await _record(conn, job.job_id, who.org_id, req, fp)
            received = make_event(
                OpenDSRRequestReceived(subject_request_id=req.subject_request_id),
                actor=who.actor,
                job_id=job.job_id,
                org_id=who.org_id,
                subject_hash=job.subject_hash,
            )
            await store.add_outbox(conn, PROGRESS, received)

        row, created = await store.insert_job(rt.pool, job, with_job)
    conflict = OpenDSRError(
        409,
        f"subject_request_id {req.subject_request_id} was already used for a different request",
        reason="Conflict",
    )
    if not created and row["request_fingerprint"] != job.fingerprint:
        raise conflict
    await _record(rt.pool, row["id"], who.org_id, req, fp)
    found = await _find(rt.pool, who.org_id, req.subject_request_id)
    if found["id"] != row["id"] or found["dsr_fingerprint"] != fp:
        raise conflict
    if created:
        rt.relay.wake()
    body = {
        "controller_id": who.org_id,
        "expected_completion_time": opendsr.rfc3339(row["extended_due_at"] or row["due_at"]),
        "received_time": opendsr.rfc3339(row["received_at"]),
        "encoded_request": base64.b64encode(raw).decode(),
        "subject_request_id": req.subject_request_id,
    }
    return _signed(
        request, opendsr.with_processor_signature(body, _key(request)), 201 if created else 200
    )


async def status(subject_request_id: str, request: Request) -> Response:
    """Section 8: the request's status (read-only: a viewer key is enough)."""
    try:
        who = await _who(request, "viewer")
        row = await _find(runtime(request).pool, who.org_id, _request_id(subject_request_id))
        return _signed(request, opendsr.status_body(facts(who.org_id, row)))
    except OpenDSRError as exc:
        return _error(request, exc)


async def cancel(subject_request_id: str, request: Request) -> Response:
    """Section 9: allowed only while the request is `pending` (202); otherwise 400 naming
    its status. The job becomes `cancelled` when its worker confirms (a callback follows)."""
    try:
        return await _cancel(subject_request_id, request)
    except OpenDSRError as exc:
        return _error(request, exc)


async def _cancel(subject_request_id: str, request: Request) -> Response:
    rt = runtime(request)
    who = await _who(request, "admin")
    row = await _find(rt.pool, who.org_id, _request_id(subject_request_id))

    def not_pending(job_status: str) -> OpenDSRError:
        return OpenDSRError(
            400,
            f"request {subject_request_id} is {opendsr.request_status(job_status)}; "
            "it can be cancelled only while pending",
            reason="IllegalStateException",
        )

    if opendsr.request_status(row["status"]) != "pending":
        raise not_pending(row["status"])
    if row["type"] == "export":
        await _cancel_export(rt, who, row, subject_request_id)
        return _cancelled(request, who, row, subject_request_id)
    env = make_event(
        CancelErasure(reason="cancelled by the controller (OpenDSR DELETE)"),
        actor=who.actor,
        job_id=row["id"],
        org_id=who.org_id,
    )
    topic = JOBS_ERASE
    allowed = tuple(
        s for s in lifecycle.COMMANDS["cancel"] if opendsr.REQUEST_STATUS[s] == "pending"
    )
    refused = await store.record_command(rt.pool, row["id"], topic, env, allowed)
    if refused is not None:  # moved on meanwhile
        raise not_pending(refused)
    rt.relay.wake()
    return _cancelled(request, who, row, subject_request_id)


def _cancelled(
    request: Request, who: Caller, row: dict[str, Any], subject_request_id: str
) -> Response:
    """Section 9.2: the signed 202."""
    body = {
        "controller_id": who.org_id,
        "subject_request_id": subject_request_id,
        "received_time": opendsr.rfc3339(datetime.now(UTC)),
        "api_version": row["api_version"] or opendsr.API_VERSION,
    }
    return _signed(request, opendsr.with_processor_signature(body, _key(request)), 202)


async def _cancel_export(
    rt: Runtime, who: Caller, row: dict[str, Any], subject_request_id: str
) -> None:
    """An access or portability request still pending: taken back before the exporter has
    it, the job cancelled at once. Once the exporter has it, it runs to the end (an export is
    not stopped midway): refused, saying so."""
    cancelled = make_event(
        JobCancelled(done=0, total=0),
        actor=who.actor,
        job_id=row["id"],
        org_id=who.org_id,
    )
    refused = await store.cancel_unsent_export(rt.pool, row["id"], cancelled)
    if refused == "handed":
        raise OpenDSRError(
            400,
            f"request {subject_request_id} has been handed to the exporter and can no longer "
            "be cancelled; its result follows shortly",
            reason="IllegalStateException",
        )
    if refused is not None:
        raise OpenDSRError(
            400,
            f"request {subject_request_id} is {opendsr.request_status(refused)}; "
            "it can be cancelled only while pending",
            reason="IllegalStateException",
        )
    rt.relay.wake()


router.add_api_route("/cert.pem", certificate, methods=["GET"], name="opendsr_certificate")
for _version in VERSIONS:
    # The docs show the current names once; the versioned and OpenGDPR aliases work the same.
    _listed = _version == ""
    router.add_api_route(
        f"{_version}/discovery", discovery, methods=["GET"], include_in_schema=_listed
    )
    router.add_api_route(
        f"{_version}/status/{{subject_request_id}}",
        status,
        methods=["GET"],
        include_in_schema=False,
    )
    for _noun in NOUNS:
        _listed = _version == "" and _noun == "requests"
        _path = f"{_version}/{_noun}/{{subject_request_id}}"
        router.add_api_route(
            f"{_version}/{_noun}",
            create,
            methods=["POST"],
            status_code=201,
            include_in_schema=_listed,
        )
        router.add_api_route(_path, status, methods=["GET"], include_in_schema=_listed)
        router.add_api_route(
            _path, cancel, methods=["DELETE"], status_code=202, include_in_schema=_listed
        )
