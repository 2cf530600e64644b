"""The export baseline of issue 16: what an engineer would do by hand for the same rows.

For each table of the subject: `COPY (...) TO STDOUT` as CSV (with a header) and as JSON
(`row_to_json`, written as one array per table), each straight into a zip entry (deflate at
zipfile's default level, as the exporter's archive), the zip uploaded to S3 by multipart
upload with the exporter's part size while it is written. No sealing, no manifest, no events:
Postgres formats, Python only compresses and uploads.
"""

from __future__ import annotations

import time
import uuid
import zipfile
from collections.abc import Awaitable, Callable
from typing import IO, Any

import asyncpg

JSON_COPY = {"format": "csv", "quote": "\x01", "delimiter": "\x02"}  # JSON text as it is


def subject_queries(user_id: int, org_id: str, email: str) -> dict[str, str]:
    """The subject's rows in the sample platform schema, by table (the data map's relations:
    conversations and payments by user, messages by author or conversation, media by
    message, sign-ups by email), in primary-key order. Literals inlined: COPY takes no
    parameters."""
    uid = int(user_id)
    lit = "'" + email.replace("'", "''") + "'"
    org = "'" + org_id.replace("'", "''") + "'"
    messages = (
        f"SELECT * FROM messages WHERE author_id = {uid} OR conversation_id IN "
        f"(SELECT id FROM conversations WHERE user_id = {uid})"
    )
    return {
        "users": f"SELECT * FROM users WHERE id = {uid}",
        "conversations": f"SELECT * FROM conversations WHERE user_id = {uid} ORDER BY id",
        "messages": f"{messages} ORDER BY id",
        "media_objects": f"SELECT * FROM media_objects WHERE message_id IN "
        f"(SELECT id FROM ({messages}) m) ORDER BY id",
        "payments": f"SELECT * FROM payments WHERE user_id = {uid} ORDER BY id",
        "newsletter_signups": f"SELECT * FROM newsletter_signups WHERE org_id = {org} "
        f"AND email = {lit} ORDER BY id",
    }


class MultipartSink:
    """A write-only file for zipfile: bytes pile up until a part is full, `drain` uploads the
    full parts, `close_upload` the rest and completes the upload."""

    def __init__(self, s3: Any, bucket: str, key: str, part_bytes: int) -> None:
        self.s3, self.bucket, self.key, self.part_bytes = s3, bucket, key, part_bytes
        self.buf = bytearray()
        self.parts: list[dict[str, Any]] = []
        self.upload_id = ""
        self.size = 0

    def write(self, data: bytes) -> int:
        self.buf += data
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    async def start(self) -> None:
        resp = await self.s3.create_multipart_upload(
            Bucket=self.bucket, Key=self.key, ServerSideEncryption="AES256"
        )
        self.upload_id = resp["UploadId"]

    async def _upload(self, body: bytes) -> None:
        number = len(self.parts) + 1
        part = await self.s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body
        )
        self.parts.append({"PartNumber": number, "ETag": part["ETag"]})

    async def drain(self) -> None:
        while len(self.buf) >= self.part_bytes:
            body = bytes(self.buf[: self.part_bytes])
            del self.buf[: self.part_bytes]
            await self._upload(body)

    async def close_upload(self) -> None:
        await self.drain()
        if self.buf or not self.parts:
            await self._upload(bytes(self.buf))
            self.buf.clear()
        await self.s3.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )


def _csv_writer(fh: IO[bytes], sink: MultipartSink) -> Callable[[bytes], Awaitable[None]]:
    async def out(chunk: bytes) -> None:
        fh.write(chunk)
        await sink.drain()

    return out


class _JsonArray:
    """COPY's one JSON object per line -> one JSON array (row_to_json never writes a raw
    newline, so every newline ends a row)."""

    def __init__(self, fh: IO[bytes], sink: MultipartSink) -> None:
        self.fh, self.sink, self.pending = fh, sink, False
        fh.write(b"[\n")

    async def __call__(self, chunk: bytes) -> None:
        sep = b",\n" if self.pending else b""
        if chunk.endswith(b"\n"):
            self.fh.write(sep + chunk[:-1].replace(b"\n", b",\n"))
            self.pending = True
        else:
            self.fh.write(sep + chunk.replace(b"\n", b",\n"))
            self.pending = False
        await self.sink.drain()

    def close(self) -> None:
        self.fh.write(b"\n]\n")


async def copy_export(
    conn: asyncpg.Connection, s3: Any, bucket: str, part_bytes: int, queries: dict[str, str]
) -> tuple[float, dict[str, int], int]:
    """(seconds, rows per table, zip bytes): every query as CSV and JSON into one zip on S3."""
    key = f"bench/copy-{uuid.uuid4().hex}.zip"
    rows: dict[str, int] = {}
    t0 = time.perf_counter()
    sink = MultipartSink(s3, bucket, key, part_bytes)
    await sink.start()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as zf:  # type: ignore[call-overload]
        for table, query in queries.items():
            with zf.open(f"{table}.csv", "w") as fh:
                status = await conn.copy_from_query(
                    query, output=_csv_writer(fh, sink), format="csv", header=True
                )
            rows[table] = int(status.split()[-1])
            with zf.open(f"{table}.json", "w") as fh:
                array = _JsonArray(fh, sink)
                status = await conn.copy_from_query(
                    f"SELECT row_to_json(t) FROM ({query}) t", output=array, **JSON_COPY
                )
                array.close()
            if int(status.split()[-1]) != rows[table]:
                raise RuntimeError(f"{table}: JSON and CSV row counts differ")
    await sink.close_upload()
    seconds = time.perf_counter() - t0
    await s3.delete_object(Bucket=bucket, Key=key)
    return seconds, rows, sink.size
