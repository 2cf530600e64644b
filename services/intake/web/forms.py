"""The submit form: from posted fields to a `RequestIn`, or errors per field in plain words."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from services.intake.domain import RequestIn

IDENTITIES = ("email", "user_id", "phone", "external_id")

# What a person reads next to the field, by the field pydantic names.
MESSAGES = {
    "email": "This does not look like an email address (name@example.com).",
    "notify_email": "This does not look like an email address (name@example.com).",
    "recovery_window_days": "The recovery window is a whole number of days from 0 to 30.",
    "due_in_days": "With a custom regulation, give the deadline in days, from 1 to 90.",
    "link_ttl_hours": "A download link lasts from 1 to 168 hours (7 days).",
    "user_id": "A user id has at most 200 characters.",
    "phone": "A phone number has at most 50 characters.",
    "external_id": "An external id has at most 200 characters.",
    "reason": "The note has at most 2000 characters.",
    "subject": "Give at least one identity of the person: email, user id, phone or external id.",
}


def _int(data: dict[str, str], name: str, errors: dict[str, str]) -> int | None:
    text = data.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        errors[name] = MESSAGES.get(name, "Give a whole number.")
        return None


def submit_from_form(
    data: dict[str, str], org_name: str
) -> tuple[RequestIn | None, dict[str, str]]:
    errors: dict[str, str] = {}
    scope = data.get("scope", "subject")
    body: dict[str, Any] = {
        "type": data.get("type", "erasure"),
        "scope": scope,
        "regulation": data.get("regulation", "gdpr"),
        "request_id": data.get("request_id") or None,
        "notify_email": data.get("notify_email", "").strip() or None,
        "reason": data.get("reason", "").strip() or None,
        "format": data.get("format", "both"),
        "include_media": data.get("include_media") == "on",
    }
    for name in ("recovery_window_days", "due_in_days", "link_ttl_hours"):
        value = _int(data, name, errors)
        if value is not None:
            body[name] = value
    if body["regulation"] != "custom":
        body.pop("due_in_days", None)
    elif "due_in_days" not in body and "due_in_days" not in errors:
        errors["due_in_days"] = MESSAGES["due_in_days"]
    if scope == "organisation":
        body["confirm_org_name"] = data.get("confirm_org_name", "").strip()
        if body["confirm_org_name"] != org_name:
            what = "erase" if body["type"] == "erasure" else "export"
            errors["confirm_org_name"] = (
                f"To {what} the whole organisation, type its name exactly: {org_name}"
            )
    else:
        body["subject"] = {k: data[k].strip() for k in IDENTITIES if data.get(k, "").strip()}
    if errors:
        return None, errors
    try:
        return RequestIn.model_validate(body), {}
    except ValidationError as exc:
        return None, field_messages(exc)


def field_messages(exc: ValidationError) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in exc.errors():
        loc = [str(p) for p in e["loc"]]
        msg = str(e["msg"]).removeprefix("Value error, ")
        field = loc[-1] if loc else msg.split(":", 1)[0]
        if loc == ["subject"] or (not loc and field == "subject"):
            field = "subject"
        if field in ("type", "scope", "regulation", "format"):
            out[field] = "Choose one of the options."
        else:
            out.setdefault(field if field in MESSAGES else "_", MESSAGES.get(field, msg))
    return out
