"""Exception text stays in the logs: what reaches events (and so the immutable audit trail)
is an error code and the id of the log line holding the full text.

An exception's text may carry values (a row's email in a constraint error, an address in an
SMTP reply). Logs are kept for days, the audit trail for years and it cannot be edited, so:

    error = reference(exc, "chunk 3 of job ...")   # logs `error_id=... <full text>` at ERROR
    -> "UniqueViolationError (error_id=3f2a9c0d1e4b; the text is in the logs)"

Exceptions whose text Lethe words itself, from no values (`Worded`), keep their text.
"""

from __future__ import annotations

import logging
import secrets
import traceback

log = logging.getLogger("lethe.errors")


class Worded(Exception):
    """An error whose message Lethe writes from fixed words, counts and ids (never a value
    read from data or from another system): safe in audit rows as it is."""


def error_code(exc: BaseException) -> str:
    """The error's kind: an S3 error code (`NoSuchBucket`), else the exception's class."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    sqlstate = getattr(exc, "sqlstate", None)
    name = type(exc).__name__
    return f"{name} {sqlstate}" if isinstance(sqlstate, str) else name


def reference(exc: BaseException, context: str = "") -> str:
    """What may be written into an event instead of `exc`'s text; the text is logged once,
    at ERROR, under a random error id that the returned reference names."""
    if isinstance(exc, Worded):
        return f"{type(exc).__name__}: {exc}"
    error_id = secrets.token_hex(6)
    text = "".join(traceback.format_exception_only(exc)).strip()
    log.error("error_id=%s %s%s", error_id, f"{context}: " if context else "", text)
    return f"{error_code(exc)} (error_id={error_id}; the text is in the logs)"
