"""Verification: resolve the subject again (nothing may be left), check that the objects
are where expected, and scan the platform's text columns for the subject's identities."""

from __future__ import annotations

import asyncio
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from services.eraser import domain, store
from services.eraser import objects as s3objects
from services.eraser.deps import EraserDeps
from services.eraser.models import Job
from services.eraser.sealing import SealedRequest
from shared.errors import reference
from shared.platform import KEY_CHUNK, count_unmasked
from shared.resolver import Ambiguous, Scope, Subject, stream_keys
from shared.scan import ScanHit, scan_identities


async def remaining(deps: EraserDeps, subject: Subject) -> dict[str, int]:
    """The map's view: rows the resolver still finds for the subject (masked rows count
    only while a column still holds its original value)."""
    dm, resolver = deps.datamap, deps.resolver
    left: dict[str, int] = {}
    async with deps.platform.acquire() as conn, conn.transaction():
        for table in resolver.tables(subject.scope):
            t = dm.tables[table]
            if t.action == "keep":
                continue
            n = 0
            sql, args = resolver.key_text_sql(table, subject)
            async for keys in stream_keys(conn, sql, args, KEY_CHUNK):
                if t.action == "mask":
                    n += await count_unmasked(
                        conn, table, t, deps.pk_types[table], keys, deps.column_types(table)
                    )
                else:
                    n += len(keys)
            if n:
                left[table] = n
    return left


async def verify(deps: EraserDeps, job: Job, request: SealedRequest, phase: str) -> dict[str, Any]:
    """Resolve the subject again: nothing may be left. Objects: where expected."""
    identities = request.identities if request.scope == "subject" else None
    scope = Scope(job.org_id, identities)
    async with deps.platform.acquire() as conn:
        try:
            subject = await deps.resolver.resolve(conn, scope)
        except Ambiguous:
            # Restored rows (or new ones) can make identities disagree again: still a check.
            subject = Subject(scope)
        held = await store.restoration_rows(conn, job.job_id)
    # The three checks read different things (the map's rows, the bucket, every text
    # column): side by side, each on its own connection.
    found: dict[str, Any] = {}
    left, objects_ok, scan = await asyncio.gather(
        remaining(deps, subject),
        _objects_if_any(deps, job, phase, found),
        _scan(deps, job.org_id, identities),
    )
    result: dict[str, Any] = {
        "phase": phase,
        "rows_remaining": left,
        "restoration_rows": held,
        **found,
        "scan": scan,
    }
    scan_ok = scan.get("ok", True) or bool(job.restored_rows)
    result["ok"] = domain.rows_ok(left, job.restored_rows) and objects_ok and scan_ok
    if phase == "purge":
        result["ok"] = result["ok"] and held == 0
    return result


async def _objects_if_any(deps: EraserDeps, job: Job, phase: str, result: dict[str, Any]) -> bool:
    """Only a map with object columns has objects to look at (and a bucket to ask)."""
    if not any(t.object_key_column for t in deps.datamap.tables.values()):
        return True
    return await _objects(deps, job, phase, result)


async def _objects(deps: EraserDeps, job: Job, phase: str, result: dict[str, Any]) -> bool:
    """Objects where expected (into `result`); False when they are not, or not known."""
    originals = [k for k, _ in await store.objects(deps.lethe, job.job_id, "quarantined")]
    purged = [k for k, _ in await store.objects(deps.lethe, job.job_id, "purged")]
    checked = originals + purged
    try:
        present = await s3objects.still_present(deps.s3, deps.bucket, checked)
        quarantined = await s3objects.list_prefix(
            deps.s3, deps.bucket, s3objects.quarantine_prefix(job.job_id)
        )
    except (BotoCoreError, ClientError) as exc:
        # The bucket gone or out of reach: the objects cannot be accounted for. Said in the
        # result (verification fails), and the job still finishes: never a hang.
        result.update(objects_checked=0, objects_error=f"bucket {deps.bucket!r}: {reference(exc)}")
        return False
    found, ok = domain.objects_verdict(originals, checked, present, len(quarantined or ()), phase)
    result.update(found)
    return ok


async def _hits_of_this_org(deps: EraserDeps, org_id: str, hits: list[ScanHit]) -> list[ScanHit]:
    """The same email in another organisation is another person: where the map knows a
    table's org column, a hit counts only in this org's rows. Elsewhere every hit counts."""
    by_table: dict[str, list[ScanHit]] = {}
    for h in hits:
        by_table.setdefault(h.table, []).append(h)
    out: list[ScanHit] = []
    async with deps.platform.acquire() as conn:
        for table, found in by_table.items():
            t = deps.datamap.tables.get(table)
            if t is None or t.org_column is None:
                out.extend(found)
                continue
            mine = await store.keys_in_org(conn, table, t, org_id, [h.key for h in found])
            out.extend(h for h in found if h.key in mine)
    return out


async def _scan(deps: EraserDeps, org_id: str, identities: dict[str, str] | None) -> dict[str, Any]:
    """Verification that does not trust the map: every text and json column of the platform
    (mapped or not) searched for the subject's identity values, within a time budget."""
    values = {k: v for k, v in (identities or {}).items() if k in domain.SCANNED_KINDS}
    if not values or deps.scan_seconds <= 0:
        reason = "no identity value to look for" if not values else "turned off"
        return {"ok": True, "skipped_reason": reason}
    report = await scan_identities(
        deps.platform,
        values,
        schemas=deps.scan_schemas,
        budget_s=deps.scan_seconds,
        catalog=deps.catalog,
    )
    hits = await _hits_of_this_org(deps, org_id, report.hits)
    return {
        "ok": not hits and not report.skipped,
        "hits": [{"table": h.table, "column": h.column, "key": h.key} for h in hits],
        "columns_scanned": len(report.scanned),
        "skipped": report.skipped,
        "elapsed_s": round(report.elapsed_s, 3),
    }
