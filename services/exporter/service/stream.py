"""The archive of one export, streamed: the subject's rows, formatted by Postgres and sent by
COPY (or read from a server-side cursor when a column type has no exact SQL rendering), into
a zip, sealed in authenticated chunks, uploaded by multipart as parts fill. Memory stays
flat: one COPY chunk (or cursor batch), the zip's pending bytes, one upload part."""

from __future__ import annotations

import asyncio
import uuid
import zipfile
from datetime import UTC, datetime

import asyncpg

from services.exporter import domain, pgformat, store
from services.exporter.archive import (
    CsvCopy,
    CsvTable,
    Entry,
    JsonCopy,
    JsonTable,
    Sink,
    manifest,
)
from services.exporter.service.deps import ExporterDeps
from services.exporter.service.outcomes import check_cancel
from services.exporter.upload import MultipartUpload
from shared.events import Envelope
from shared.events.topics import PROGRESS
from shared.resolver import Subject
from shared.sealed_stream import SealWriter

_QUEUED_CHUNKS = 8  # COPY chunks (up to some 100 kB each) waiting to be compressed


class Progress:
    """Rows done of the total, between batches: the rate limit after every batch; the
    progress event and the check for a cancel at most every `deps.progress_seconds` and
    when the table changes (an event and a query per 2,000-row batch cost a million-row
    export some seconds)."""

    def __init__(self, env: Envelope, deps: ExporterDeps, total: int) -> None:
        self.env, self.deps, self.total = env, deps, total
        self.done = 0
        self.started = self.announced_at = deps.clock()
        self.table: str | None = None
        self.pending = 0  # rows of `table` done but not announced yet

    async def add(self, table: str, rows: int, bytes_written: int) -> None:
        if table != self.table:
            await self.flush(bytes_written)
            self.table = table
        self.done += rows
        self.pending += rows
        elapsed = self.deps.clock() - self.started
        wait = domain.rate_limit_wait(self.done, elapsed, self.deps.rate_limit_rows)
        if wait > 0:
            await asyncio.sleep(wait)
        if self.deps.clock() - self.announced_at >= self.deps.progress_seconds:
            await self.flush(bytes_written)

    async def flush(self, bytes_written: int) -> None:
        """Announce the rows not announced yet; then stop here if a cancel was recorded."""
        if self.pending and self.table is not None:
            elapsed = self.deps.clock() - self.started
            batch = domain.batch_exported(
                self.table, self.pending, self.done, self.total, bytes_written, elapsed
            )
            await self.deps.emit(PROGRESS, domain.event_for(self.env, batch))
            self.pending = 0
        self.announced_at = self.deps.clock()
        await check_cancel(self.deps, self.env.job_id)  # between batches


