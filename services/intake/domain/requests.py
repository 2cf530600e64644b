"""A request as submitted: its shape, its identities and the messages that name its
wrong fields. Pure."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
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


class SubjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    email: str | None = Field(None, max_length=320)
    user_id: str | None = Field(None, max_length=200)
    phone: str | None = Field(None, max_length=50)
    external_id: str | None = Field(None, max_length=200)
    email_sha256: str | None = Field(
        None, description="hex SHA-256 of the trimmed, lowercased email"
    )
    email_sha1: str | None = Field(None, description="hex SHA-1 of the trimmed, lowercased email")
    email_md5: str | None = Field(None, description="hex MD5 of the trimmed, lowercased email")

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

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    type: Literal["erasure", "export"]
    scope: Literal["subject", "organisation"] = "subject"
    subject: SubjectIn | None = None
    confirm_org_name: str | None = None
    regulation: Literal["gdpr", "ccpa", "custom"] = "gdpr"
    due_in_days: int | None = Field(None, ge=1, le=90, description="Only with regulation=custom")
    recovery_window_days: int | None = Field(None, ge=0, le=30)
    request_id: str | None = Field(None, min_length=1, max_length=200)
    notify_email: str | None = Field(None, max_length=320)
    reason: str | None = Field(None, max_length=2000)
    format: Literal["json", "csv", "both"] = "both"
    include_media: bool = False
    link_ttl_hours: int = Field(24, ge=1, le=168, description="Export link lifetime: 1 h..7 days")

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
