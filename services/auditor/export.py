"""`lethe audit export`: rows, checkpoints, public key, README and a standalone verifier in a
zip a regulator can check offline (docs/audit-verify.md).

The export covers a contiguous run of the chain, from just after a checkpoint (or the start)
to the first checkpoint at or after the last selected row, so every selected row is tied to a
signature. Rows in that run that were not selected (another organisation's, or outside the
time range when filtering by org) appear as links only: seq, prev_hash and hash.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from services.auditor import store
from services.auditor.domain import AuditRow, canonical_json
from shared.auditchain.checkpoints import Checkpoint

Format = Literal["jsonl", "csv"]
REPO = Path(__file__).resolve().parents[2]
README = REPO / "docs" / "audit-verify.md"
VERIFIER = Path(__file__).parent / "offline" / "verify_audit.py"
CSV_FIELDS = [
    "seq",
    "event_id",
    "occurred_at",
    "recorded_at",
    "actor",
    "action",
    "org_id",
    "job_id",
    "subject_hash",
    "details",
    "prev_hash",
    "hash",
    "redacted",
]


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def row_record(row: AuditRow) -> dict[str, Any]:
    """The row exactly as its hash saw it."""
    return {
        "seq": row.seq,
        "event_id": str(row.event_id),
        "occurred_at": _ts(row.occurred_at),
        "recorded_at": _ts(row.recorded_at),
        "actor": row.actor,
        "action": row.action,
        "org_id": row.org_id,
        "job_id": str(row.job_id) if row.job_id else None,
        "subject_hash": row.subject_hash,
        "details": row.details,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


def link_record(row: AuditRow) -> dict[str, Any]:
    return {"seq": row.seq, "prev_hash": row.prev_hash, "hash": row.hash, "redacted": True}


def checkpoint_record(cp: Checkpoint) -> dict[str, Any]:
    return {
        "seq": cp.seq,
        "head_hash": cp.head_hash,
        "signed_at": _ts(cp.signed_at),
        "key_id": cp.key_id,
        "signature": cp.signature,
    }


class _RowWriter:
    def __init__(self, fh: IO[bytes], fmt: Format) -> None:
        self.text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        self.fmt = fmt
        self.csv = csv.DictWriter(self.text, CSV_FIELDS) if fmt == "csv" else None
        if self.csv:
            self.csv.writeheader()

    def write(self, rec: dict[str, Any]) -> None:
        if self.csv is None:
            self.text.write(canonical_json(rec) + "\n")
            return
        out = {k: ("" if rec.get(k) is None else rec.get(k)) for k in CSV_FIELDS}
        out["redacted"] = "true" if rec.get("redacted") else "false"
        if not rec.get("redacted"):
            out["details"] = canonical_json(rec["details"])
        self.csv.writerow(out)

    def close(self) -> None:
        self.text.flush()
        self.text.detach()


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    first_seq: int
    last_seq: int
    rows: int
    links: int
    checkpoints: int
    signed_through: int


async def export(
    db: store.Db,
    out: Path,
    *,
    public_key: bytes,
    fmt: Format = "jsonl",
    org_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> ExportSummary | None:
    """Write the zip; None when no row matches the time range."""
    span = await store.seq_span(db, since, until)
    if span is None:
        return None
    lo, hi = span
    first = await store.export_start(db, lo)
    end_cp = await store.checkpoint_at_or_after(db, hi)
    last = end_cp.seq if end_cp is not None else hi
    rows = links = n_cps = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        name = "audit.jsonl" if fmt == "jsonl" else "audit.csv"
        with zf.open(name, "w") as fh:
            writer = _RowWriter(fh, fmt)
            async for row in store.iter_rows(db, from_seq=first, to_seq=last):
                selected = lo <= row.seq <= hi and (org_id is None or row.org_id == org_id)
                writer.write(row_record(row) if selected else link_record(row))
                rows, links = rows + selected, links + (not selected)
            writer.close()
        with zf.open("checkpoints.jsonl", "w") as fh:
            async for cp in store.iter_checkpoints(db, from_seq=first - 1, to_seq=last):
                fh.write((canonical_json(checkpoint_record(cp)) + "\n").encode())
                n_cps += 1
        key_b64 = base64.b64encode(public_key).decode()
        zf.writestr("public_key.txt", key_b64 + "\n")
        zf.writestr("public_key.pem", _pem(public_key))
        zf.writestr("README.md", README.read_text())
        zf.writestr("verify_audit.py", VERIFIER.read_text())
        zf.writestr(
            "manifest.json",
            json.dumps(
                {
                    "generated_at": _ts(datetime.now(UTC)),
                    "format": fmt,
                    "org_id": org_id,
                    "from": _ts(since) if since else None,
                    "to": _ts(until) if until else None,
                    "first_seq": first,
                    "last_seq": last,
                    "rows": rows,
                    "links": links,
                    "checkpoints": n_cps,
                },
                indent=2,
            ),
        )
    return ExportSummary(
        out, first, last, rows, links, n_cps, end_cp.seq if end_cp is not None else 0
    )


def _pem(raw: bytes) -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = Ed25519PublicKey.from_public_bytes(raw)
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
