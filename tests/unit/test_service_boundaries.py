"""Services meet only on Kafka (and the public HTTP API): no `services.X` module imports
`services.Y`. What two services both need lives in `shared/`.

`services/cli` is the operator's command line, not a service: like `deploy/`, it is where the
services are put together (it opens each one's settings and stores), so it may import any of
them; no service may import it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
SERVICES = Path(__file__).resolve().parents[2] / "services"
COMPOSERS = {"cli"}  # may import every service (see above)


def _service_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "services" else None


def _imported(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """The absolute module names an import statement names (relative ones resolved)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        module = ".".join([*base, node.module] if node.module else base)
    else:
        module = node.module or ""
    if module == "services":  # `from services import intake`
        return [f"services.{alias.name}" for alias in node.names]
    return [module]


def cross_service_imports(root: Path) -> list[str]:
    """`file:line: services.X imports services.Y` for every import across services."""
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = ".".join(parts[:-1])
        own = _service_of(module)
        if own is None or own in COMPOSERS:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
        for node in sorted(imports, key=lambda n: n.lineno):  # deferred ones count too
            for name in _imported(node, package):
                other = _service_of(name)
                if other is not None and other != own:
                    where = path.relative_to(root.parent)
                    found.append(f"{where}:{node.lineno}: services.{own} imports {name}")
    return found


def test_no_service_imports_another() -> None:
    found = cross_service_imports(SERVICES)
    assert not found, "services meet on Kafka only; move what both need to shared/:\n" + (
        "\n".join(found)
    )


def test_the_check_finds_a_cross_import(tmp_path: Path) -> None:
    """The walk sees plain, `from`, deferred, package and relative imports."""
    root = tmp_path / "services"
    for name in ("intake", "notifier", "exporter", "cli"):
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text("")
    (root / "intake" / "ok.py").write_text("from services.intake import store\nimport shared\n")
    (root / "notifier" / "bad.py").write_text(
        "import json\n"
        "from services.intake import opendsr\n"
        "def f():\n"
        "    import services.exporter.store\n"
        "from services import auditor\n"
    )
    (root / "exporter" / "rel.py").write_text("from ..intake import store\n")
    (root / "cli" / "tool.py").write_text("from services.eraser import domain\n")
    assert cross_service_imports(root) == [
        "services/exporter/rel.py:1: services.exporter imports services.intake",
        "services/notifier/bad.py:2: services.notifier imports services.intake",
        "services/notifier/bad.py:4: services.notifier imports services.exporter.store",
        "services/notifier/bad.py:5: services.notifier imports services.auditor",
    ]
