"""OpenDSR (formerly OpenGDPR), the processor side of a request: pure mapping and validation.

Specification: https://github.com/opengdpr/OpenDSR/blob/master/specification.md (v2.0; the
v1 text, named OpenGDPR, is on the `opengdpr_v1` branch). Section links below point there.

- A request (section 7.1) becomes Lethe's `RequestIn`: `erasure` -> an erasure, `access` and
  `portability` -> an export; identities (section 5) map onto the subject's fields
  (`opendsr_identities`, re-exported here).

Statuses, bodies and signing, which the notifier's callbacks share, are in shared/opendsr.py;
they are re-exported here so intake's routes read `opendsr.<name>` for either side.
Nothing here touches HTTP, Kafka or the database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from services.intake.domain import RequestIn

# Section 5, the identities, re-exported with the rest of the request's mapping.
from services.intake.opendsr_identities import (  # noqa: F401
    IDENTITY_FORMATS,
    IDENTITY_TYPES,
    SPARE_EMAIL_SLOTS,
    Identity,
    Mapped,
    hash_email,
    map_identities,
)
from shared import netguard

# The protocol, re-exported: intake's routes read `opendsr.<name>` for either side.
from shared.opendsr import (  # noqa: F401
    API_VERSION,
    DOMAIN_HEADERS,
    IDENTITIES,
    RECEIVED,
    REQUEST_STATUS,
    REQUEST_TYPES,
    SIGNATURE_HEADERS,
    SUPPORTED_MAJOR_VERSIONS,
    JobFacts,
    NotConfigured,
    RequestStatus,
    callback_body,
    check_certificate,
    dev_certificate,
    discovery,
    dumps,
    error_body,
    load_signing_key,
    new_signing_key_pem,
    processor_certificate,
    public_key_pem,
    request_status,
    rfc3339,
    sign,
    signed_headers,
    status_after,
    status_body,
    status_changes,
    verify,
    with_processor_signature,
)

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
_SPACES = re.compile(r"\s*")
_RFC3339 = re.compile(r"^\s*\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


# --- the request (section 7.1) ----------------------------------------------------------


def _rfc3339_text(value: Any) -> Any:
    """A time as the specification writes it (RFC 3339 text), never a number read as a
    Unix time."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 date-time, e.g. 2018-10-02T15:00:00Z")
    return value


