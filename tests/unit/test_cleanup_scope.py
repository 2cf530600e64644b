"""`lethe cleanup`: --days overrides policies only with a scope; by default, the policies."""

from __future__ import annotations

import pytest

from services.cli.cleanup import ScopeRefused, Target, check_scope, targets

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "days, org, category, all_orgs, words",
    [
        (5, None, None, False, "add --org ID and --category C"),
        (5, "o1", None, False, "add --category C"),
        (5, None, "logs", False, "add --org ID"),
        (None, "o1", None, True, "exclude each other"),
    ],
)
def test_days_without_a_scope_is_refused_saying_what_to_add(
    days: int | None, org: str | None, category: str | None, all_orgs: bool, words: str
) -> None:
    with pytest.raises(ScopeRefused, match=words) as err:
        check_scope(days, org, category, all_orgs)
    if days is not None:
        assert "--all-orgs" in str(err.value) and "policy" in str(err.value)


@pytest.mark.parametrize(
    "days, org, category, all_orgs",
    [
        (None, None, None, False),  # every org, its own policy
        (None, "o1", None, False),
        (None, None, "logs", False),
        (5, "o1", "logs", False),
        (5, None, None, True),
        (5, None, "logs", True),
    ],
)
def test_scoped_runs_are_allowed(
    days: int | None, org: str | None, category: str | None, all_orgs: bool
) -> None:
    check_scope(days, org, category, all_orgs)


def test_the_policy_applies_by_default_and_anonymous_keeps_its_public_days() -> None:
    own = {"a": {"logs": 14, "messages": 365}, "b": {"logs": 90, "messages": 30}}
    plan = targets(
        ["a", "b"], ["anonymous", "logs"], days=None, policy=own.__getitem__, public_days=7
    )
    assert plan == [
        Target("a", "anonymous", 7, True),
        Target("a", "logs", 14, True),
        Target("b", "anonymous", 7, True),
        Target("b", "logs", 90, True),
    ]
    forced = targets(["a"], ["logs"], days=3, policy=own.__getitem__, public_days=7)
    assert forced == [Target("a", "logs", 3, False)]
