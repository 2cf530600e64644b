"""S3 multipart upload fed in pieces: parts go out as soon as a part's worth is buffered."""

from __future__ import annotations

from typing import Any

MIN_PART = 5 * 1024 * 1024  # S3's smallest part (but the last)


class MultipartUpload:
    def __init__(self, s3: Any, bucket: str, key: str, part_bytes: int) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key
        self.part_bytes = max(part_bytes, MIN_PART)
        self.upload_id: str | None = None
        self._buf = bytearray()
        self._parts: list[dict[str, Any]] = []
        self.size = 0

    async def start(self) -> str:
        resp = await self.s3.create_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            ServerSideEncryption="AES256",
            ContentType="application/octet-stream",
        )
        self.upload_id = str(resp["UploadId"])
        return self.upload_id

    async def write(self, data: bytes) -> None:
        self._buf += data
        self.size += len(data)
        while len(self._buf) >= self.part_bytes:
            part = bytes(memoryview(self._buf)[: self.part_bytes])  # one copy, not two
            del self._buf[: self.part_bytes]
            await self._send(part)

    async def _send(self, body: bytes) -> None:
        number = len(self._parts) + 1
        resp = await self.s3.upload_part(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=body,
        )
        self._parts.append({"PartNumber": number, "ETag": resp["ETag"]})

    async def complete(self) -> None:
        if self._buf or not self._parts:
            await self._send(bytes(self._buf))
            self._buf.clear()
        await self.s3.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self._parts},
        )

    async def abort(self) -> None:
        if self.upload_id:
            await abort(self.s3, self.bucket, self.key, self.upload_id)


async def abort(s3: Any, bucket: str, key: str, upload_id: str) -> None:
    try:
        await s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except s3.exceptions.NoSuchUpload:
        pass  # already gone: the goal of aborting
