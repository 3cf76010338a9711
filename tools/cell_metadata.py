"""Each cell's nbgrader metadata, derived from the cell itself and the grader registry.

A source's `# %%` header carries at most a short id (jupytext's cell title) and, rarely, one
setting; the build works out the rest:

    # %% intro [markdown]                  a locked text cell whose grade_id is "intro"
    # %% setup                             a locked code cell
    # %%                                   a solution cell (it holds `### BEGIN SOLUTION`):
                                           grade_id = the one function (else variable) it defines
    # %%                                   a test cell (it calls `check("name", ...)`): grade_id
                                           "name-tests", points from grader_tests.REGISTRY["name"]
    # %% free-answer [markdown] points=2   a written answer (markdown with `### BEGIN SOLUTION`),
                                           graded by hand: the only cell that states its points
    # %% full-run locked=false             a plain cell the learner may edit

Cells are locked by default. A locked cell without an id gets "<id>-<k>": it is the k-th cell
after the nearest cell above that has an id (written, or given by the rules above), so a cell
added elsewhere changes no id. An id on the header always wins, e.g. where a test cell's id
is not "<exercise>-tests" (Zone 4's `attn_fwd_inner-tests` checks
flash_attention_triton_forward). Points
typed on a code cell, a whole `nbgrader={...}` header or any other key are refused: the
registry is the one place an exercise's points are written.
"""

from __future__ import annotations

import ast
import functools
import re
import sys
from collections.abc import Mapping
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_VERSION = 3
SOLUTION = "### BEGIN SOLUTION"
# A call of the graders' check("name", fn, ...) at the start of a line.
CHECK_CALL = re.compile(r"""^[ \t]*check\(\s*["'](\w+)["']""", re.M)
# What a header may say besides its cell type: the id (jupytext's "title"), hand-graded
# points, and locked=false.
HEADER_KEYS = {"title", "points", "locked"}
# What jupytext itself records about a cell's layout in the text (blank lines, markers): left
# as it is (the built notebooks have always carried `lines_to_next_cell`).
JUPYTEXT_KEYS = {"jupytext", "lines_to_next_cell", "cell_marker", "lines_to_end_of_cell_marker"}


class HeaderError(ValueError):
    """A `# %%` header the build cannot turn into nbgrader metadata; the message says why."""


@functools.cache
def registry_points() -> dict[str, int]:
    """Each exercise's points, as grader_tests.REGISTRY declares them."""
    try:
        import grader_tests
    except ModuleNotFoundError:  # not installed: the repository's own copy
        sys.path.insert(0, str(ROOT))
        import grader_tests
    return {name: exercise.points for name, exercise in grader_tests.REGISTRY.items()}


def _defined_name(source: str) -> str | None:
    """The one function or class a cell defines at top level, else its one assigned name."""
    code = "\n".join(
        line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))
    )
    try:
        body = ast.parse(code).body
    except SyntaxError:
        return None
    defs = [n.name for n in body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assigned = [
        t.id
        for n in body
        if isinstance(n, (ast.Assign, ast.AnnAssign))
        for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
        if isinstance(t, ast.Name)
    ]
    names = defs or list(dict.fromkeys(assigned))
    return names[0] if len(names) == 1 else None


def _kind(cell) -> str:
    """'tests', 'solution' (code), 'answer' (markdown, graded by hand) or 'plain'."""
    checks = cell.cell_type == "code" and CHECK_CALL.search(cell.source)
    solution = SOLUTION in cell.source
    if checks and solution:
        raise HeaderError("a cell both holds a solution and calls check(): split it in two")
    if checks:
        return "tests"
    if solution:
        return "solution" if cell.cell_type == "code" else "answer"
    return "plain"


def _header(cell) -> dict:
    """The header's own settings, checked; `title` is the explicit id."""
    meta = {k: v for k, v in cell.metadata.items() if k not in JUPYTEXT_KEYS}
    unknown = sorted(set(meta) - HEADER_KEYS)
    if unknown:
        raise HeaderError(
            f"header metadata {unknown} not allowed: the build derives the nbgrader metadata "
            "(write at most an id, `points=N` on a written answer, `locked=false`)"
        )
    title = meta.get("title")
    if title is not None and not re.fullmatch(r"[\w][\w.-]*", str(title)):
        raise HeaderError(f"id {title!r}: one word of letters, digits, '_', '-' or '.'")
    return meta


def nbgrader_metadata(nb: nbformat.NotebookNode, points: Mapping[str, int] | None) -> list[dict]:
    """The nbgrader metadata of every cell of `nb` (a jupytext read of a source), in order.

    `points` maps exercise names to points (registry_points()); None leaves graded cells'
    points out (for callers that need only the ids, like tools/translations.py). Raises
    HeaderError, naming the cell, for a header the rules above refuse.
    """
    result = []
    anchor, after = "cell", 0  # the nearest id of a cell's own, and how many cells since
    for i, cell in enumerate(nb.cells):
        try:
            header = _header(cell)
            kind = _kind(cell)
            grade_id = header.get("title")
            meta = {"grade": False, "locked": True, "solution": False}
            if "points" in header and kind != "answer":
                raise HeaderError(
                    "points are written only on a written answer graded by hand; a test cell's "
                    "come from grader_tests.REGISTRY"
                )
            if "locked" in header and (kind != "plain" or header["locked"] is not False):
                raise HeaderError("`locked=false` is for a plain cell (the others are set)")
            if kind == "tests":
                names = list(dict.fromkeys(CHECK_CALL.findall(cell.source)))
                grade_id = grade_id or f"{names[0]}-tests"
                meta.update(grade=True)
                if points is not None:
                    unknown = [n for n in names if n not in points]
                    if unknown:
                        raise HeaderError(f"check() of {unknown}: not in grader_tests.REGISTRY")
                    meta["points"] = sum(points[n] for n in names)
            elif kind == "solution":
                grade_id = grade_id or _defined_name(cell.source)
                if not grade_id:
                    raise HeaderError("a solution cell that defines no single name needs an id")
                meta.update(locked=False, solution=True)
            elif kind == "answer":
                if not grade_id or not isinstance(header.get("points"), int):
                    raise HeaderError("a written answer needs an id and `points=N` on its header")
                meta.update(grade=True, locked=False, solution=True, points=header["points"])
            elif header.get("locked") is False:
                meta.update(locked=False)
            if grade_id:
                anchor, after = grade_id, 0
            else:
                after += 1
                grade_id = f"{anchor}-{after}"
        except HeaderError as err:
            raise HeaderError(f"cell {i} ({cell.source[:40]!r}...): {err}") from None
        meta.update(grade_id=grade_id, schema_version=SCHEMA_VERSION, task=False)
        result.append(meta)
    return result


def grade_ids(nb: nbformat.NotebookNode) -> list[str]:
    """Each cell's grade_id (which is also its cell id in the built notebooks)."""
    return [meta["grade_id"] for meta in nbgrader_metadata(nb, None)]


def apply(nb: nbformat.NotebookNode, points: Mapping[str, int]) -> None:
    """Give every cell of `nb` its nbgrader metadata, and drop the header's own settings."""
    for cell, meta in zip(nb.cells, nbgrader_metadata(nb, points), strict=True):
        for key in HEADER_KEYS:
            cell.metadata.pop(key, None)
        cell.metadata["nbgrader"] = meta
