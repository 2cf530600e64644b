"""The auditor's own events (written straight into the trail it keeps)."""

from __future__ import annotations

from shared.events.envelope import Payload, event


@event
class AuditPruned(Payload):
    """A retention run of the audit trail itself."""

    event_type = "AuditPruned"
    rows_deleted: int
    retention_days: int
    first_seq_kept: int | None


@event
class SigningKeyChanged(Payload):
    """Checkpoints are now signed by another key (a rotation, or a first start)."""

    event_type = "SigningKeyChanged"
    previous_key_id: str | None
    key_id: str
    dev_key: bool
