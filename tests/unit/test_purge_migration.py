"""The migration that forgets the requester's address names the final states of the job
lifecycle: the two lists are the same (a new final state must be added to both)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared import lifecycle

pytestmark = pytest.mark.unit
MIGRATION = Path(__file__).parents[2] / "shared/migrations/0013_purge_personal_data.sql"


def test_the_requester_is_forgotten_in_every_final_state_and_only_there() -> None:
    sql = MIGRATION.read_text()
    lists = re.findall(r"status IN \(([^)]*)\)", sql)
    assert len(lists) == 2
    for found in lists:
        assert set(re.findall(r"'(\w+)'", found)) == set(lifecycle.FINAL)
