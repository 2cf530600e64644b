"""Bulk requests: up to 5,000 subjects of one request type in one request. Each row becomes
the request of one subject (`RequestIn`, the single request's own rules); a row that is not
valid is that row's `rejected` outcome, the others go on. Outcomes follow from the members'
terminal events; the requester gets one summary notice when the last one is known. Pure.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from services.intake.domain.requests import (
    _EMAIL,
    EMAIL_PATTERN,
    IDENTITIES,
    NUMBER,
    SOMETHING,
    RequestIn,
    field_errors,
)
from shared.events import Actor, Envelope, make_event
from shared.events.notifications import SendEmail

MAX_SUBJECTS = 5000  # Segment's limit per call
TOO_MANY = "too_many_subjects"
OUTCOMES = ("erased", "exported", "not_found", "ambiguous", "failed", "rejected", "pending")
# A member's terminal event -> its outcome, per bulk type. An erasure is done for the bulk
# once its data is hidden (the recovery window that follows may last days).
_DONE = {"erasure": "erased", "export": "exported"}
_OUTCOME = {
    "ErasureSoftDeleted": "done",
    "PurgeStarted": "done",
    "JobCompleted": "done",
    "ExportReady": "done",
    "SubjectNotFound": "not_found",
    "SubjectAmbiguous": "ambiguous",
    "JobFailed": "failed",
    "JobCancelled": "failed",
}
_NAMESPACE = uuid.UUID("1f0d9a52-3c8e-4e61-9b7a-5d2f8e0c4a19")


def too_many(count: int | str) -> str:
    return (
        f"at most {MAX_SUBJECTS:,} subjects per bulk request (got {count}); "
        "split the list into several requests"
    )


def _at_most(value: Any) -> Any:
    """Counted before any row is read: a list past the limit is refused whole (HTTP 413)."""
    if isinstance(value, list) and len(value) > MAX_SUBJECTS:
        raise PydanticCustomError(TOO_MANY, too_many(f"{len(value):,}"))
    return value


def _bulk_rules(schema: dict[str, Any]) -> None:
    """`regulation` custom needs `due_in_days`, and only it takes one (as RequestIn)."""
    due = {"type": "integer", "minimum": 1, "maximum": 90}
    schema["anyOf"] = [
        {
            "properties": {"regulation": {"const": "custom"}, "due_in_days": due},
            "required": ["regulation", "due_in_days"],
        },
        {"properties": {"regulation": {"enum": ["gdpr", "ccpa"]}, "due_in_days": {"type": "null"}}},
    ]


class BulkRequestIn(BaseModel):
    """Many subjects, one request type. Each row has the fields of a single request's
    `subject` (email, user_id, ...; one or several identities of one person)."""

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra=_bulk_rules
    )
    type: Literal["erasure", "export"]
    subjects: Annotated[
        list[dict[str, Any]],
        Field(min_length=1, max_length=MAX_SUBJECTS),
        BeforeValidator(_at_most),
    ] = Field(description=f"1..{MAX_SUBJECTS:,} subjects; a bad row is rejected on its own.")
    regulation: Literal["gdpr", "ccpa", "custom"] = "gdpr"
    due_in_days: Annotated[int, Field(ge=1, le=90), NUMBER] | None = None
    recovery_window_days: Annotated[int, Field(ge=0, le=30), NUMBER] | None = None
    request_id: str | None = Field(
        None, min_length=1, max_length=200, json_schema_extra={"pattern": SOMETHING}
    )
    notify_email: str | None = Field(
        None,
        max_length=320,
        json_schema_extra={"pattern": EMAIL_PATTERN},
        description="Gets the one summary mail (none per subject).",
    )
    reason: str | None = Field(None, max_length=2000)
    format: Literal["json", "csv", "both"] = "both"
    include_media: StrictBool = False
    link_ttl_hours: Annotated[int, Field(ge=1, le=168), NUMBER] = 24

    @field_validator("notify_email")
    @classmethod
    def _notify(cls, v: str | None) -> str | None:
        if v is not None and not _EMAIL.match(v):
            raise ValueError("not an email address")
        return v

    @model_validator(mode="after")
    def _due(self) -> BulkRequestIn:
        if (self.regulation == "custom") != (self.due_in_days is not None):
            raise ValueError("due_in_days: required with regulation 'custom', and only with it")
        return self

    def member(self, row: dict[str, Any]) -> RequestIn | str:
        """The single request of one row, or why the row is rejected."""
        common = self.model_dump(exclude={"subjects", "request_id", "notify_email"})
        try:
            return RequestIn.model_validate({**common, "scope": "subject", "subject": row})
        except ValidationError as exc:
            return "; ".join(field_errors(exc))[:500]


def is_too_many(exc: ValidationError) -> str | None:
    """The limit's message when that is what was wrong."""
    return next((str(e["msg"]) for e in exc.errors() if e["type"] == TOO_MANY), None)