class OpenDSRRequest(BaseModel):
    """An OpenDSR request as a controller sends it (section 7.1.1). Unknown fields are
    ignored (a newer minor version may add some; section 3.4), and so is `null` in an
    optional field (`parse_request`)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    subject_request_id: str
    subject_request_type: Literal["erasure", "access", "portability"]
    submitted_time: Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]
    subject_identities: list[Identity] = Field(default_factory=list, max_length=20)
    # REQUIRED since 2.0, yet the 2.0 example itself omits it, and 1.x never had it: gdpr.
    regulation: Literal["gdpr", "ccpa"] = "gdpr"
    api_version: str | None = Field(None, max_length=20)
    status_callback_urls: list[str] = Field(default_factory=list, max_length=10)
    extensions: dict[str, dict[str, Any]] | None = None
    # A top-level field up to 0.1.x, later an extension; a string or a number, never a bool.
    property_id: StrictStr | StrictInt | None = None

    @field_validator("subject_request_id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not UUID4.match(v):
            raise ValueError("must be a lowercase UUID v4 (section 1.1)")
        return v

    @field_validator("api_version")
    @classmethod
    def _version(cls, v: str | None) -> str | None:
        if v is not None and v.split(".")[0] not in SUPPORTED_MAJOR_VERSIONS:
            raise ValueError(f"unsupported; this processor speaks {API_VERSION} (and 1.x)")
        return v

    @field_validator("status_callback_urls")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        for url in v:
            if not re.match(r"^https?://[^\s/]+", url) or len(url) > 2000:
                raise ValueError("each must be an http(s) URL")
        if len(set(v)) != len(v):
            raise ValueError("a URL is listed twice")
        return v

    @model_validator(mode="after")
    def _identities(self) -> OpenDSRRequest:
        if not self.subject_identities:
            raise ValueError("subject_identities: give at least one identity (section 5.3)")
        return self


class Invalid(Exception):
    """A request the processor refuses (400), each error naming the field."""

    def __init__(self, message: str, errors: list[str]) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors


def _next_char(text: str, start: int) -> str:
    m = _SPACES.match(text, start)
    end = m.end() if m else start
    return text[end : end + 1]


def loads_lenient(raw: bytes) -> Any:
    """JSON, tolerating trailing commas: the specification's own request example (7.2) has
    one after `"property_id": "123456"`, and a request made exactly as shown must work."""
    try:
        return json.loads(raw)
    except ValueError as first:
        text = raw.decode("utf-8", errors="strict") if raw else ""
        out: list[str] = []
        in_string = escaped = False
        for i, ch in enumerate(text):
            if in_string:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch == "," and _next_char(text, i + 1) in ("}", "]"):
                continue  # a trailing comma
            out.append(ch)
        try:
            return json.loads("".join(out))
        except ValueError:
            raise first from None


def _field_errors(exc: ValidationError) -> list[str]:
    out = []
    for e in exc.errors():
        where = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in e["loc"])
        where = where.replace(".[", "[")
        msg = e["msg"].removeprefix("Value error, ")
        out.append(f"{where}: {msg}" if where and not msg.startswith(where) else msg)
    return out


def _without_optional_nulls(data: dict[str, Any]) -> dict[str, Any]:
    """`null` in an optional field means "not given" (controllers serialise it so)."""
    fields = OpenDSRRequest.model_fields
    out = {k: v for k, v in data.items() if not (v is None and not _required(fields.get(k)))}
    idents = out.get("subject_identities")
    if isinstance(idents, list):
        out["subject_identities"] = [
            {k: v for k, v in i.items() if v is not None} if isinstance(i, dict) else i
            for i in idents
        ]
    return out


def _required(info: Any) -> bool:
    return bool(info is not None and info.is_required())


def check_callback_urls(urls: list[str]) -> list[str]:
    """Problems with callback URLs a production processor should not call, seen without
    DNS: plain http, or a host that is (in any numeric form the OS accepts: `127.1`,
    `0x7f000001`, ...) or names an internal address (`shared.netguard` rules)."""
    errors = []
    for i, url in enumerate(urls):
        where = f"status_callback_urls[{i}]"
        if urlsplit(url).scheme != "https":
            errors.append(f"{where}: must be an https URL (section 3.3)")
            continue
        try:
            _, host, _ = netguard.split_url(url)
            netguard.check_literal(host, netguard.Policy())
        except netguard.Refused as exc:
            errors.append(f"{where}: must not point at an internal address ({exc.rule})")
    return errors


async def check_callback_hosts(urls: list[str], policy: netguard.Policy) -> list[str]:
    """The same URLs resolved: refused if any address a name resolves to is internal. A
    name that does not resolve now passes (a DNS hiccup must not lose the request); the
    notifier checks again at send time and connects only to what it checked."""
    errors = []
    for i, url in enumerate(urls):
        try:
            await netguard.check_url(url, policy)
        except netguard.Refused as exc:
            if exc.rule != "host does not resolve":
                errors.append(
                    f"status_callback_urls[{i}]: must not point at an internal address ({exc.rule})"
                )
    return errors


def parse_request(
    raw: bytes, processor_domain: str, *, allow_insecure_callbacks: bool = False
) -> OpenDSRRequest:
    """The request body, validated; `Invalid` names every problem's field."""
    if not raw.strip():
        raise Invalid("the request body is empty", ["body: a JSON object is required"])
    try:
        data = loads_lenient(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid("the request body is not JSON", [f"body: not JSON ({exc})"]) from None
    if not isinstance(data, dict):
        raise Invalid("the request body must be a JSON object", ["body: not an object"])
    data = _without_optional_nulls(data)
    try:
        req = OpenDSRRequest.model_validate(data)
    except ValidationError as exc:
        errors = _field_errors(exc)
        raise Invalid(errors[0], errors) from None
    if not allow_insecure_callbacks and (errors := check_callback_urls(req.status_callback_urls)):
        raise Invalid(errors[0], errors)
    ours = (req.extensions or {}).get(processor_domain) or {}
    if req.property_id is None and ours.get("property_id") is not None:
        req = req.model_copy(update={"property_id": ours["property_id"]})
    return req


def to_request_in(req: OpenDSRRequest) -> RequestIn:
    """Section 7.1 -> Lethe's request, from the identities this processor can use."""
    mapped = map_identities(req.subject_identities)
    if mapped.errors:
        raise Invalid(mapped.errors[0], mapped.errors)
    kind = req.subject_request_type
    reason = f"OpenDSR {kind} request, submitted {req.submitted_time.isoformat()}"
    if mapped.ignored:
        reason += f"; identities ignored: {', '.join(mapped.ignored)}"
    try:
        return RequestIn(
            type="erasure" if kind == "erasure" else "export",
            subject=mapped.subject,
            regulation=req.regulation,
            request_id=req.subject_request_id,
            reason=reason,
            # Portability means a machine-readable copy (GDPR Art. 20); access, a readable one.
            format="json" if kind == "portability" else "both",
        )
    except ValidationError as exc:  # Lethe's own rules, should the two ever disagree
        errors = _field_errors(exc)
        raise Invalid(errors[0], errors) from None


def fingerprint(req: OpenDSRRequest, key: bytes, org_id: str) -> str:
    """Keyed (the body holds identities) and per org (as subject hashes are): what was
    asked, to tell a repeat from a conflict."""
    body = json.dumps(req.model_dump(mode="json"), sort_keys=True)
    return hmac.new(key, f"org:{org_id}\n{body}".encode(), hashlib.sha256).hexdigest()
