"""The package's layers, as README "Development" draws them: each module imports only its own layer
and the ones below (base < io < core < recipes < cli), at the top of the file — never inside a
function, except where start-up time asks for it (:data:`LAZY`) — and the imports form no cycle."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "iau_cli"
LAYERS = ["base", "io", "core", "recipes", "cli"]

LAZY = {
    # The commands import the library when they run, so that `iau --help` and bad flags stay fast
    # (no torch: `iau unlearn --help` 0.2 s; `import torch` alone 1.6 s, measured here).
    "iau_cli.cli",
    "iau_cli.entry",  # signal handlers first, then the CLI
    "iau_cli.__main__",
    "iau_cli.core.methods.catalog",  # the methods' modules (torch) load on first use
}
"""Modules (or packages) allowed function-level imports of the package's own modules."""


def layer_of(module: str) -> str:
    parts = module.split(".")
    if module in ("iau_cli.entry", "iau_cli.__main__"):
        return "cli"  # the entry point starts the CLI
    return parts[1] if len(parts) > 2 and parts[1] in LAYERS else "base"


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def own_imports(module: str, path: Path) -> list[tuple[str, bool]]:
    """(imported module of the package, at function level?) for every import in the file."""
    found: list[tuple[str, bool]] = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1] + [base]).strip(".")
                names = [f"{base}.{alias.name}" for alias in child.names]
                for name in names:
                    target = name if name in ALL else base
                    if target.startswith("iau_cli"):
                        found.append((target, in_function))
            elif isinstance(child, ast.Import):
                found.extend((a.name, in_function) for a in child.names if a.name.startswith("iau_cli"))
            elif isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
                continue  # annotations only
            visit(child, inner)

    visit(ast.parse(path.read_text()), False)
    return found


ALL = modules()


def test_every_module_imports_only_its_layer_and_the_ones_below() -> None:
    wrong = []
    for module, path in ALL.items():
        for target, _ in own_imports(module, path):
            if target == "iau_cli":  # the package itself: only __version__ lives there
                continue
            if LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(module)):
                wrong.append(f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})")
    assert not wrong, "\n".join(wrong)


def test_no_function_level_import_of_the_package_outside_the_start_up_list() -> None:
    lazy = [
        f"{module} imports {target} inside a function"
        for module, path in ALL.items()
        if not any(module == allowed or module.startswith(allowed + ".") for allowed in LAZY)
        for target, in_function in own_imports(module, path)
        if in_function
    ]
    assert not lazy, "\n".join(lazy)


def test_the_imports_form_no_cycle() -> None:
    graph = {m: {t for t, _ in own_imports(m, p) if t in ALL and t != m} for m, p in ALL.items()}
    # A package's __init__ importing its own submodules is how Python packages work: not a cycle.
    state: dict[str, int] = {}

    def walk(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if target.startswith(node + "."):
                continue
            if state.get(target) == 1:
                pytest.fail("import cycle: " + " → ".join([*trail[trail.index(target) :], target]))
            if target not in state:
                walk(target, [*trail, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])


def test_the_checker_sees_a_wrong_import(tmp_path: Path) -> None:
    """The checks above can fail: an io module importing a recipe, inside a function, is found."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from iau_cli.recipes.unlearn import unlearn\n")
    found = own_imports("iau_cli.io.bad", bad)
    assert found == [("iau_cli.recipes.unlearn", True)]
    assert LAYERS.index(layer_of(found[0][0])) > LAYERS.index(layer_of("iau_cli.io.bad"))


@pytest.mark.parametrize("layer", ["iau_cli.io", "iau_cli.core", "iau_cli.recipes.unlearn", "iau_cli.recipes.audit"])
def test_each_layer_imports_on_its_own(layer: str) -> None:
    importlib.import_module(layer)