def fingerprint(req: BulkRequestIn, key: bytes, org_id: str) -> str:
    """What was asked, keyed per org (as a single request's): a reused request_id with
    another body is a 409."""
    body = req.model_dump(mode="json", exclude={"request_id"})
    text = f"bulk:{org_id}\n{json.dumps(body, sort_keys=True)}"
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


class CsvRefused(ValueError):
    """The file cannot be read as a subject list; `too_many`: the limit was passed."""

    def __init__(self, message: str, too_many: bool = False) -> None:
        super().__init__(message)
        self.too_many = too_many


def parse_csv(text: str) -> list[dict[str, Any]]:
    """A header naming identity columns (email, user_id, ...), then one subject per line;
    empty cells are left out. Stops reading past the limit."""
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    unknown = [h for h in header if h not in IDENTITIES]
    if not header or unknown:
        raise CsvRefused(
            f"the first line names the identity columns ({', '.join(IDENTITIES)})"
            + (f"; unknown: {', '.join(unknown)[:200]}" if unknown else "")
        )
    rows: list[dict[str, Any]] = []
    for line in reader:
        if not any(cell.strip() for cell in line):
            continue
        if len(rows) == MAX_SUBJECTS:
            raise CsvRefused(too_many(f"more than {MAX_SUBJECTS:,}"), too_many=True)
        row: dict[str, Any] = {h: c for h, c in zip(header, line, strict=False) if c.strip()}
        if len(line) > len(header):  # a cell without a column: the row is rejected
            row["extra_cells"] = line[len(header) :]
        rows.append(row)
    return rows


def outcome_of(event_type: str, bulk_type: str) -> str | None:
    """The outcome a member's event decides (None: not a terminal event)."""
    found = _OUTCOME.get(event_type)
    return _DONE[bulk_type] if found == "done" else found


@dataclass(frozen=True)
class Summary:
    total: int
    counts: dict[str, int]

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, int]]) -> Summary:
        counts = dict.fromkeys(OUTCOMES, 0)
        for outcome, n in pairs:
            counts[outcome] = counts.get(outcome, 0) + n
        return cls(sum(counts.values()), counts)

    @property
    def decided(self) -> int:
        return self.total - self.counts["pending"]


def summary_notice(bulk: dict[str, Any], summary: Summary) -> Envelope:
    """The one mail of a finished bulk job: to its requester, or to the owner contacts. Its
    event id is the bulk job's, so writing it twice mails nobody twice."""
    c = summary.counts
    env = make_event(
        SendEmail(
            template="bulk_completed",
            to=bulk["requester_email"],
            audience="requester" if bulk["requester_email"] else "owners",
            context={
                "job_id": str(bulk["id"]),
                "job_type": bulk["type"],
                "total": summary.total,
                "erased": c["erased"],
                "exported": c["exported"],
                "not_found": c["not_found"],
                "ambiguous": c["ambiguous"],
                "failed": c["failed"],
                "rejected": c["rejected"],
            },
        ),
        actor=Actor(kind="service", id="intake"),
        org_id=bulk["org_id"],
    )
    return env.model_copy(update={"event_id": uuid.uuid5(_NAMESPACE, str(bulk["id"]))})
