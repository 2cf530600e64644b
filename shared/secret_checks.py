"""The rules a production secret must pass: not a public default, not a placeholder, and keys
long enough. `shared/settings.py` applies them to each service's settings unless
`LETHE_ENV=dev`; each rule returns the reason a value is refused, or None.

The defaults in the settings classes are public (they are in this repository): with them a
database backup decrypts every restoration log and status-page MACs can be forged.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote, urlsplit

MIN_KEY_BYTES = 32
MASTER_KEY_BYTES = 32
HOW_TO_MAKE = "make one with `openssl rand -base64 32`"

# Words of example values (`CHANGE-ME`, `your-key-here`...), compared without case or
# separators. Long enough that a random base64 key contains none by chance.
_PLACEHOLDER_WORDS = (
    "changeme",
    "replaceme",
    "placeholder",
    "devonly",
    "example",
    "insecure",
    "notasecret",
    "yourkey",
    "keyhere",
    "secrethere",
    "passwordhere",
)


def is_placeholder(text: str) -> bool:
    squashed = re.sub(r"[\s_\-.]", "", text.lower())
    return any(word in squashed for word in _PLACEHOLDER_WORDS)


def key_material(text: str) -> bytes:
    """The bytes a key string stands for: hex or base64 decoded when it is that, else the
    UTF-8 text itself (so `openssl rand -hex 32` and `-base64 32` both count 32 bytes)."""
    text = text.strip()
    if len(text) % 2 == 0 and re.fullmatch(r"[0-9a-fA-F]+", text):
        return bytes.fromhex(text)
    if re.fullmatch(r"[A-Za-z0-9+/_-]+={0,2}", text) and len(text) >= 16:
        padded = text + "=" * (-len(text) % 4)
        try:
            return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            pass
    return text.encode()


def common_problem(value: str, default: str | None) -> str | None:
    """What every secret must pass: set, not the public default, not an example value."""
    if not value.strip():
        return "is empty"
    if default is not None and value == default:
        return "is the public development default"
    if is_placeholder(value):
        return "is a placeholder"
    return None


def key_problem(value: str, default: str | None) -> str | None:
    """An HMAC key: at least MIN_KEY_BYTES bytes of key material."""
    problem = common_problem(value, default)
    if problem is None and len(key_material(value)) < MIN_KEY_BYTES:
        got = len(key_material(value))
        problem = f"is too short ({got} bytes of key material, at least {MIN_KEY_BYTES})"
    return problem


def master_key_problem(value: str, default: str | None) -> str | None:
    """The master key: base64 of exactly MASTER_KEY_BYTES random bytes."""
    problem = common_problem(value, default)
    if problem is not None:
        return problem
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return "is not base64"
    if len(raw) != MASTER_KEY_BYTES:
        return f"must be base64 of {MASTER_KEY_BYTES} bytes, got {len(raw)}"
    return None


# The audit signing key, an Ed25519 seed, is also base64 of 32 bytes.
seed_problem = master_key_problem


def credential_problem(value: str, default: str | None) -> str | None:
    """A credential another system issued (S3 keys, a PEM key): its format is theirs."""
    return common_problem(value, default)


def dsn_password_problem(url: str) -> str | None:
    """A database URL may carry no password (certificates, IAM, .pgpass), but not an
    example one."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return None  # not for this rule: the driver reports a malformed URL
    query_password = re.search(r"(?:^|[?&])password=([^&]*)", url)
    for candidate in (password, query_password.group(1) if query_password else None):
        if candidate is not None and is_placeholder(unquote(candidate)):
            return "has a placeholder password"
    return None
