"""The envelope typed by its payload, for handlers and the AsyncAPI document.

On the wire nothing changes: an `Event[P]` is the `Envelope` JSON whose `payload` is a `P`.
FastStream validates it before the handler runs (a message that does not fit is poison and is
dead-lettered at once), and a topic carrying several commands is a union discriminated on
`type`. `envelope()` gives back the plain `Envelope`, payload exactly as received, which is
what the services' functions take.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Generic, Literal, Union, cast

from pydantic import Field, PrivateAttr, create_model, model_validator
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

from shared.events.envelope import Envelope, P, Payload
from shared.events.jobs import (
    CancelErasure,
    CancelExport,
    EraseChunk,
    ErasureRequested,
    ExportRequested,
    RestoreErasure,
)
from shared.events.notifications import SendEmail
from shared.events.retention import RetentionRequested


class Event(Envelope, Generic[P]):
    """An envelope whose payload has been checked against its model."""

    payload: P  # type: ignore[assignment]
    _raw: dict[str, Any] | None = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_payload(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        event = handler(data)
        if isinstance(data, dict) and isinstance(data.get("payload"), dict):
            event._raw = data["payload"]  # what the producer sent, to pass on unchanged
        return event

    def envelope(self) -> Envelope:
        fields = {k: getattr(self, k) for k in Envelope.model_fields if k != "payload"}
        payload = self._raw if self._raw is not None else self.payload.model_dump(mode="json")
        return Envelope(**fields, payload=payload)


_STATIC: dict[type[Payload], type[Event[Any]]] = {}


@cache
def event_model(payload: type[Payload]) -> type[Event[Any]]:
    """`Event[payload]` whose `type` is the payload's event type (the discriminator)."""
    if payload in _STATIC:
        return _STATIC[payload]
    kind: Any = Literal[payload.event_type]
    model: Any = create_model(
        f"{payload.__name__}Event",
        __base__=Event[payload],  # type: ignore[valid-type]
        __module__=__name__,
        type=(kind, ...),
    )
    return cast(type[Event[Any]], model)


def one_of(*payloads: type[Payload]) -> Any:
    """The union of these events, discriminated on `type` (for schemas and annotations)."""
    if len(payloads) == 1:
        return event_model(payloads[0])
    members = tuple(event_model(p) for p in payloads)
    return Annotated[Union[members], Field(discriminator="type")]  # noqa: UP007


# The commands handlers subscribe to, spelled out so that type checkers see them.
class ErasureRequestedEvent(Event[ErasureRequested]):
    type: Literal["ErasureRequested"]


class CancelErasureEvent(Event[CancelErasure]):
    type: Literal["CancelErasure"]


class RestoreErasureEvent(Event[RestoreErasure]):
    type: Literal["RestoreErasure"]


class RetentionRequestedEvent(Event[RetentionRequested]):
    type: Literal["RetentionRequested"]


class EraseChunkEvent(Event[EraseChunk]):
    type: Literal["EraseChunk"]


class ExportRequestedEvent(Event[ExportRequested]):
    type: Literal["ExportRequested"]


class CancelExportEvent(Event[CancelExport]):
    type: Literal["CancelExport"]


class SendEmailEvent(Event[SendEmail]):
    type: Literal["SendEmail"]


for _model in (
    ErasureRequestedEvent,
    CancelErasureEvent,
    RestoreErasureEvent,
    RetentionRequestedEvent,
    EraseChunkEvent,
    ExportRequestedEvent,
    CancelExportEvent,
    SendEmailEvent,
):
    _STATIC[_model.model_fields["payload"].annotation] = _model  # type: ignore[index]
