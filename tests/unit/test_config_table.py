from __future__ import annotations

from pathlib import Path

import pytest

from services.cli.ops import config_table

pytestmark = pytest.mark.unit


def test_readme_lists_every_setting() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("<!-- config-table:start -->\n") + len("<!-- config-table:start -->\n")
    end = readme.index("<!-- config-table:end -->")
    assert readme[start:end].strip() == config_table().strip(), (
        "README configuration table is stale: run `.venv/bin/lethe config-table`"
    )
