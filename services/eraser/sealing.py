"""Job keys and sealed records, pure: each erasure has its own data key, wrapped with the
master key; the request and every chunk's rows are sealed with it. Crypto-shredding at the
purge destroys the wrapped key, so no copy of the sealed rows (backups too) is readable."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from services.eraser.models import Held, Job
from shared.crypto import new_data_key, open_sealed, seal, unwrap_key, wrap_key


class KeyDestroyed(RuntimeError):
    pass


def key_context(job_id: uuid.UUID) -> bytes:
    return f"erase-job:{job_id}".encode()


def chunk_aad(job_id: uuid.UUID, chunk_no: int) -> bytes:
    return f"restoration:{job_id}:{chunk_no}".encode()


def unwrap_job_key(master_key: bytes, job: Job) -> bytes:
    if job.wrapped_key is None:
        raise KeyDestroyed(f"the key of job {job.job_id} is destroyed")
    return unwrap_key(master_key, job.wrapped_key, key_context(job.job_id))


@dataclass(frozen=True)
class SealedRequest:
    """What later phases need from the request; kept sealed with the job key."""

    scope: str
    identities: dict[str, str] | None
    requester_email: str | None
    delete_media: bool = True
    status_link: str | None = None  # the subject's status page, for the mails


def new_job_key(
    master_key: bytes, job_id: uuid.UUID, request: SealedRequest
) -> tuple[bytes, bytes]:
    """A fresh job key: (the key wrapped with the master key, the request sealed with it)."""
    key = new_data_key()
    sealed = seal(key, json.dumps(request.__dict__).encode(), b"request:" + key_context(job_id))
    return wrap_key(master_key, key, key_context(job_id)), sealed


def open_request(key: bytes, job: Job) -> SealedRequest:
    assert job.sealed_request is not None
    raw = open_sealed(key, job.sealed_request, b"request:" + key_context(job.job_id))
    return SealedRequest(**json.loads(raw))


def seal_rows(
    key: bytes, job_id: uuid.UUID, chunk_no: int, keys: list[str], rows: list[Any]
) -> bytes:
    """A chunk's keys and rows (json text, one per key) as its restoration record holds them."""
    body = json.dumps({"keys": keys, "rows": rows})
    return seal(key, body.encode(), chunk_aad(job_id, chunk_no))


def open_rows(key: bytes, job_id: uuid.UUID, rec: Held) -> list[tuple[str, str]]:
    body = json.loads(open_sealed(key, rec.sealed, chunk_aad(job_id, rec.chunk_no)))
    return list(zip(body["keys"], body["rows"], strict=True))
