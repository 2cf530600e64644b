"""The AsyncAPI document comes from the services' routers (FastStream's generator): every event
type is in it, and the committed docs/asyncapi.json is what the routers say today."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.cli.asyncapi import NOT_ON_KAFKA, render
from shared.events import registered_types

pytestmark = pytest.mark.unit
DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


def test_every_event_type_has_a_topic() -> None:
    schemas = json.loads(render())["components"]["schemas"]
    missing = {t for t in registered_types() if f"{t}Event" not in schemas} - NOT_ON_KAFKA
    assert not missing, (
        f"no router subscribes to or publishes these: {sorted(missing)} "
        "(declare them in the publishing service's OUTPUTS, handlers.py)"
    )


def test_committed_asyncapi_document_is_up_to_date() -> None:
    assert DOC.read_text() == render(), "docs/asyncapi.json is stale: run `make docs`"
