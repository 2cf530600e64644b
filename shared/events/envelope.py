"""The one envelope every Lethe event travels in, and the registry of payload types."""

from __future__ import annotations

import builtins
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Payload(BaseModel):
    """Base of every event payload. Fields marked `pii=True` never reach the audit store."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1

    def audit_details(self) -> dict[str, Any]:
        pii = {
            name
            for name, f in type(self).model_fields.items()
            if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("pii")
        }
        return self.model_dump(mode="json", exclude=pii)


def pii(**kwargs: Any) -> Any:
    """A field holding personal data: carried on Kafka, kept out of audit rows."""
    return Field(json_schema_extra={"pii": True}, **kwargs)


P = TypeVar("P", bound=Payload)


class Actor(BaseModel):
    model_config = ConfigDict(frozen=True)
    kind: str  # "api_key", "service", "upstream"
    id: str


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    schema_version: int = 1
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    job_id: uuid.UUID | None = None
    org_id: str | None = None
    actor: Actor
    subject_hash: str | None = None
    trace: dict[str, str] = Field(default_factory=dict)
    payload: dict[str, Any]

    def payload_as(self, model: builtins.type[P]) -> P:
        if self.type != model.event_type:
            raise ValueError(f"event {self.event_id} is {self.type}, not {model.event_type}")
        return model.model_validate(self.payload)

    def key(self) -> bytes:
        """Partition key: the job for job topics (order per job), else the org."""
        return str(self.job_id or self.org_id or self.event_id).encode()


_REGISTRY: dict[str, type[Payload]] = {}


def event(cls: type[P]) -> type[P]:
    """Register a payload class under its `event_type`."""
    existing = _REGISTRY.get(cls.event_type)
    if existing is not None and existing is not cls:
        raise ValueError(f"event type {cls.event_type} registered twice")
    _REGISTRY[cls.event_type] = cls
    return cls


def payload_model(event_type: str) -> type[Payload] | None:
    return _REGISTRY.get(event_type)


def registered_types() -> dict[str, type[Payload]]:
    return dict(_REGISTRY)


def make_event(
    payload: Payload,
    *,
    actor: Actor,
    job_id: uuid.UUID | None = None,
    org_id: str | None = None,
    subject_hash: str | None = None,
    trace: dict[str, str] | None = None,
) -> Envelope:
    return Envelope(
        type=payload.event_type,
        schema_version=payload.schema_version,
        job_id=job_id,
        org_id=org_id,
        actor=actor,
        subject_hash=subject_hash,
        trace=trace or {},
        payload=payload.model_dump(mode="json"),
    )


def safe_details(env: Envelope) -> dict[str, Any]:
    """What may be kept of a payload (audit rows, timelines): never fields marked PII."""
    model = payload_model(env.type)
    if model is None:
        return {"unregistered_type": True}
    try:
        return model.model_validate(env.payload).audit_details()
    except ValidationError:
        return {"invalid_payload": True}
