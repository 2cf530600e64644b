"""Secrets that pass the production rules (shared/secret_checks.py), for tests of what a
production deployment does: `Settings(env="production", **PRODUCTION_SECRETS)`. Random per
test run, so no test depends on a key (and none is a public default)."""

from __future__ import annotations

import base64
import os
import secrets
from typing import Any

PRODUCTION_SECRETS: dict[str, Any] = {  # Any: keyword arguments of a Settings class
    "master_key": base64.b64encode(os.urandom(32)).decode(),
    "subject_hash_key": secrets.token_urlsafe(32),
    "download_token_key": secrets.token_hex(32),
    "mask_hmac_key": base64.b64encode(os.urandom(48)).decode(),
    "s3_access_key_id": "AKIA" + secrets.token_hex(8).upper(),
    "s3_secret_access_key": secrets.token_urlsafe(30),
}
