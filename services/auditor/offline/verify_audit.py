#!/usr/bin/env python3
"""Verify a Lethe audit export offline: no database, no Lethe code.

    python3 verify_audit.py EXPORT_DIR [--public-key BASE64]

Needs Python 3.11+ and, for the checkpoint signatures, the `cryptography` package
(`pip install cryptography`); README.md also shows the same checks with sha256sum/openssl.
The public key to trust is the one the operator published to you, not only the copy in the
export: pass it with --public-key (the script compares it with public_key.txt).

Exit status: 0 verified; 1 a row does not match; 2 a checkpoint does not match or its
signature does not verify; 3 the export is incomplete or unreadable.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
FIELDS = (
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
)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_hash(row: dict[str, Any]) -> str:
    body = canonical_json({k: row[k] for k in FIELDS})
    return hashlib.sha256((row["prev_hash"] + body).encode()).hexdigest()


def checkpoint_message(cp: dict[str, Any]) -> bytes:
    return (
        f"lethe-audit-checkpoint/v1\nseq={cp['seq']}\nhead_hash={cp['head_hash']}\n"
        f"signed_at={cp['signed_at']}\nkey_id={cp['key_id']}\n"
    ).encode()


def read_rows(folder: Path) -> list[dict[str, Any]]:
    if (folder / "audit.jsonl").exists():
        with open(folder / "audit.jsonl", encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    rows = []
    with open(folder / "audit.csv", encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            row: dict[str, Any] = dict(r)
            row["seq"] = int(row["seq"])
            row["redacted"] = row.get("redacted") == "true"
            if not row["redacted"]:
                row["details"] = json.loads(row["details"])
                for k in ("org_id", "job_id", "subject_hash"):
                    row[k] = row[k] or None
            rows.append(row)
    return rows


def verify_signature(public: bytes, cp: dict[str, Any]) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public).verify(
            base64.b64decode(cp["signature"]), checkpoint_message(cp)
        )
        return True
    except (InvalidSignature, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--public-key", help="the operator's published key (base64, raw 32 bytes)")
    args = ap.parse_args(argv)
    folder: Path = args.folder
    try:
        exported_key = (folder / "public_key.txt").read_text().strip()
        with open(folder / "checkpoints.jsonl", encoding="utf-8") as fh:
            cps = [json.loads(line) for line in fh if line.strip()]
        rows = read_rows(folder)
    except (OSError, ValueError, KeyError) as exc:
        print(f"INCOMPLETE: cannot read the export: {exc}")
        return 3
    if args.public_key and args.public_key.strip() != exported_key:
        print("BAD KEY: public_key.txt is not the key you were given; trust yours")
    public = base64.b64decode(args.public_key or exported_key)
    key_id = hashlib.sha256(public).hexdigest()[:16]
    print(f"public key id {key_id}")

    by_seq = {cp["seq"]: cp for cp in cps}
    for cp in cps:
        if cp["key_id"] != key_id or not verify_signature(public, cp):
            print(f"BAD CHECKPOINT at seq {cp['seq']}: signature does not verify")
            return 2
    if not rows:
        print("INCOMPLETE: no rows")
        return 3
    first = rows[0]["seq"]
    if first == 1:
        prev = GENESIS
    elif first - 1 in by_seq:
        prev = by_seq[first - 1]["head_hash"]
    else:
        print(f"INCOMPLETE: no checkpoint at seq {first - 1} to start from")
        return 3
    full = links = 0
    last_signed = first - 1
    for expected, row in enumerate(rows, start=first):
        if row["seq"] != expected:
            print(f"BAD ROW {row['seq']}: expected seq {expected} (a row is missing)")
            return 1
        if row["prev_hash"] != prev:
            print(f"BAD ROW {row['seq']}: prev_hash does not match the previous row's hash")
            return 1
        if row.get("redacted"):
            links += 1  # another organisation's row: its link is kept, its contents are not
        else:
            if row_hash(row) != row["hash"]:
                print(f"BAD ROW {row['seq']}: hash does not match the row's contents")
                return 1
            full += 1
        cp = by_seq.get(row["seq"])
        if cp is not None:
            if cp["head_hash"] != row["hash"]:
                print(f"BAD CHECKPOINT at seq {cp['seq']}: signed hash differs from the chain")
                return 2
            last_signed = row["seq"]
        prev = row["hash"]
    last = rows[-1]["seq"]
    print(
        f"OK: rows {first}..{last}: {full} verified in full, {links} links of other "
        f"organisations; signed up to seq {last_signed} by {sum(1 for c in cps)} checkpoints"
    )
    if last_signed < last:
        print(f"NOTE: {last - last_signed} rows after seq {last_signed} are not yet signed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
