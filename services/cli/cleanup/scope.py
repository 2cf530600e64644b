"""What `lethe cleanup` cleans, decided without I/O: the scope check, the categories, and
the (organisation, category, days) targets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.eraser.retention_rules import ANONYMOUS


class ScopeRefused(ValueError):
    """A combination of options that would touch more than the operator named."""


def check_scope(days: int | None, org: str | None, category: str | None, all_orgs: bool) -> None:
    """Pure: refuse `--days` without a scope, saying what to add."""
    if all_orgs and org is not None:
        raise ScopeRefused("--all-orgs and --org exclude each other: give one of them")
    if days is None or all_orgs or (org is not None and category is not None):
        return
    missing = " and ".join(
        x for x, absent in (("--org ID", org is None), ("--category C", category is None)) if absent
    )
    raise ScopeRefused(
        f"--days {days} overrides the organisations' retention policies, so it needs a scope: "
        f"add {missing} (one organisation and one category), or --all-orgs (every "
        "organisation; shows the counts per organisation and category and asks first, "
        "--yes to answer). Without --days each organisation's own policy applies."
    )


def categories(known: list[str], category: str | None, public_mode: bool) -> list[str]:
    """The categories to clean, of those the data map knows; ScopeRefused for an unknown
    one, or the anonymous category outside public mode."""
    if category is not None:
        if category not in known:
            raise ScopeRefused(f"--category: unknown {category!r} (one of {', '.join(known)})")
        if category == ANONYMOUS and not public_mode:
            raise ScopeRefused("public mode is off (LETHE_PUBLIC_MODE): anonymous data stays")
        return [category]
    return [c for c in known if c != ANONYMOUS or public_mode]


@dataclass(frozen=True)
class Target:
    org: str
    category: str
    days: int
    by_policy: bool


def targets(
    orgs: list[str],
    cats: list[str],
    *,
    days: int | None,
    policy: Callable[[str], dict[str, int]],
    public_days: int,
) -> list[Target]:
    """Pure: what to clean, per organisation and category, and after how many days."""
    out = []
    for org in orgs:
        own = policy(org) if days is None else {}
        for cat in cats:
            if days is not None:
                out.append(Target(org, cat, days, by_policy=False))
            elif cat == ANONYMOUS:
                out.append(Target(org, cat, public_days, by_policy=True))
            elif cat in own:
                out.append(Target(org, cat, own[cat], by_policy=True))
    return out
