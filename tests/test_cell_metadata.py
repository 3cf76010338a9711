"""The nbgrader metadata the build derives from the sources' short `# %%` headers, and the
README's points table written from the graders' registry (tools/cell_metadata.py)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import build_course
import cell_metadata
from cell_metadata import HeaderError, nbgrader_metadata

SOURCES = build_course.zone_sources()
POINTS = {"softmax": 2, "causal_mask": 3}


def _nb(text: str):
    return jupytext.reads(text, fmt="py:percent")


EVERY_KIND = """# %% intro [markdown]
# Hello.

# %%
def softmax(x):
    ### BEGIN SOLUTION
    return x
    ### END SOLUTION

# %%
check("softmax", softmax)
### BEGIN HIDDEN TESTS
check("softmax", softmax, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# A note with no id, and `check("causal_mask", f)` in its text.

# %%
print(softmax(1))

# %% essay [markdown] points=2
# ### BEGIN SOLUTION
# A model answer.
# ### END SOLUTION

# %% knob locked=false
FULL_RUN = False

# %% mask-tests
check("causal_mask", causal_mask)
"""


def _meta(grade_id, grade=False, locked=True, solution=False, points=None):
    meta = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": 3,
        "solution": solution,
        "task": False,
    }
    if points is not None:
        meta["points"] = points
    return meta


def test_every_kind_of_cell():
    assert nbgrader_metadata(_nb(EVERY_KIND), POINTS) == [
        _meta("intro"),
        _meta("softmax", locked=False, solution=True),
        _meta("softmax-tests", grade=True, points=2),
        _meta("softmax-tests-1"),  # no id: the k-th cell after the nearest id
        _meta("softmax-tests-2"),
        _meta("essay", grade=True, locked=False, solution=True, points=2),
        _meta("knob", locked=False),
        _meta("mask-tests", grade=True, points=3),  # an explicit id wins
    ]
    assert cell_metadata.grade_ids(_nb(EVERY_KIND))[2] == "softmax-tests"


def test_apply_leaves_no_header_keys_in_the_notebook():
    nb = _nb(EVERY_KIND)
    cell_metadata.apply(nb, POINTS)
    for cell in nb.cells:
        assert not {"title", "points", "locked"} & set(cell.metadata)
    assert nb.cells[2].metadata["nbgrader"]["points"] == 2


REFUSED = {
    "typed points on a test cell": (
        '# %% points=2\ncheck("softmax", softmax)\n',
        "grader_tests.REGISTRY",
    ),
    "a full nbgrader header": (
        '# %% nbgrader={"grade": true, "grade_id": "softmax-tests", "points": 2}\n'
        'check("softmax", softmax)\n',
        "derives the nbgrader metadata",
    ),
    "points on a locked cell": ("# %% intro [markdown] points=1\n# Hello.\n", "points"),
    "a check of an unknown exercise": ('# %%\ncheck("nope", f)\n', "not in grader_tests.REGISTRY"),
    "a solution defining two names": (
        "# %%\ndef a():\n    ### BEGIN SOLUTION\n    pass\n    ### END SOLUTION\n\n"
        "def b():\n    pass\n",
        "needs an id",
    ),
    "a written answer without points": (
        "# %% essay [markdown]\n# ### BEGIN SOLUTION\n# x\n# ### END SOLUTION\n",
        "points=N",
    ),
    "a solution and its check in one cell": (
        "# %%\ndef softmax(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"
        'check("softmax", softmax)\n',
        "split it in two",
    ),
    "an unlocked solution marked locked=false": (
        "# %% locked=false\ndef f():\n    ### BEGIN SOLUTION\n    pass\n    ### END SOLUTION\n",
        "locked=false",
    ),
    "an id with a space": ('# %% "my id"\nx = 1\n', "one word"),
}


@pytest.mark.parametrize("source, message", REFUSED.values(), ids=REFUSED.keys())
def test_a_header_the_build_does_not_accept_is_refused(source, message):
    with pytest.raises(HeaderError, match=re.escape(message)):
        nbgrader_metadata(_nb(source), POINTS)


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_source_headers_are_short_and_type_no_points(source):
    """No nbgrader JSON, no points but on a written answer, headers as jupytext writes them."""
    text = source.read_text(encoding="utf-8")
    headers = [line for line in text.splitlines() if line.startswith("# %%")]
    assert headers
    for line in headers:
        assert "nbgrader" not in line, line
        assert len(line) <= 60, f"a long header: {line}"
        if "points=" in line:
            assert "[markdown]" in line, f"points typed on a code cell: {line}"
    written = jupytext.writes(_nb(text), fmt="py:percent")
    assert [line for line in written.splitlines() if line.startswith("# %%")] == headers


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_every_graded_code_cell_has_the_registry_points(source):
    import grader_tests

    nb = build_course.source_notebook(source)
    graded = 0
    for cell in nb.cells:
        meta = cell.metadata["nbgrader"]
        assert cell["id"] == meta["grade_id"]
        if meta["grade"] and cell.cell_type == "code":
            names = set(re.findall(r'^check\("(\w+)"', cell.source, flags=re.M))
            assert len(names) == 1, meta["grade_id"]
            assert meta["points"] == grader_tests.REGISTRY[names.pop()].points
            graded += 1
    assert graded > 0


EXERCISE_HEADING = re.compile(r"^#+ Exercise\b.*\((\d+) points?\)", flags=re.M)


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_the_points_an_exercise_heading_states_are_the_registry_points(source):
    """ "## Exercise 1 — softmax (2 points)": the next graded cell's exercise is worth 2."""
    import grader_tests

    nb = build_course.source_notebook(source)
    stated = None
    checked = 0
    for cell in nb.cells:
        if cell.cell_type == "markdown" and (match := EXERCISE_HEADING.search(cell.source)):
            stated = (match.group(0), int(match.group(1)))
        names = re.findall(r'^check\("(\w+)"', cell.source, flags=re.M)
        if cell.cell_type == "code" and names and stated is not None:
            heading, points = stated
            assert points == grader_tests.REGISTRY[names[0]].points, (source.stem, heading)
            stated = None
            checked += 1
    assert stated is None, f"{source.stem}: no graded cell follows {stated[0]!r}"
    if source.stem != "06_review":  # the quiz states its parts' points, not exercises'
        assert checked > 0


def test_readme_points_table_is_up_to_date():
    """Fails when a registry's points (or a notebook's exercises) change without `make build`."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    begin, end = text.index(build_course.MAP_BEGIN), text.index(build_course.MAP_END)
    section = text[begin + len(build_course.MAP_BEGIN) : end].strip("\n")
    assert section == build_course.points_table(), "README.md's points table is stale: make build"
