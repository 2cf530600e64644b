"""`domain` is pure (CONVENTIONS.md): decisions and models, no await, no SQL. Every
`services/<name>/domain.py` and `services/<name>/domain/` package is read with `ast`: no
`async def`, `await`, `async for`/`async with`, no import of asyncpg (deferred and
TYPE_CHECKING ones too) and no SQL statement in a string. I/O belongs in a service module,
SQL in `store.py`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
SERVICES = Path(__file__).resolve().parents[2] / "services"
# Domains still being purified (their I/O moves to service modules); skipped while impure.
# Every other service's domain, intake's and the auditor's included, must be pure.
NOT_YET_PURE: set[str] = set()
_SQL = re.compile(r"^\s*(SELECT\s|INSERT\s+INTO\s|UPDATE\s+\S+\s+SET\s|DELETE\s+FROM\s)")


def domain_files(services: Path) -> dict[str, list[Path]]:
    """Each service's domain module, or the modules of its domain package."""
    out: dict[str, list[Path]] = {}
    for service in sorted(p for p in services.iterdir() if p.is_dir()):
        files = [service / "domain.py"] if (service / "domain.py").is_file() else []
        files += sorted((service / "domain").rglob("*.py"))
        if files:
            out[service.name] = files
    return out


def _imports_asyncpg(node: ast.AST) -> bool:
    if isinstance(node, ast.Import):
        return any(a.name.split(".")[0] == "asyncpg" for a in node.names)
    if isinstance(node, ast.ImportFrom):
        return not node.level and (node.module or "").split(".")[0] == "asyncpg"
    return False


def impurities(path: Path, root: Path) -> list[str]:
    """`file:line: what` for every await, async construct, asyncpg import or SQL string."""
    where = path.relative_to(root)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        what = None
        if isinstance(node, ast.AsyncFunctionDef):
            what = f"async def {node.name}"
        elif isinstance(node, ast.Await):
            what = "await"
        elif isinstance(node, ast.AsyncFor | ast.AsyncWith):
            what = "async for/with"
        elif _imports_asyncpg(node):
            what = "imports asyncpg"
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _SQL.match(node.value)
        ):
            what = f"SQL {node.value[:40]!r}"
        if what:
            found.append(f"{where}:{getattr(node, 'lineno', 0)}: {what}")
    return sorted(found, key=lambda f: int(f.split(":")[1]))


DOMAINS = domain_files(SERVICES)


def test_the_domains_are_found() -> None:
    assert {"intake", "auditor"} <= set(DOMAINS)
    assert any(p.parent.name == "domain" for p in DOMAINS["intake"])  # the package


@pytest.mark.parametrize("service", sorted(DOMAINS))
def test_domain_is_pure(service: str) -> None:
    found = [f for p in DOMAINS[service] for f in impurities(p, SERVICES.parent)]
    if found and service in NOT_YET_PURE:
        pytest.skip(f"{service}'s domain is still being purified ({len(found)} findings)")
    assert not found, "domain is pure: move I/O to a service module, SQL to store.py:\n" + (
        "\n".join(found)
    )


def test_the_check_finds_impurities(tmp_path: Path) -> None:
    """The walk sees async defs, awaits (nested too), async with/for, asyncpg imports (plain,
    from, deferred) and SQL strings, in a domain module and in a domain package."""
    root = tmp_path / "services"
    (root / "a" / "domain").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "c").mkdir()
    (root / "a" / "domain" / "__init__.py").write_text("")
    (root / "a" / "domain" / "x.py").write_text(
        "import asyncpg.pool\n"
        "async def f(db):\n"
        "    async with db.acquire() as c:\n"
        "        await c.execute('DELETE FROM t')\n"
    )
    (root / "b" / "domain.py").write_text(
        "def g():\n"
        "    from asyncpg import Pool\n"
        "    return 'select 1 is fine', 'SELECT id FROM t'\n"
    )
    (root / "c" / "store.py").write_text("async def h(): pass\n")  # not a domain
    files = domain_files(root)
    assert set(files) == {"a", "b"}
    found = [f for fs in files.values() for p in fs for f in impurities(p, tmp_path)]
    assert found == [
        "services/a/domain/x.py:1: imports asyncpg",
        "services/a/domain/x.py:2: async def f",
        "services/a/domain/x.py:3: async for/with",
        "services/a/domain/x.py:4: await",
        "services/a/domain/x.py:4: SQL 'DELETE FROM t'",
        "services/b/domain.py:2: imports asyncpg",
        "services/b/domain.py:3: SQL 'SELECT id FROM t'",
    ]
