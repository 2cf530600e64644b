from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from shared.auditchain.keys import AuditKeySettings


class AuditorSettings(AuditKeySettings):
    # Only the audit signing key, which may come from a file: its absence outside dev stops
    # the auditor at start (services/auditor/keys.signing_key); a value set here is checked.
    required_secrets: ClassVar[tuple[str, ...]] = ()

    audit_checkpoint_every_rows: int = Field(
        1000, description="Sign a checkpoint of the chain head after this many new rows."
    )
    audit_checkpoint_every_seconds: float = Field(
        300, description="...and at least this often while rows keep coming."
    )
    audit_retention_days: int = Field(
        2192, ge=365, description="Audit rows older than this are pruned (at least 365; 6 years)."
    )
    audit_prune_every_hours: float = Field(
        24, description="How often the auditor runs the audit retention (0: never)."
    )
