"""`GET /v1/audit`: the audit trail over HTTP (owners only). Filled in by the auditor issue."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
