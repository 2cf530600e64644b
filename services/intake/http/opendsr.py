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
(services/notifier/opendsr/).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import Response

from services.intake import opendsr
from services.intake.domain import Caller
from services.intake.http import opendsr_contract as contract
from services.intake.http.deps import audit_refusal, caller, role, runtime, uow
from services.intake.service import opendsr as requests
from services.intake.service.errors import (
    Conflict,
    DuplicateRequest,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    ServiceError,
)
from services.intake.service.requests import take_turn
from shared import netguard

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


def invalid(request: Request, errors: list[str]) -> Response:
    """A request FastAPI found invalid (the id in the path), as OpenDSR's signed 400."""
    return _error(request, OpenDSRError(400, errors[0], errors))


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


def _refusal(exc: ServiceError) -> OpenDSRError:
    """A service's refusal in OpenDSR's words: a bad or refused request is a 400 (section
    7.5), a request not pending an IllegalStateException."""
    if isinstance(exc, NotFound):
        return OpenDSRError(404, exc.message, reason="NotFound")
    if isinstance(exc, DuplicateRequest):
        message = f"subject_request_id {exc.request_id} was already used for a different request"
        return OpenDSRError(409, message, reason="Conflict")
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
        return OpenDSRError(429, exc.message, reason="RateLimited", headers=headers)
    if isinstance(exc, Invalid):
        return OpenDSRError(400, exc.message, exc.errors)
    if isinstance(exc, Conflict):
        return OpenDSRError(400, exc.message, reason="IllegalStateException")
    return OpenDSRError(exc.status, exc.message)


async def _refused(request: Request, exc: ServiceError, who: Caller | None) -> Response:
    """A service's refusal as the OpenDSR answer (a Forbidden one audited first, as on /v1)."""
    if isinstance(exc, Forbidden):
        await audit_refusal(request, exc.audit_reason, who)
    return _error(request, _refusal(exc))


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
    who: Caller | None = None
    try:
        who = await _who(request, "admin")
        return await _create(request, who)
    except ServiceError as exc:
        return await _refused(request, exc, who)
    except OpenDSRError as exc:
        return _error(request, exc)


async def _create(request: Request, who: Caller) -> Response:
    rt = runtime(request)
    _key(request)  # refuse before writing anything when no key is configured
    take_turn(rt.limiter, who)
    raw = await request.body()
    try:
        req = opendsr.parse_request(
            raw,
            rt.settings.opendsr_processor_domain,
            allow_insecure_callbacks=rt.settings.opendsr_allow_insecure_callbacks,
        )
    except opendsr.Invalid as exc:
        raise OpenDSRError(400, exc.message, exc.errors) from exc
    if not rt.settings.opendsr_allow_insecure_callbacks:
        policy = netguard.Policy.from_list(rt.settings.callback_allowed_networks)
        if errors := await opendsr.check_callback_hosts(req.status_callback_urls, policy):
            raise OpenDSRError(400, errors[0], errors)
    with rt.tracer.start_as_current_span("intake opendsr request"):
        done = await requests.submit(uow(request), req, who, rt.submit_policy())
    row = done.job
    body = {
        "controller_id": who.org_id,
        "expected_completion_time": opendsr.rfc3339(row["extended_due_at"] or row["due_at"]),
        "received_time": opendsr.rfc3339(row["received_at"]),
        "encoded_request": base64.b64encode(raw).decode(),
        "subject_request_id": req.subject_request_id,
    }
    status = 201 if done.created else 200
    return _signed(request, opendsr.with_processor_signature(body, _key(request)), status)


RequestId = Annotated[str, Path(pattern=contract.REQUEST_ID_PATTERN)]


async def status(subject_request_id: RequestId, request: Request) -> Response:
    """Section 8: the request's status (read-only: a viewer key is enough)."""
    who: Caller | None = None
    try:
        who = await _who(request, "viewer")
        row = await requests.find(uow(request), who, _request_id(subject_request_id))
        return _signed(request, opendsr.status_body(facts(who.org_id, row)))
    except ServiceError as exc:
        return await _refused(request, exc, who)
    except OpenDSRError as exc:
        return _error(request, exc)


async def cancel(subject_request_id: RequestId, request: Request) -> Response:
    """Section 9: allowed only while the request is `pending` (202); otherwise 400 naming
    its status. An erasure becomes `cancelled` when its worker confirms (a callback
    follows); an export not yet handed to the exporter is cancelled at once."""
    who: Caller | None = None
    try:
        who = await _who(request, "admin")
        row = await requests.cancel(uow(request), who, _request_id(subject_request_id))
        return _cancelled(request, who, row, subject_request_id)
    except ServiceError as exc:
        return await _refused(request, exc, who)
    except OpenDSRError as exc:
        return _error(request, exc)


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


router.add_api_route(
    "/cert.pem",
    certificate,
    methods=["GET"],
    name="opendsr_certificate",
    response_class=contract.PemResponse,
    responses=contract.CERTIFICATE,
)
for _version in VERSIONS:
    # The docs show the current names once; the versioned and OpenGDPR aliases work the same.
    _listed = _version == ""
    router.add_api_route(
        f"{_version}/discovery",
        discovery,
        methods=["GET"],
        include_in_schema=_listed,
        responses=contract.DISCOVERY,
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
            responses=contract.CREATE,
            openapi_extra={"requestBody": contract.REQUEST_BODY},
        )
        router.add_api_route(
            _path, status, methods=["GET"], include_in_schema=_listed, responses=contract.STATUS
        )
        router.add_api_route(
            _path,
            cancel,
            methods=["DELETE"],
            status_code=202,
            include_in_schema=_listed,
            responses=contract.CANCEL,
        )
