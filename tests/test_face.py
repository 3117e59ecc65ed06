"""`utilities` has one face: it exports exactly what the notebooks use (and the original
notebooks' names), every public name says what it is, functions stay short, imports don't cycle."""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import utilities

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "utilities"
# The original notebooks' calls, kept working whether or not a notebook here uses them.
ORIGINAL_NAMES = {
    "load_torch_data",
    "get_data_loaders",
    "split_train_test",
    "training_logs_to_df",
    "select_device",
}
MAX_FUNCTION_LINES = 30


def names_the_notebooks_use() -> set[str]:
    """Names imported `from utilities` or read as `utilities.<name>` in any notebook's code."""
    used = set()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.ImportFrom) and node.module == "utilities":
                used |= {alias.name for alias in node.names}
            if isinstance(node, ast.Attribute) and getattr(node.value, "id", "") == "utilities":
                used.add(node.attr)
    return used


def module_trees() -> dict[str, ast.Module]:
    """Every module of the package, parsed, by its name."""
    return {path.stem: ast.parse(path.read_text()) for path in sorted(PACKAGE.glob("*.py"))}


def test_the_package_exports_exactly_the_names_the_notebooks_use():
    assert set(utilities.__all__) == names_the_notebooks_use() | ORIGINAL_NAMES
    assert len(utilities.__all__) == len(set(utilities.__all__))


def test_every_exported_function_and_class_has_a_docstring():
    exported = [getattr(utilities, name) for name in utilities.__all__]
    missing = [
        obj.__name__
        for obj in exported
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and not inspect.getdoc(obj)
    ]
    assert missing == []


def test_every_public_top_level_function_and_class_has_a_docstring():
    missing = [
        f"{module}.{node.name}"
        for module, tree in module_trees().items()
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.ClassDef)
        and not node.name.startswith("_")
        and ast.get_docstring(node) is None
    ]
    assert missing == []


def body_lines(function: ast.FunctionDef) -> int:
    """Lines from a function's first statement after its docstring to its end."""
    body = function.body[1:] if ast.get_docstring(function) is not None else function.body
    return function.end_lineno - body[0].lineno + 1 if body else 0


def test_no_function_body_is_longer_than_thirty_lines():
    long = {
        f"{module}.{node.name}": body_lines(node)
        for module, tree in module_trees().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and body_lines(node) > MAX_FUNCTION_LINES
    }
    assert long == {}


def imports_within_the_package(tree: ast.Module) -> set[str]:
    """The package's modules a module imports at its top level."""
    return {
        node.module.split(".")[1]
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("utilities.")
    }


def test_the_modules_import_each_other_without_a_cycle():
    graph = {name: imports_within_the_package(tree) for name, tree in module_trees().items()}
    graph.pop("__init__")
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name not in done:
            for imported in graph[name]:
                visit(imported, (*path, name))
            done.add(name)

    for name in graph:
        visit(name, ())
