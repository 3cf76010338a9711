"""How grader_tests is laid out: exercises by concept, each in its notebook, no import cycles.

- every exercise's `zone` is the notebook whose source calls `check("<name>", ...)`;
- the modules of grader_tests, and those of the attnlab library, import each other without
  a cycle (read with ast, imports inside functions included) and none is longer than
  MAX_LINES (lib/attnlab's data tables, such as locale/, are not Python);
- pyproject.toml's explicit package list names every package folder, so `pip install .`
  installs grader_tests.exercises (and every attnlab subpackage) too;
- the grading API's public functions carry type hints.
"""

from __future__ import annotations

import ast
import importlib
import re
import tomllib
from pathlib import Path

import pytest

from grader_tests import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "grader_tests"
MAX_LINES = 500


def _module_name(path: Path, top: Path = ROOT) -> str:
    parts = path.relative_to(top).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
LIBRARY = ROOT / "lib" / "attnlab"
LIBRARY_MODULES = {_module_name(p, LIBRARY.parent): p for p in sorted(LIBRARY.rglob("*.py"))}


# ------------------------------------------------------------------------- zones
def _checks_by_notebook() -> dict[str, set[str]]:
    """{exercise name: the notebooks (solutions/NN_name) whose source calls check("name", ...)}."""
    found: dict[str, set[str]] = {}
    for source in sorted((ROOT / "solutions").glob("*/*.py")):
        if source.stem != source.parent.name:
            continue
        for name in re.findall(r"""\bcheck\(\s*["'](\w+)["']""", source.read_text("utf-8")):
            found.setdefault(name, set()).add(source.stem)
    return found


def test_every_exercise_names_the_notebook_that_checks_it():
    checks = _checks_by_notebook()
    for name, ex in REGISTRY.items():
        assert ex.zone, f"{name}: no zone (the notebook it appears in)"
        assert checks.get(name) == {ex.zone}, (
            f"{name}: zone={ex.zone!r}, but check({name!r}, ...) is called in {checks.get(name)}"
        )
    assert set(checks) <= set(REGISTRY), (
        f"checked but not registered: {set(checks) - set(REGISTRY)}"
    )


def test_each_exercise_is_registered_by_its_concept_module():
    """A newcomer finds an exercise's grader under grader_tests/exercises/, by concept."""
    for name, ex in REGISTRY.items():
        module = getattr(ex.cases, "__module__", "")
        assert module.startswith("grader_tests.exercises."), (name, module)


# ------------------------------------------------------------------------- imports
def _resolve(module: str, node: ast.ImportFrom, modules: dict[str, Path] = MODULES) -> str:
    """The absolute module an ImportFrom reads from (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    package = module if modules[module].name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def import_graph(modules: dict[str, Path] = MODULES) -> dict[str, set[str]]:
    """{module: the modules of the package it imports}, every import statement counted."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, node, modules)
                # `from pkg import sub` imports the submodule sub; `from mod import name`, mod
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            graph[module] |= {t for t in targets if t in modules and t != module}
    return graph


def unresolved_imports() -> list[str]:
    """Imports of grader_tests modules that do not exist (a module moved, an import left behind)."""
    missing = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [_resolve(module, node)]
            else:
                continue
            for name in names:
                if name.split(".")[0] == "grader_tests" and name not in MODULES:
                    missing.append(f"{module}, line {node.lineno}: {name}")
    return missing


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_grader_tests_has_no_import_cycle():
    graph = import_graph()
    assert "grader_tests.exercises" in graph["grader_tests"]
    assert "grader_tests.registry" in graph["grader_tests.exercises.flash"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_library_has_no_import_cycle():
    """Package __init__ files import their modules; no module imports back up the chain."""
    graph = import_graph(LIBRARY_MODULES)
    assert "attnlab.plots.masks" in graph["attnlab.plots"]
    assert "attnlab.functional" in graph["attnlab.plots.masks"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_import_of_a_grader_module_finds_it():
    assert not unresolved_imports()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_imports(module):
    importlib.import_module(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_too_long(module):
    lines = len(MODULES[module].read_text("utf-8").splitlines())
    assert lines <= MAX_LINES, f"{module}: {lines} lines; split it by concept"


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT)) for p in LIBRARY.rglob("*.py")))
def test_no_library_module_is_too_long(path):
    lines = len((ROOT / path).read_text("utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path}: {lines} lines; split it by concept"


# ------------------------------------------------------------------------- packaging
def test_pyproject_installs_every_package_folder():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    for package, folder in setuptools["package-dir"].items():
        root = ROOT / folder
        for init in root.rglob("__init__.py"):
            sub = init.parent.relative_to(root).parts
            name = ".".join((package, *sub))
            assert name in listed, f"{name} ({init.parent}) is not in pyproject's packages"
    assert "grader_tests.exercises" in listed


# ------------------------------------------------------------------------- type hints
def _public_functions(tree: ast.Module):
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            yield node.name, node
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not item.name.startswith("_"):
                    yield f"{node.name}.{item.name}", item


def test_the_grading_api_is_type_hinted():
    missing = []
    for module, path in MODULES.items():
        for name, fn in _public_functions(ast.parse(path.read_text("utf-8"))):
            a = fn.args
            params = a.posonlyargs + a.args + a.kwonlyargs + [p for p in (a.vararg, a.kwarg) if p]
            bare = [p.arg for p in params if p.annotation is None and p.arg not in ("self", "cls")]
            if bare or fn.returns is None:
                missing.append(f"{module}.{name}: {bare or ''} {'' if fn.returns else 'no return'}")
    assert not missing, "\n".join(missing)
