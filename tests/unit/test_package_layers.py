"""Imports run one way: cli -> training -> flows, and inside the packages that are built in
floors (the store, the dashboards) each module imports only the floors below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What each top-level package may import of the others.
ALLOWED = {"flows": set(), "training": {"flows"}, "cli": {"flows", "training"}}
FLOORS = {
    "flows.store": {"base": 0, "url": 1, "journal_logs": 1, "journal": 2, "migrations": 3,
                    "embedded": 2, "server": 2, "opener": 3, "__init__": 4},
    "flows.dashboards": {"model": 0, "macros": 1, "load": 2, "run": 3, "__init__": 4},
}  # fmt: skip


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its body (lazy imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("top", sorted(ALLOWED))
def test_top_level_packages_import_one_way(top: str) -> None:
    others = set(ALLOWED) - {top} - ALLOWED[top]
    for path in sorted((ROOT / top).rglob("*.py")):
        wrong = {m for m in imported(path) if m.split(".")[0] in others}
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_every_module_of_a_layered_package_has_a_floor(package: str) -> None:
    directory = ROOT.joinpath(*package.split("."))
    assert {p.stem for p in directory.glob("*.py")} == set(FLOORS[package])


@pytest.mark.parametrize(
    ("package", "module"), [(p, m) for p, floors in sorted(FLOORS.items()) for m in sorted(floors)]
)
def test_layered_modules_import_only_downward(package: str, module: str) -> None:
    floors = FLOORS[package]
    path = ROOT.joinpath(*package.split("."), f"{module}.py")
    for name in imported(path):
        if name.startswith(f"{package}."):
            below = name.removeprefix(f"{package}.")
            assert floors[below] < floors[module], f"{package}.{module} imports {below}"