class ArchiveWriter:
    """Writes one export's zip to its sealed upload."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        deps: ExporterDeps,
        subject: Subject,
        job_id: uuid.UUID,
        data_key: bytes,
        upload: MultipartUpload,
        progress: Progress,
    ) -> None:
        self.conn, self.deps, self.subject, self.job_id = conn, deps, subject, job_id
        self.resolver = deps.resolver
        self.upload, self.progress = upload, progress
        self.sink, self.sealer = Sink(), SealWriter(data_key, job_id.bytes)

    def seal_pending(self) -> bytes:
        """The zip's bytes written so far, sealed (whole frames; the rest stays behind)."""
        data = self.sink.take()
        return self.sealer.feed(data) if data else b""

    async def drain(self) -> None:
        sealed = self.seal_pending()
        if sealed:
            await self.upload.write(sealed)

    async def write(
        self,
        tables: list[str],
        formats: tuple[str, ...],
        counts: dict[str, int],
        *,
        media: bool,
        subject_hash: str | None,
    ) -> None:
        """Every table in every format, the media when asked for, then the manifest; the
        sealed stream closed. The upload is left to complete (or abort) to the caller."""
        entries: list[Entry] = []
        with zipfile.ZipFile(self.sink, "w", zipfile.ZIP_DEFLATED) as zf:
            for table in tables:
                for fmt in formats:
                    entries.append(await self._table(zf, table, fmt, counts[table]))
            await self.progress.flush(self.upload.size)
            if media:
                await self._media(zf, tables)
            generated = datetime.now(UTC)
            with zf.open("manifest.json", "w") as fh:
                fh.write(manifest(str(self.job_id), subject_hash, generated, entries, counts))
        await self.drain()
        await self.upload.write(self.sealer.close())

    async def _table(self, zf: zipfile.ZipFile, table: str, fmt: str, expected: int) -> Entry:
        """One table in one format: by COPY where Postgres formats every column, else from
        a server-side cursor."""
        columns = await store.columns(self.conn, self.resolver, table, self.subject)
        select = pgformat.select_list(columns, fmt)
        sql = store.copy_sql(self.resolver, table, self.subject, select) if select else None
        if sql is None:
            return await self._cursor_table(zf, table, fmt)
        entry = JsonCopy(zf, table) if fmt == "json" else CsvCopy(zf, table)
        feed = _CopyFeed(self, entry, table, expected, header=fmt == "csv")
        try:
            try:
                entry.rows = await store.copy_rows(self.conn, sql, fmt, feed)
            finally:
                await feed.stop()
        finally:
            entry.close()  # on a cancel too: the zip cannot be closed with an entry open
        if feed.error is not None:
            raise feed.error
        await feed.finish(entry.rows)
        await self.drain()
        return entry

    async def _cursor_table(self, zf: zipfile.ZipFile, table: str, fmt: str) -> Entry:
        """One table in one format, from a server-side cursor, drained after every batch."""
        async with store.table_rows(self.conn, self.resolver, table, self.subject) as rows:
            entry: JsonTable | CsvTable = (
                JsonTable(zf, table, rows.columns)
                if fmt == "json"
                else CsvTable(zf, table, rows.columns)
            )
            try:
                while batch := await rows.fetch(self.deps.batch_rows):
                    entry.add(batch)
                    await self.drain()
                    await self.progress.add(table, len(batch), self.upload.size)
            finally:
                entry.close()  # on a cancel too: the zip cannot be closed with an entry open
            await self.drain()
        return entry

    async def _media(self, zf: zipfile.ZipFile, tables: list[str]) -> None:
        """The S3 objects the subject's rows point at, under media/, streamed in pieces."""
        d = self.deps
        for table in tables:
            if d.datamap.tables[table].object_key_column is None:
                continue
            async with store.object_keys(self.conn, self.resolver, table, self.subject) as keys:
                async for key in keys:
                    await check_cancel(d, self.job_id)
                    obj = await d.s3.get_object(Bucket=d.media_bucket, Key=key)
                    with zf.open(domain.media_member(key), "w", force_zip64=True) as fh:
                        async for piece in obj["Body"].iter_chunks(1 << 20):
                            fh.write(piece)
                            await self.drain()


class _CopyFeed:
    """COPY's output for one entry, into the zip and on to the upload; progress (with its
    rate limit and cancel check) every `batch_rows` rows.

    COPY's chunks queue up (a few of them at most) for a task that compresses them in a
    thread: Postgres formats the next rows while Python compresses these, on two cores
    (zlib, hashing and sealing let go of the GIL)."""

    def __init__(
        self,
        writer: ArchiveWriter,
        entry: JsonCopy | CsvCopy,
        table: str,
        expected: int,
        *,
        header: bool,
    ) -> None:
        self.writer, self.entry, self.table, self.expected = writer, entry, table, expected
        self.batch = writer.deps.batch_rows
        self.lines = -1 if header else 0  # line breaks seen (a CSV header is one)
        self.reported = 0
        self.error: Exception | None = None
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(_QUEUED_CHUNKS)
        self.task = asyncio.create_task(self._consume())

    async def __call__(self, chunk: bytes) -> None:
        """Never raises: an error (a cancel, S3 down) is kept and raised once COPY is over.
        (asyncpg answers an output that raises with a cancel request, and that hung the
        connection when the COPY had already ended.) After an error the rest passes unread."""
        if self.error is None:
            await self.queue.put(chunk)

    async def stop(self) -> None:
        """The queued chunks written (or dropped after an error); the task ended."""
        await self.queue.put(None)
        await self.task

    async def _consume(self) -> None:
        while True:
            parts = [await self.queue.get()]
            while parts[-1] is not None and not self.queue.empty():
                parts.append(self.queue.get_nowait())  # all that waits: one thread hop
            data = b"".join(p for p in parts if p is not None)
            if data and self.error is None:
                try:
                    await self._take(data)
                except Exception as exc:
                    self.error = exc
            if parts[-1] is None:
                return

    def _pack(self, data: bytes) -> bytes:
        self.entry.feed(data)
        return self.writer.seal_pending()

    async def _take(self, data: bytes) -> None:
        sealed = await asyncio.to_thread(self._pack, data)
        if sealed:
            await self.writer.upload.write(sealed)
        self.lines += data.count(b"\n")
        # A quoted CSV field may hold line breaks: never count past the rows there are.
        seen = min(self.lines, self.expected)
        while seen - self.reported >= self.batch:
            self.reported += self.batch
            await self.writer.progress.add(self.table, self.batch, self.writer.upload.size)

    async def finish(self, rows: int) -> None:
        if rows > self.reported:
            await self.writer.progress.add(
                self.table, rows - self.reported, self.writer.upload.size
            )
