"""A request as submitted: its shape, its identities and the messages that name its
wrong fields. Pure."""

from __future__ import annotations

import copy
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Hashed identities (as OpenDSR controllers send them): the hex digest of the trimmed,
# lowercased email. Kind -> hex length.
HASHED_EMAIL = {"email_sha256": 64, "email_sha1": 40, "email_md5": 32}
_HEX = re.compile(r"^[0-9a-f]+$")
# The same rules as JSON Schema patterns, spelled out so that every regex engine reads them
# alike: pydantic trims Unicode White_Space; Python's `\s` (and str.strip) also covers
# \x1c-\x1f.
_TRIMMED = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
TRIMMED = f"[{_TRIMMED}]"
NOT_SPACE = f"[^{_TRIMMED}\\x1c-\\x1f]"  # what Python's strip keeps
_CORE = f"[^@{_TRIMMED}\\x1c-\\x1f]+"
EMAIL_PATTERN = f"^{TRIMMED}*{_CORE}@{_CORE}\\.{_CORE}{TRIMMED}*$"
SOMETHING = f"[^{_TRIMMED}]"  # not empty once trimmed
IDENTITIES = ("email", "user_id", "phone", "external_id", *HASHED_EMAIL)


def _hex(size: int) -> dict[str, Any]:
    return {"pattern": f"^{TRIMMED}*[0-9a-fA-F]{{{size}}}{TRIMMED}*$"}


def _one_identity(schema: dict[str, Any]) -> None:
    """At least one identity that is not empty once trimmed."""
    schema["anyOf"] = [
        {"required": [f], "properties": {f: {"type": "string", "pattern": SOMETHING}}}
        for f in IDENTITIES
    ]


def _given(schema: dict[str, Any], name: str) -> dict[str, Any]:
    """A nullable property's schema when it is given (its non-null branch)."""
    prop = schema["properties"][name]
    return copy.deepcopy(next(s for s in prop["anyOf"] if s.get("type") != "null"))


def _request_rules(schema: dict[str, Any]) -> None:
    """The model-level rules of `RequestIn._scope`, for clients and schema-driven tests."""
    subject = _given(schema, "subject")
    due = {"type": "integer", "minimum": 1, "maximum": 90}  # as `due_in_days` below
    schema["allOf"] = [
        {
            "anyOf": [
                {
                    "properties": {"scope": {"const": "subject"}, "subject": subject},
                    "required": ["subject"],
                },
                {
                    "properties": {
                        "scope": {"const": "organisation"},
                        "subject": {"type": "null"},
                        "confirm_org_name": {"type": "string"},
                    },
                    "required": ["scope", "confirm_org_name"],
                },
            ]
        },
        {
            "anyOf": [
                {
                    "properties": {
                        "regulation": {"const": "custom"},
                        "due_in_days": due,
                    },
                    "required": ["regulation", "due_in_days"],
                },
                {
                    "properties": {
                        "regulation": {"enum": ["gdpr", "ccpa"]},
                        "due_in_days": {"type": "null"},
                    }
                },
            ]
        },
    ]


def _number(value: Any) -> Any:
    """JSON Schema's integer: a number without a fraction (10 or 10.0), never `"10"` or
    `true` (which pydantic would otherwise read as 10 and 1)."""
    if isinstance(value, bool | str):
        raise ValueError("must be a whole number")
    return value


# After the constraints (`Annotated[int, Field(ge=1), NUMBER]`), so the schema keeps them.
NUMBER = BeforeValidator(_number)


class SubjectIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra=_one_identity
    )
    email: str | None = Field(None, max_length=320, json_schema_extra={"pattern": EMAIL_PATTERN})
    user_id: str | None = Field(None, max_length=200)
    phone: str | None = Field(None, max_length=50)
    external_id: str | None = Field(None, max_length=200)
    email_sha256: str | None = Field(
        None, description="hex SHA-256 of the trimmed, lowercased email", json_schema_extra=_hex(64)
    )
    email_sha1: str | None = Field(
        None, description="hex SHA-1 of the trimmed, lowercased email", json_schema_extra=_hex(40)
    )
    email_md5: str | None = Field(
        None, description="hex MD5 of the trimmed, lowercased email", json_schema_extra=_hex(32)
    )

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and not _EMAIL.match(v):
            raise ValueError("not an email address")
        return v

    @field_validator("email_sha256", "email_sha1", "email_md5")
    @classmethod
    def _hashed(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        size = HASHED_EMAIL[str(info.field_name)]
        v = v.lower()
        if len(v) != size or not _HEX.match(v):
            raise ValueError(f"not a hex digest: {size} hex characters expected")
        return v

    @model_validator(mode="after")
    def _at_least_one(self) -> SubjectIn:
        if not any(self.model_dump().values()):
            raise ValueError(
                "give at least one identity: email, user_id, phone, external_id, "
                "email_sha256, email_sha1 or email_md5"
            )
        return self


class RequestIn(BaseModel):
    """A data-subject request as submitted over HTTP (or, later, Kafka)."""

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra=_request_rules
    )
    type: Literal["erasure", "export"]
    scope: Literal["subject", "organisation"] = "subject"
    subject: SubjectIn | None = None
    confirm_org_name: str | None = None
    regulation: Literal["gdpr", "ccpa", "custom"] = "gdpr"
    due_in_days: Annotated[int, Field(ge=1, le=90), NUMBER] | None = Field(
        None, description="Only with regulation=custom"
    )
    recovery_window_days: Annotated[int, Field(ge=0, le=30), NUMBER] | None = None
    request_id: str | None = Field(
        None, min_length=1, max_length=200, json_schema_extra={"pattern": SOMETHING}
    )
    notify_email: str | None = Field(
        None, max_length=320, json_schema_extra={"pattern": EMAIL_PATTERN}
    )
    reason: str | None = Field(None, max_length=2000)
    format: Literal["json", "csv", "both"] = "both"
    include_media: StrictBool = False
    link_ttl_hours: Annotated[int, Field(ge=1, le=168), NUMBER] = Field(
        24, description="Export link lifetime: 1 h..7 days"
    )

    @field_validator("notify_email")
    @classmethod
    def _notify(cls, v: str | None) -> str | None:
        if v is not None and not _EMAIL.match(v):
            raise ValueError("not an email address")
        return v

    @model_validator(mode="after")
    def _scope(self) -> RequestIn:
        if self.scope == "subject" and self.subject is None:
            raise ValueError("subject: required when scope is 'subject'")
        if self.scope == "organisation" and self.subject is not None:
            raise ValueError("subject: not allowed when scope is 'organisation'")
        if (self.regulation == "custom") != (self.due_in_days is not None):
            raise ValueError("due_in_days: required with regulation 'custom', and only with it")
        return self


def field_errors(exc: ValidationError) -> list[str]:
    """One line per problem, each naming the field: `subject.email: not an email address`."""
    out = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        # Model-level checks name their field at the start of the message.
        out.append(f"{where}: {msg}" if where else msg)
    return out
