"""What is asked (a `Scope`: a subject's identities, an organisation, or given rows) and what
it resolves to (a `Subject`); the errors that refuse a request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


class ScopeError(ValueError):
    """The request cannot be resolved (reason for the requester, no personal data)."""


class Ambiguous(ScopeError):
    """The identities resolve to more than one subject: refuse, never over-erase."""


@dataclass(frozen=True)
class Rows:
    """Given rows of one table (text keys): a retention batch, as a scope of its own."""

    table: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Scope:
    org_id: str
    identities: dict[str, str] | None  # None: the whole organisation (unless `rows`)
    rows: Rows | None = None  # these rows and what hangs off them (retention)

    @property
    def organisation(self) -> bool:
        return self.identities is None and self.rows is None


@dataclass(frozen=True)
class Subject:
    """A resolved scope: the subject's key (if any row of the subject table matched)."""

    scope: Scope
    subject_keys: tuple[str, ...] = ()
    ignored_kinds: tuple[str, ...] = ()
    # Table -> a temporary table already holding its keys (`materialize`): later tables read
    # it instead of composing its query again.
    materialized: Mapping[str, str] = field(default_factory=dict)


def ambiguity(matched: dict[str, set[str]]) -> str:
    many = [k for k, v in matched.items() if len(v) > 1]
    if many:
        return f"{' and '.join(many)} each match more than one person: nothing was done"
    found = [k for k, v in matched.items() if v]
    return f"{' and '.join(found)} identify different people: nothing was done"
