"""Constant-time comparison of secrets that came from outside (headers, forms, URLs).

`hmac.compare_digest` raises TypeError on a str holding anything but ASCII: a request with
such a value would be a server error instead of a refusal. Comparing the UTF-8 bytes gives
the same answer for ASCII and a plain "no" for the rest.
"""

from __future__ import annotations

import hmac


def same_secret(given: str | bytes, expected: str | bytes) -> bool:
    a = given.encode() if isinstance(given, str) else given
    b = expected.encode() if isinstance(expected, str) else expected
    return hmac.compare_digest(a, b)
