"""Which failures are outages (transient: retried until the retry horizon) and which are
bugs or bad data (retried a few times, then dead-lettered).

An outage is anything that says "the other side is not there right now": a Postgres
connection lost or refused, a server shutting down or out of connections, a serialization
conflict, a Kafka request that timed out or found no leader, an S3 endpoint unreachable or
throttling. Everything else (a constraint violated, a trigger refusing, a KeyError) will fail
the same way on the next attempt, so it is not worth holding a partition for.
"""

from __future__ import annotations

import asyncpg
from aiokafka import errors as kafka_errors
from botocore import exceptions as boto_errors

_PG_TRANSIENT = (
    asyncpg.PostgresConnectionError,  # connection lost / failed / does not exist
    asyncpg.exceptions.OperatorInterventionError,  # 57: shutdown, cannot connect now, cancel
    asyncpg.exceptions.InsufficientResourcesError,  # 53: too many connections, disk full
    asyncpg.exceptions.TransactionRollbackError,  # 40: serialization failure, deadlock
)
_KAFKA_TRANSIENT = (kafka_errors.KafkaTimeoutError, kafka_errors.KafkaConnectionError)
_S3_TRANSIENT = (
    boto_errors.EndpointConnectionError,
    boto_errors.ConnectionClosedError,
    boto_errors.ConnectTimeoutError,
    boto_errors.ReadTimeoutError,
)
_S3_THROTTLED = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503"}


def _transient_one(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, *_PG_TRANSIENT, *_KAFKA_TRANSIENT, *_S3_TRANSIENT)):
        return True  # OSError: refused, reset, unreachable, timed out (TimeoutError is one)
    if isinstance(exc, asyncpg.exceptions._base.InternalClientError):
        # asyncpg's protocol left mid-operation by a connection the server cut ("cannot
        # switch to state ...; another operation is in progress"): the pool drops it and a
        # retry takes a fresh one (seen when backends are terminated mid-job).
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        # "connection is closed" / "connection was closed in the middle of operation"; other
        # interface errors (an operation already in progress) are bugs.
        return "connection" in str(exc) and "closed" in str(exc)
    if isinstance(exc, kafka_errors.KafkaError):
        return bool(getattr(exc, "retriable", False))
    if isinstance(exc, boto_errors.ClientError):
        return str(exc.response.get("Error", {}).get("Code", "")) in _S3_THROTTLED
    return False


def transient(exc: BaseException) -> bool:
    """True when `exc`, or an exception it was raised from (`raise ... from`), is an outage.
    (Not `__context__`: a bug raised while handling an outage is still a bug.)"""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if _transient_one(current):
            return True
        seen.add(id(current))
        current = current.__cause__
    return False
