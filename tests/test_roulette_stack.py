"""The roulette reads in one direction: each module imports only those
below it (README, Layout), and none imports inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import portal.roulette

# Bottom first, as the README lists them.
STACK = (
    "choice",
    "lease",
    "signals",
    "pool",
    "push",
    "placement",
    "routing",
    "endings",
    "switch",
    "decisions",
    "sweep",
    "router",
    "views",
)
HERE = Path(portal.roulette.__file__).parent


@pytest.fixture(autouse=True)
def clean_state() -> None:
    """Replaces the suite's wipe: this reads source files only."""


def _imports(tree: ast.Module) -> set[str]:
    """The portal.roulette modules a module imports."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "portal.roulette":
                found |= {alias.name for alias in node.names}
            elif node.module.startswith("portal.roulette."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("portal.roulette."):
                    found.add(alias.name.split(".")[2])
    return found


def test_every_module_of_the_package_is_in_the_stack() -> None:
    modules = {p.stem for p in HERE.glob("*.py")} - {"__init__"}
    assert modules == set(STACK)


@pytest.mark.parametrize("name", STACK)
def test_a_module_imports_only_those_below_it(name: str) -> None:
    tree = ast.parse((HERE / f"{name}.py").read_text())
    below = set(STACK[: STACK.index(name)])
    assert _imports(tree) <= below


@pytest.mark.parametrize("name", STACK)
def test_no_import_inside_a_function(name: str) -> None:
    tree = ast.parse((HERE / f"{name}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inner = [
                n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))
            ]
            assert not inner, f"{name}.{node.name} imports inside its body"


@pytest.mark.parametrize("name", STACK)
def test_a_module_stays_short(name: str) -> None:
    assert len((HERE / f"{name}.py").read_text().splitlines()) <= 450
