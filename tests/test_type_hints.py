"""Type hints on every public function: attnlab's, and the grading API's.

Read with `ast` (nothing is imported): a public function is a module-level function, or a
public method or `__init__` of a module-level class, whose name does not start with "_".
Each of its parameters (self and cls excepted) needs an annotation, and a return annotation
is needed everywhere but `__init__`. Triton kernels (`@triton.jit`) are exempt: Triton reads
their annotations itself (tl.constexpr, and a type there changes how the kernel is
specialised), so the plain parameters stay bare on purpose.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib" / "attnlab"
# The grading API: what an instructor or an exercise module calls.
GRADING_API = [
    ROOT / "grader_tests" / name
    for name in ("registry.py", "checking.py", "comparison.py", "instructor.py", "class_grading.py")
]
# Modules allowed to evaluate their annotations: Triton reads the kernels' annotations.
EVALUATED_ANNOTATIONS = {
    LIB / "flash" / name for name in ("triton_kernels.py", "triton_backward.py")
}

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


def _module_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements of a module body, looking inside module-level if/try blocks."""
    found = []
    for node in body:
        if isinstance(node, ast.If):
            found += _module_level(node.body) + _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            found += _module_level(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                found += _module_level(handler.body)
        else:
            found.append(node)
    return found


def _is_triton_kernel(node: FunctionNode) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if ast.unparse(target).split(".")[0] == "triton":
            return True
    return False


def _public_functions(tree: ast.Module) -> list[tuple[FunctionNode, bool]]:
    """(function, is_method) for every public function and method of a module."""
    found = []
    for node in _module_level(tree.body):
        if isinstance(node, FunctionNode) and not node.name.startswith("_"):
            found.append((node, False))
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            found += [
                (item, True)
                for item in node.body
                if isinstance(item, FunctionNode)
                and (not item.name.startswith("_") or item.name == "__init__")
            ]
    return [(fn, is_method) for fn, is_method in found if not _is_triton_kernel(fn)]


def _missing(fn: FunctionNode, is_method: bool) -> list[str]:
    """What `fn` lacks: the parameters without annotation, and the return annotation."""
    args = fn.args
    params = args.posonlyargs + args.args + args.kwonlyargs
    if args.vararg:
        params.append(args.vararg)
    if args.kwarg:
        params.append(args.kwarg)
    is_static = any(ast.unparse(d) == "staticmethod" for d in fn.decorator_list)
    if is_method and not is_static and params and params[0].arg in ("self", "cls"):
        params = params[1:]
    lacking = [p.arg for p in params if p.annotation is None]
    problems = [f"parameters {', '.join(lacking)}"] if lacking else []
    if fn.returns is None and fn.name != "__init__":
        problems.append("return")
    return problems


def missing_annotations(paths: list[Path]) -> tuple[list[str], int]:
    """One line per public function lacking an annotation, and the number of public functions."""
    lines, total = [], 0
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for fn, is_method in _public_functions(tree):
            total += 1
            problems = _missing(fn, is_method)
            if problems:
                where = f"{path.relative_to(ROOT)}:{fn.lineno}"
                lines.append(f"{where} {fn.name}: no annotation for {' and '.join(problems)}")
    return lines, total


def _report(lines: list[str], total: int) -> str:
    return f"{len(lines)} of {total} public functions lack type hints:\n" + "\n".join(lines)


def test_the_checker_sees_what_is_missing():
    source = """
import triton

def bare(x, *args, **kwargs): ...
def typed(x: int, /, y: str = "", *, z: float) -> None: ...
def _private(x): ...
@triton.jit
def kernel(ptr, BLOCK: tl.constexpr): ...
class Model:
    def __init__(self, n: int): ...
    def forward(self, x): ...
    @classmethod
    def build(cls, n: int) -> "Model": ...
    @staticmethod
    def backward(ctx, dout) -> None: ...
    def _helper(self, x): ...
class _Private:
    def run(self, x): ...
if True:
    def conditional(x): ...
"""
    tree = ast.parse(source)
    found = {fn.name: _missing(fn, is_method) for fn, is_method in _public_functions(tree)}
    assert found == {
        "bare": ["parameters x, args, kwargs", "return"],
        "typed": [],
        "__init__": [],
        "forward": ["parameters x", "return"],
        "build": [],
        "backward": ["parameters ctx, dout"],
        "conditional": ["parameters x", "return"],
    }


def test_attnlab_public_functions_are_annotated():
    lines, total = missing_annotations(sorted(LIB.rglob("*.py")))
    assert total > 250, f"found only {total} public functions in {LIB}"
    assert not lines, _report(lines, total)


def test_attnlab_annotations_are_not_evaluated():
    """`from __future__ import annotations` in every module that defines a function, so
    annotations naming torch, matplotlib or transformers types cost nothing at import."""
    lacking = []
    for path in sorted(LIB.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        has_function = any(isinstance(node, FunctionNode) for node in ast.walk(tree))
        future = any(
            isinstance(node, ast.ImportFrom)
            and node.module == "__future__"
            and any(alias.name == "annotations" for alias in node.names)
            for node in tree.body
        )
        if has_function and not future and path not in EVALUATED_ANNOTATIONS:
            lacking.append(str(path.relative_to(ROOT)))
    assert not lacking, "no `from __future__ import annotations` in:\n" + "\n".join(lacking)


def test_grading_api_public_functions_are_annotated():
    paths = [path for path in GRADING_API if path.exists()]
    if not paths:
        pytest.fail(f"none of the grading API modules exists: {[p.name for p in GRADING_API]}")
    lines, total = missing_annotations(paths)
    assert not lines, _report(lines, total)
