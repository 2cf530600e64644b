"""`lethe audit ...`: the tamper-evident audit trail."""

from __future__ import annotations

import asyncio
import base64
import os
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from services.auditor import maintenance, store
from services.auditor.export import export
from services.auditor.keys import (
    SigningKeyMissing,
    generate_seed,
    is_dev,
    key_id,
    signing_key,
    trusted_public_keys,
)
from services.auditor.settings import AuditorSettings
from services.cli.common import console, load_env_file
from shared.auditchain.verify import verify_chain
from shared.db import create_pool

app = typer.Typer(help="The tamper-evident audit trail.")

EXIT_OK, EXIT_BAD_ROW, EXIT_BAD_CHECKPOINT, EXIT_NO_KEY = 0, 1, 2, 3


def auditor_settings() -> AuditorSettings:
    load_env_file(Path(os.environ.get("LETHE_ENV_FILE", ".local/env")))
    return AuditorSettings()


@app.command("verify")
def audit_verify() -> None:
    """Walk the chain and the signed checkpoints. Exit 0: intact; 1: a row does not match
    (named); 2: a checkpoint does not match or its signature fails (named); 3: no trusted
    public key configured."""
    s = auditor_settings()
    trusted = trusted_public_keys(s)
    if not trusted:
        console.print(
            "no trusted public key: set LETHE_AUDIT_PUBLIC_KEYS (or LETHE_AUDIT_SIGNING_KEY)",
            style="bold red",
        )
        raise typer.Exit(EXIT_NO_KEY)

    async def go() -> tuple[int, str]:
        pool = await create_pool(s.database_url)
        try:
            v = await verify_chain(pool, trusted)
        finally:
            await pool.close()
        if v.ok:
            text = f"OK: {v.rows} rows, {v.checkpoints} signed checkpoints, chain intact"
            if v.first_seq and v.first_seq > 1:
                text += f" (starts at seq {v.first_seq}, after a checkpoint: older rows pruned)"
            if v.unsigned_tail:
                text += f"; {v.unsigned_tail} newest rows not yet covered by a checkpoint"
            return EXIT_OK, text
        if v.kind == "checkpoint":
            return EXIT_BAD_CHECKPOINT, f"BAD CHECKPOINT at seq {v.bad_checkpoint_seq}: {v.reason}"
        return (
            EXIT_BAD_ROW,
            f"BROKEN at row {v.first_bad_seq}: {v.reason} ({v.rows} rows verified before it)",
        )

    if is_dev(s):
        console.print("note: dev deployment, checkpoints use the public dev key", style="yellow")
    code, text = asyncio.run(go())
    console.print(text, style="green" if code == EXIT_OK else "bold red")
    raise typer.Exit(code)


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not an ISO date or date-time") from exc


@app.command("export")
def audit_export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Zip file to write")] = Path(
        "audit-export.zip"
    ),
    since: Annotated[
        str | None, typer.Option("--from", help="Rows recorded from (ISO date/time, UTC if naive)")
    ] = None,
    until: Annotated[str | None, typer.Option("--to", help="...up to, excluded")] = None,
    org: Annotated[str | None, typer.Option("--org", help="Only this organisation's rows")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv")] = "jsonl",
) -> None:
    """Export rows, checkpoints, the public key and offline verification steps as a zip."""
    if fmt not in ("jsonl", "csv"):
        raise typer.BadParameter("--format is jsonl or csv")
    s = auditor_settings()
    lo, hi = _when(since), _when(until)
    lo, hi = (d.astimezone() if d and d.tzinfo is None else d for d in (lo, hi))
    try:
        key, _ = signing_key(s)
    except SigningKeyMissing:
        key = None
    trusted = trusted_public_keys(s)

    async def go() -> str:
        pool = await create_pool(s.database_url)
        try:
            if key is not None:  # sign the head first, so the export ends at a checkpoint
                await store.checkpoint_head(pool, key)
            last = await store.last_checkpoint(pool)
            public = trusted.get(last.key_id) if last else next(iter(trusted.values()), None)
            if public is None:
                raise typer.BadParameter("no trusted public key: set LETHE_AUDIT_PUBLIC_KEYS")
            summary = await export(
                pool,
                out,
                public_key=public,
                fmt=fmt,  # type: ignore[arg-type]
                org_id=org,
                since=lo,
                until=hi,
            )
        finally:
            await pool.close()
        if summary is None:
            return "no audit rows in that range"
        return (
            f"wrote {summary.path}: seq {summary.first_seq}..{summary.last_seq}, "
            f"{summary.rows} rows, {summary.links} links, {summary.checkpoints} checkpoints "
            f"(key {key_id(public)})"
        )

    console.print(asyncio.run(go()))


