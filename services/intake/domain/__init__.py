"""Intake's decisions: what a valid request is, who may ask it, when it is due, which event
it becomes. Pure: no await, no SQL, no clock (callers pass the time).

- `requests`: a submitted request's shape and field errors;
- `callers`: who asks, and the submit rules every entry point shares;
- `upstream`: requests from upstream services on Kafka;
- `jobs`: a request becomes a job (event, due date, fingerprint), and cancel commands;
- `notices`: the mails those decisions send;
- `schedules`: retention policies, the cron schedule, scheduled jobs and reminders (read as
  `domain.schedules.<name>`; `retention` re-exports them).

The names are re-exported here: callers write `domain.plan_job(...)`.
"""

from services.intake.domain.callers import (
    OWNER_ONLY,
    Caller,
    Refused,
    authorise,
    submit_refusal,
)
from services.intake.domain.jobs import (
    NewJob,
    cancel_command,
    command_topic,
    fingerprint,
    plan_job,
)
from services.intake.domain.notices import (
    ccpa_receipt,
    extension_notice,
    notice,
    receipt_notices,
)
from services.intake.domain.requests import HASHED_EMAIL, RequestIn, SubjectIn, field_errors
from services.intake.domain.upstream import Rejection, parse_upstream, upstream_caller

__all__ = [
    "HASHED_EMAIL",
    "OWNER_ONLY",
    "Caller",
    "NewJob",
    "Refused",
    "Rejection",
    "RequestIn",
    "SubjectIn",
    "authorise",
    "cancel_command",
    "ccpa_receipt",
    "command_topic",
    "extension_notice",
    "field_errors",
    "fingerprint",
    "notice",
    "parse_upstream",
    "plan_job",
    "receipt_notices",
    "submit_refusal",
    "upstream_caller",
]
