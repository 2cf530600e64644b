"""The data subject's status link, `/status/{job}/{mac}`: made here, put in the job's
events (ErasureRequested.status_link, ExportRequested.status_link) so that the eraser and the
exporter can put it in their mails without knowing its key, and checked by the web UI."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass


def status_mac(key: bytes, job_id: uuid.UUID) -> str:
    """The unguessable part of a data subject's status link (keyed: not derivable from the
    job id without the server's key)."""
    mac = hmac.new(key, b"lethe-subject-status:" + job_id.bytes, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode()


@dataclass(frozen=True)
class StatusLinks:
    base_url: str  # intake's public address, as the requester reaches it
    key: bytes

    def path(self, job_id: uuid.UUID) -> str:
        return f"/status/{job_id}/{status_mac(self.key, job_id)}"

    def url(self, job_id: uuid.UUID) -> str:
        return self.base_url.rstrip("/") + self.path(job_id)
