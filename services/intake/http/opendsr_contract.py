"""The OpenDSR routes' contract in the OpenAPI document: the request body as
`opendsr.parse_request` and `to_request_in` accept it (the route reads raw bytes, so
FastAPI cannot derive it), the path's id pattern, and each route's answers in OpenDSR's
error shape (section 7.7)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response

from services.intake import opendsr
from services.intake.domain.requests import EMAIL_PATTERN, NOT_SPACE, SOMETHING, TRIMMED
from services.intake.http.contract import RETRY_AFTER, OpenDSRProblem

# The id in the path, as `_request_id` checks it (a lowercase UUID v4).
REQUEST_ID_PATTERN = opendsr.UUID4.pattern
_HEX = {"sha256": 64, "sha1": 40, "md5": 32}


def _identity(kind: str, form: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["identity_type", "identity_format", "identity_value"],
        "properties": {
            "identity_type": {"const": kind},
            "identity_format": {"const": form},
            "identity_value": {"type": "string", "minLength": 1, "maxLength": 320, **value},
        },
    }


def _usable_identities() -> list[dict[str, Any]]:
    """The identity kinds this processor uses, each with the value it must have (section 5;
    `opendsr_identities._malformed`). Others are ignored when one of these is present."""
    out = []
    for (kind, form), target in opendsr.IDENTITIES.items():
        if target == "email":
            value: dict[str, Any] = {"pattern": EMAIL_PATTERN}
        elif form in _HEX:
            value = {"pattern": f"^{TRIMMED}*[0-9a-fA-F]{{{_HEX[form]}}}{TRIMMED}*$"}
        else:
            value = {"pattern": SOMETHING, "maxLength": 200}
        out.append(_identity(kind, form, value))
    return out


def request_schema() -> dict[str, Any]:
    """Section 7.1.1 as this processor accepts it. Optional fields may be `null` (read as not
    given); unknown fields are ignored (section 3.4). In production callback URLs must also be
    https and resolve to public addresses (`LETHE_OPENDSR_ALLOW_INSECURE_CALLBACKS` off),
    else 400 naming the URL."""
    majors = "|".join(opendsr.SUPPORTED_MAJOR_VERSIONS)
    return {
        "type": "object",
        "required": [
            "subject_request_id",
            "subject_request_type",
            "submitted_time",
            "subject_identities",
        ],
        "properties": {
            "subject_request_id": {
                "type": "string",
                "pattern": f"^{TRIMMED}*{REQUEST_ID_PATTERN[1:-1]}{TRIMMED}*$",
            },
            "subject_request_type": {"enum": ["erasure", "access", "portability"]},
            "submitted_time": {"type": "string", "format": "date-time"},
            "subject_identities": {
                "type": "array",
                "minItems": 1,
                "maxItems": 20,
                "items": {"anyOf": _usable_identities()},
            },
            "regulation": {"enum": ["gdpr", "ccpa", None]},
            "api_version": {
                "type": ["string", "null"],
                "maxLength": 20,
                "pattern": rf"^{TRIMMED}*({majors})(\.[\s\S]*|{TRIMMED}*)$",
            },
            "status_callback_urls": {
                "type": ["array", "null"],
                "maxItems": 10,
                "uniqueItems": True,
                "items": {
                    "type": "string",
                    "maxLength": 2000,
                    "pattern": f"^{TRIMMED}*https?://{NOT_SPACE[:-1]}/]",
                },
            },
            "extensions": {
                "type": ["object", "null"],
                "additionalProperties": {"type": "object"},
            },
            "property_id": {"type": ["string", "integer", "null"]},
        },
    }


REQUEST_BODY = {
    "required": True,
    "content": {"application/json": {"schema": request_schema()}},
}
_WHY = {
    400: "A bad request (section 7.5): the body, the id or the content type; `errors` names "
    "each problem.",
    401: "No API key, or an unknown or revoked one.",
    403: "The key's role is too low.",
    404: "No request with this id for the key's organisation.",
    409: "This subject_request_id was already used for a different request.",
    429: "Too many submissions for this key; `Retry-After` says when to try again.",
    503: "OpenDSR is not set up on this processor (no signing key).",
}


def answers(*codes: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"model": OpenDSRProblem, "description": _WHY[code]}
        if code == 429:
            entry["headers"] = RETRY_AFTER
        out[code] = entry
    return out


CREATE = {
    201: {"description": "Accepted: the signed receipt (section 7.3)."},
    200: {"description": "The same id and request again: the same receipt."},
    **answers(400, 401, 403, 409, 429, 503),
}
STATUS = {
    200: {"description": "The request's status (section 8)."},
    **answers(400, 401, 403, 404, 503),
}
CANCEL = {202: {"description": "Cancelled (section 9.2)."}, **answers(400, 401, 403, 404, 503)}
DISCOVERY = {200: {"description": "What this processor supports (section 6)."}, **answers(503)}
CERTIFICATE = {
    200: {
        "description": "The X.509 certificate (PEM) of the signing key.",
        "content": {"application/x-pem-file": {"schema": {"type": "string"}}},
    },
    **answers(503),
}


class PemResponse(Response):
    media_type = "application/x-pem-file"
