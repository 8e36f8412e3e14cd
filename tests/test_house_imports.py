"""Who may import whom, read from the source: every import statement, the ones inside
functions included, so a lazy import cannot cross a line the picture in README.md draws.

The fresh-interpreter tests (wire/test_contract_imports, sensors/test_firmware_bridge_layer)
prove what loads at run time; this one covers the code paths no test imports.
"""

import ast
from pathlib import Path
from typing import Dict, Set

import pytest

REPO = Path(__file__).resolve().parents[1]

# package -> top-level names it must never import
FORBIDDEN: Dict[str, Set[str]] = {
    "simpul_wire": {"agent", "firmware_bridge", "simpul_field", "fleet_api", "simulator",
                    "broker_config", "tests", "bench", "testbed"},
    "firmware_bridge": {"agent", "simpul_field", "fleet_api", "simulator", "tests", "bench",
                        "testbed"},
    "agent": {"fleet_api", "simpul_field", "simulator", "tests", "bench", "testbed"},
    "simpul_field": {"agent", "fleet_api", "simulator", "tests", "bench", "testbed"},
    "fleet_api": {"agent", "firmware_bridge", "simpul_field", "simulator", "tests", "bench",
                  "testbed"},
    "broker_config": {"agent", "fleet_api", "simulator", "tests", "bench", "testbed"},
    # The shared harness sits under both: tests/ and bench/ import it, never each other.
    "testbed": {"tests", "bench"},
    "tests": {"bench"},
    "bench": {"tests"},
}


def imported_roots(path: Path) -> Set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_nothing_it_must_not(package: str) -> None:
    files = sorted((REPO / package).rglob("*.py"))
    assert files, f"{package}/ has no Python files"
    crossings = [f"{path.relative_to(REPO)} imports {', '.join(sorted(bad))}"
                 for path in files
                 if (bad := imported_roots(path) & FORBIDDEN[package])]
    assert crossings == []


def test_the_checker_sees_a_lazy_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from simulator.fleet import x\n    import tests.harness\n")
    assert imported_roots(probe) == {"simulator", "tests"}


def test_routes_hold_no_sql() -> None:
    """The fleet in layers: a route parses, authorises and shapes the answer; the
    queries and decisions are in the service packages, tables only in fleet_api/db.py."""
    import sqlalchemy

    from fleet_api import db

    tables = {name for name, value in vars(db).items() if isinstance(value, sqlalchemy.Table)}
    assert {"devices", "records", "alerts"} <= tables
    crossings = []
    for path in sorted((REPO / "fleet_api" / "api" / "routes").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {alias.name for alias in node.names}
                if any(n.split(".")[0] == "sqlalchemy" for n in names):
                    crossings.append(f"{path.name} imports sqlalchemy")
            elif isinstance(node, ast.ImportFrom) and node.module:
                # A connection handed to a service is a type, not SQL.
                if node.module.split(".")[0] == "sqlalchemy" and not (
                        node.module == "sqlalchemy.engine"
                        and {a.name for a in node.names} <= {"Connection", "Engine"}):
                    crossings.append(f"{path.name} imports from {node.module}")
                used = {alias.name for alias in node.names} & tables
                if node.module == "fleet_api.db" and used:
                    crossings.append(f"{path.name} imports the tables {sorted(used)}")
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "execute"):
                crossings.append(f"{path.name}:{node.lineno} runs a statement")
    assert crossings == []