@app.command("prune")
def audit_prune(
    retention_days: Annotated[
        int | None, typer.Option(help="Override LETHE_AUDIT_RETENTION_DAYS (at least 365)")
    ] = None,
) -> None:
    """Delete audit rows past the retention, up to a signed checkpoint (what stays verifies)."""
    s = auditor_settings()
    days = retention_days or s.audit_retention_days
    key, _ = signing_key(s)

    async def go() -> int:
        pool = await create_pool(s.database_url)
        try:
            signer = store.Signer(key, s.audit_checkpoint_every_rows)
            return await maintenance.prune(pool, signer, days)
        finally:
            await pool.close()

    console.print(f"pruned {asyncio.run(go())} rows older than {days} days")


@app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the chain head now (the auditor also does it every N rows or M seconds)."""
    s = auditor_settings()
    key, _ = signing_key(s)

    async def go() -> str:
        pool = await create_pool(s.database_url)
        try:
            cp = await store.checkpoint_head(pool, key)
        finally:
            await pool.close()
        return f"signed seq {cp.seq}" if cp else "head already signed"

    console.print(asyncio.run(go()))


def _record_keygen(kid: str) -> None:
    """Key management goes into the audit trail (the key id only, never the seed). keygen may
    run where Kafka is not reachable: then it says so and the key is still printed."""

    async def go() -> None:
        from services.cli.common import settings
        from shared.events import Actor, make_event
        from shared.events.keys import AuditSigningKeyGenerated
        from shared.events.topics import AUDIT
        from shared.kafka import create_broker, publish_event

        env = make_event(
            AuditSigningKeyGenerated(key_id=kid), actor=Actor(kind="operator", id="cli")
        )
        broker = create_broker(settings().kafka_bootstrap_servers, service="cli")
        try:
            await broker.start()
            await publish_event(broker, AUDIT, env)
        finally:
            await broker.stop()

    try:
        asyncio.run(asyncio.wait_for(go(), timeout=20))
    except Exception as exc:  # any failure: say it; the key printed is still valid
        typer.echo(
            f"warning: key {kid} NOT recorded in the audit trail ({type(exc).__name__})", err=True
        )


@app.command("keygen")
def audit_keygen(
    record: Annotated[
        bool, typer.Option(help="Record the new key's id in the audit trail (via Kafka)")
    ] = True,
) -> None:
    """Print a new signing key (for LETHE_AUDIT_SIGNING_KEY) and its public key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from services.auditor.keys import public_raw

    seed = generate_seed()
    pub = public_raw(Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed)).public_key())
    print(f"LETHE_AUDIT_SIGNING_KEY={seed}")
    print(f"LETHE_AUDIT_PUBLIC_KEYS={base64.b64encode(pub).decode()}  # key id {key_id(pub)}")
    if record:
        _record_keygen(key_id(pub))


@app.command("public-key")
def audit_public_key() -> None:
    """Print the trusted public keys (base64) with their ids: what to publish to auditors."""
    for kid, pub in trusted_public_keys(auditor_settings()).items():
        print(f"{kid} {base64.b64encode(pub).decode()}")
