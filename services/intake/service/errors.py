"""Why a use case refused, as types: the REST routes answer `status` with `message`; the web
pages and the Kafka rejections word the same refusal for their readers."""

from __future__ import annotations

import uuid

from services.intake import deadlines, domain
from shared import lifecycle


class ServiceError(Exception):
    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class NotFound(ServiceError):
    status = 404


class Forbidden(ServiceError):
    """Not allowed for this caller; the HTTP entry points audit it with `audit_reason`."""

    status = 403

    def __init__(self, message: str, audit_reason: str | None = None) -> None:
        super().__init__(message)
        self.audit_reason = audit_reason or message


class Invalid(ServiceError):
    """A value out of its rules; `errors`: one line per problem, each naming its field."""

    status = 422

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or [message]


class Conflict(ServiceError):
    status = 409


class NotAllowedNow(Conflict):
    """The job's state does not allow the command (lifecycle.IllegalTransition)."""

    def __init__(self, exc: lifecycle.IllegalTransition) -> None:
        super().__init__(str(exc))
        self.job_status = exc.status


class DeadlineBroken(ServiceError):
    """An extension the law does not allow (409 or 422); the message names the rule."""

    def __init__(self, exc: deadlines.DeadlineRuleBroken) -> None:
        super().__init__(str(exc), exc.status)


class DuplicateRequest(Conflict):
    """The request id was already used for a different request (job `job_id`)."""

    def __init__(self, request_id: str | None, job_id: uuid.UUID) -> None:
        super().__init__(
            f"request_id {request_id!r} was already used for a different request (job {job_id})"
        )
        self.request_id, self.job_id = request_id, job_id


class RateLimited(ServiceError):
    status = 429

    def __init__(self, wait: float) -> None:
        super().__init__("too many submissions for this API key; retry later")
        self.retry_after = max(1, round(wait))


def refused(exc: domain.Refused) -> ServiceError:
    """A domain refusal (403 or 422) as a service error with the same status and reason."""
    if exc.status == 403:
        return Forbidden(exc.reason)
    if exc.status == 422:
        return Invalid(exc.reason)
    return ServiceError(exc.reason, exc.status)
