"""Accessibility of a page as a browser test sees it: axe-core's WCAG 2.1 A and AA rules.

    await assert_accessible(page, "submit form")

axe-core is fetched from the npm registry by the Makefile's `browser` target into
`.local/axe/` (`LETHE_AXE_JS` names another copy). It is injected into the page as it is
(after the test's own steps: open dialogs, errors shown), so what is checked is what a person
sees. A violation fails the test with the rule, its help text and the offending elements.
"""

from __future__ import annotations

import asyncio
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@cache
def axe_source() -> str:
    named = os.environ.get("LETHE_AXE_JS")
    found = [Path(named)] if named else sorted((REPO / ".local" / "axe").glob("axe-core-*.min.js"))
    if not found or not found[-1].exists():
        pytest.fail(
            "axe-core is missing: `make browser` fetches it (or: mkdir -p .local/axe && cd "
            ".local/axe && npm pack axe-core@4, then unpack package/axe.min.js as "
            "axe-core-<version>.min.js; or set LETHE_AXE_JS)"
        )
    return found[-1].read_text()


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"- {v['id']} ({v.get('impact')}): {v['help']} <{v.get('helpUrl', '')}>")
        for node in v["nodes"][:5]:
            lines.append(f"    {' '.join(node['target'])}: {node.get('failureSummary', '')}")
    return "\n".join(lines)


async def assert_accessible(page: Any, name: str) -> None:
    """No WCAG 2.1 A/AA violation on the page as it is now (`name` labels the failure)."""
    source = await asyncio.to_thread(axe_source)
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        # As a script tag's text would be refused by the pages' CSP; evaluate is not.
        await page.evaluate(source)
    result = await page.evaluate(
        "async (tags) => await axe.run(document, "
        "{runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
        TAGS,
    )
    violations = result["violations"]
    assert not violations, f"{name}: accessibility violations\n{describe(violations)}"
