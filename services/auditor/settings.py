from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from shared.settings import LetheSettings


class AuditorSettings(LetheSettings):
    audit_signing_key: SecretStr | None = Field(
        None,
        description=(
            "Ed25519 private key (base64 of the 32-byte seed) signing audit checkpoints. "
            "Required unless `LETHE_SUBJECT_HASH_KEY` is the dev default (then a public dev "
            "key is used)."
        ),
    )
    audit_signing_key_file: Path | None = Field(
        None, description="File holding `LETHE_AUDIT_SIGNING_KEY` instead (a mounted secret)."
    )
    audit_public_keys: str = Field(
        "",
        description=(
            "Extra trusted checkpoint public keys (base64, comma separated): retired keys "
            "after a rotation, or the only keys where verification runs without the private "
            "key."
        ),
    )
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
