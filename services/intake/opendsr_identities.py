"""OpenDSR identities (section 5), the processor side: which types and formats this
processor uses and how they map onto Lethe's subject. Pure.

Specification: https://github.com/opengdpr/OpenDSR/blob/master/specification.md (v2.0).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from services.intake.domain import HASHED_EMAIL as HASHED
from shared.opendsr import IDENTITIES

# A second raw email goes into a free hashed slot (hashed here), so both are looked for.
SPARE_EMAIL_SLOTS = (("email_sha256", "sha256"), ("email_md5", "md5"), ("email_sha1", "sha1"))
IDENTITY_TYPES = (  # section 5.1
    "controller_customer_id",
    "android_advertising_id",
    "android_id",
    "email",
    "fire_advertising_id",
    "ios_advertising_id",
    "ios_vendor_id",
    "microsoft_advertising_id",
    "microsoft_publisher_id",
    "roku_publisher_id",
    "roku_advertising_id",
)
IDENTITY_FORMATS = ("raw", "sha1", "md5", "sha256")  # section 5.2

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HEX = re.compile(r"^[0-9a-f]+$")


class Identity(BaseModel):
    """Section 5.3. Types and formats are checked when mapped (`to_request_in`): one this
    processor cannot use is ignored when another in the request is usable."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    identity_type: str = Field(max_length=100)
    identity_value: str = Field(min_length=1, max_length=320)
    identity_format: str = Field(max_length=20)


@dataclass(frozen=True)
class Mapped:
    """The subject's fields; the identities left aside (types only, never values); and the
    errors that refuse the request (a malformed value, or nothing usable)."""

    subject: dict[str, str]
    ignored: list[str]
    errors: list[str]


def _unusable(where: str, ident: Identity) -> str:
    if ident.identity_type not in IDENTITY_TYPES:
        return f"{where}.identity_type: unknown identity_type {ident.identity_type[:40]!r}"
    if ident.identity_format not in IDENTITY_FORMATS:
        return (
            f"{where}.identity_format: unknown identity_format {ident.identity_format[:20]!r}; "
            f"one of {', '.join(IDENTITY_FORMATS)}"
        )
    return (
        f"{where}: {ident.identity_type}/{ident.identity_format} is not supported by this "
        "processor (see GET /opendsr/discovery)"
    )


def _malformed(where: str, target: str, ident: Identity) -> str | None:
    value = ident.identity_value
    if target == "email" and not _EMAIL.match(value):
        return f"{where}.identity_value: not an email address"
    if target in HASHED and (len(value) != HASHED[target] or not _HEX.match(value.lower())):
        return (
            f"{where}.identity_value: not a {ident.identity_format} hex digest "
            f"({HASHED[target]} hex characters)"
        )
    if target == "external_id" and len(value) > 200:
        return f"{where}.identity_value: longer than 200 characters"
    return None


def map_identities(identities: list[Identity]) -> Mapped:
    """Section 5 -> the subject's fields. Identities this processor cannot use (an ad id, an
    unknown type or format) are ignored as long as one is usable; a second raw email takes a
    free hashed slot, so both addresses are looked for; a malformed value of a usable kind is
    an error naming it. One subject per request: the resolver refuses identities of two
    people (`ambiguous`)."""
    subject: dict[str, str] = {}
    ignored: list[str] = []
    unusable: list[str] = []
    errors: list[str] = []
    for i, ident in enumerate(identities):
        where = f"subject_identities[{i}]"
        kind = f"{ident.identity_type}/{ident.identity_format}"
        target = IDENTITIES.get((ident.identity_type, ident.identity_format))
        if target is None:
            unusable.append(_unusable(where, ident))
            ignored.append(kind)
            continue
        if problem := _malformed(where, target, ident):
            errors.append(problem)
            continue
        value = ident.identity_value.lower() if target in HASHED else ident.identity_value
        if subject.get(target, value) == value:
            subject[target] = value
            continue
        spare = next((slot for slot, _ in SPARE_EMAIL_SLOTS if slot not in subject), None)
        if target == "email" and spare is not None:
            subject[spare] = hash_email(value, spare.removeprefix("email_"))
        else:
            ignored.append(f"{kind} (another one)")
    if not subject and not errors:
        errors = unusable or ["subject_identities: give at least one identity (section 5.3)"]
    return Mapped(subject, ignored, errors)


def hash_email(email: str, algo: str) -> str:
    """How a controller hashes an email (section 5.2): hex digest of the trimmed, lowercased
    address."""
    return hashlib.new(algo, email.strip().lower().encode()).hexdigest()
