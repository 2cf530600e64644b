"""The export archive: a zip streamed out as it is written, with stable JSON and CSV.

JSON: per table an array, one object a line. CSV: a header, RFC 4180 quoting, LF line ends,
UTF-8 (as Postgres' COPY writes it). Both come from COPY where Postgres can format every
column exactly (`pgformat`), else from the Python writers here, in the same values.

Nothing is kept but the bytes not yet drained: `ZipFile` writes to a sink without `seek`
(entries then carry data descriptors), and the caller takes the sink's bytes after each batch.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import hashlib
import io
import json
import uuid
import zipfile
from collections.abc import Sequence
from typing import Any, BinaryIO


class Sink(io.RawIOBase):
    """A write-only, unseekable stream whose bytes are taken out by the exporter."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self._buf += b
        return len(b)

    def take(self) -> bytes:
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def __len__(self) -> int:
        return len(self._buf)


def json_value(v: Any) -> Any:
    """Stable types: timestamps ISO 8601, decimals as strings, bytes base64."""
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(v)).decode()
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, dict):
        return {k: json_value(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [json_value(x) for x in v]
    return v


def csv_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, dict | list):
        return json.dumps(json_value(v), ensure_ascii=False)
    v = json_value(v)
    return str(v).lower() if isinstance(v, bool) else str(v)


class Entry:
    """One file in the zip, written in pieces, with its SHA-256 and row count."""

    def __init__(self, zf: zipfile.ZipFile, name: str) -> None:
        self.name = name
        self._fh: BinaryIO = zf.open(name, "w", force_zip64=True)  # type: ignore[assignment]
        self.sha256 = hashlib.sha256()
        self.rows = 0

    def write(self, data: bytes) -> None:
        self.sha256.update(data)
        self._fh.write(data)

    def close(self) -> None:
        self._fh.close()


# Postgres types whose Python values are already what JSON and CSV want (no conversion).
_PLAIN = {"int2", "int4", "int8", "text", "varchar", "bpchar", "name", "float4", "float8"}
_CSV_PLAIN = _PLAIN  # the csv module writes None as an empty field itself


class JsonTable(Entry):
    """`[row, row, ...]`: an array of objects."""

    def __init__(self, zf: zipfile.ZipFile, table: str, columns: Sequence[tuple[str, str]]) -> None:
        super().__init__(zf, f"{table}.json")
        self._names = [name for name, _ in columns]
        # Convert only the columns that need it: per-value calls dominate the cost.
        self._special = [i for i, (_, typ) in enumerate(columns) if typ not in _PLAIN]
        self.write(b"[")

    def add(self, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        objs = []
        for r in rows:
            values = list(r)
            for i in self._special:
                values[i] = json_value(values[i])
            objs.append(dict(zip(self._names, values, strict=True)))
        text = json.dumps(objs, ensure_ascii=False)[1:-1]  # one call per batch
        self.write(("," if self.rows else "").encode() + text.encode())
        self.rows += len(rows)

    def close(self) -> None:
        self.write(b"]")
        super().close()


class CsvTable(Entry):
    """Header, then one line per row; RFC 4180 quoting, LF (as COPY), UTF-8."""

    def __init__(self, zf: zipfile.ZipFile, table: str, columns: Sequence[tuple[str, str]]) -> None:
        super().__init__(zf, f"{table}.csv")
        self._special = [i for i, (_, typ) in enumerate(columns) if typ not in _CSV_PLAIN]
        self._emit([[name for name, _ in columns]])

    def _emit(self, lines: Sequence[Sequence[Any]]) -> None:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(lines)
        self.write(out.getvalue().encode())

    def add(self, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        lines = []
        for r in rows:
            values = list(r)
            for i in self._special:
                values[i] = csv_value(values[i])
            lines.append(values)
        self._emit(lines)
        self.rows += len(rows)


class JsonCopy(Entry):
    """`[`, COPY's JSON objects (one a line) separated by commas, `]`."""

    def __init__(self, zf: zipfile.ZipFile, table: str) -> None:
        super().__init__(zf, f"{table}.json")
        self.write(b"[")
        self._written = False  # a row was written
        self._at_end = True  # the last piece ended a row: the next row needs its comma

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        lead = (b",\n" if self._written else b"\n") if self._at_end else b""
        self._at_end = chunk.endswith(b"\n")
        body = chunk[:-1] if self._at_end else chunk
        # row_to_json writes no raw line break: every one ends a row.
        self.write(lead + body.replace(b"\n", b",\n"))
        self._written = True

    def close(self) -> None:
        self.write(b"\n]" if self._written else b"]")
        super().close()


class CsvCopy(Entry):
    """COPY's CSV (header included), as it comes."""

    def __init__(self, zf: zipfile.ZipFile, table: str) -> None:
        super().__init__(zf, f"{table}.csv")

    def feed(self, chunk: bytes) -> None:
        self.write(chunk)


def manifest(
    job_id: str,
    subject_hash: str | None,
    generated_at: dt.datetime,
    entries: list[Entry],
    rows_per_table: dict[str, int],
) -> bytes:
    return json.dumps(
        {
            "job_id": job_id,
            "subject_hash": subject_hash,
            "generated_at": generated_at.isoformat(),
            "rows_per_table": rows_per_table,
            "files": {e.name: {"sha256": e.sha256.hexdigest(), "rows": e.rows} for e in entries},
        },
        indent=2,
        sort_keys=True,
    ).encode()


def safe_member(folder: str, key: str) -> str:
    """`folder/key` as a member name that unpacks inside `folder/` whatever the key holds
    (object keys come from the platform's rows): backslashes read as separators; empty, `.`
    and `..` segments and control characters dropped. A changed name gets a short hash of
    the key, so two keys never become one name."""
    clean = "".join(ch for ch in key.replace("\\", "/") if ch.isprintable())
    name = "/".join(p for p in clean.split("/") if p not in ("", ".", ".."))
    if name != key:
        stem, dot, ext = name.rpartition(".")
        tag = hashlib.sha256(key.encode()).hexdigest()[:8]
        name = f"{stem}-{tag}.{ext}" if dot and stem and "/" not in ext else f"{name}-{tag}"
    return f"{folder}/{name}"
