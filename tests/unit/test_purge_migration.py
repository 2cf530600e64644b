"""The migration that forgets the requester's address names the final states of the job
lifecycle: the two lists are the same (a new final state must be added to both). A later
migration that adds a final state redefines the trigger function: the newest definition is
the one in force."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared import lifecycle

pytestmark = pytest.mark.unit
MIGRATIONS = Path(__file__).parents[2] / "shared/migrations"
FUNCTION = "FUNCTION lethe.jobs_forget_requester()"


def _states(sql: str) -> list[set[str]]:
    return [
        set(re.findall(r"'(\w+)'", found)) for found in re.findall(r"status IN \(([^)]*)\)", sql)
    ]


def test_the_requester_is_forgotten_in_every_final_state_and_only_there() -> None:
    defining = sorted(p for p in MIGRATIONS.glob("*.sql") if FUNCTION in p.read_text())
    assert defining and defining[0].name == "0013_purge_personal_data.sql"
    newest = defining[-1].read_text()
    body = newest[newest.index(FUNCTION) :].split("END $$;")[0]
    (in_force,) = _states(body)
    assert in_force == set(lifecycle.FINAL)
    # 0013 also forgot the addresses of the jobs already final then (its two lists agree).
    first, backfill = _states(defining[0].read_text())
    assert first == backfill and first <= set(lifecycle.FINAL)
