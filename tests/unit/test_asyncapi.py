from __future__ import annotations

from pathlib import Path

import pytest

from shared.asyncapi import render
from shared.events import registered_types
from shared.events.catalogue import CATALOGUE

pytestmark = pytest.mark.unit
DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


def test_every_event_type_has_a_topic() -> None:
    listed = {name for names in CATALOGUE.values() for name in names}
    missing = set(registered_types()) - listed
    assert not missing, f"add these to shared/events/catalogue.py: {sorted(missing)}"


def test_committed_asyncapi_document_is_up_to_date() -> None:
    assert DOC.read_text() == render(), "docs/asyncapi.json is stale: run `make docs`"
