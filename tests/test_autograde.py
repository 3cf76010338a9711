"""End to end with nbgrader: every zone's solutions score full marks, the release scores 0,
and broken submissions are graded 0 without stopping the run.

Each solution notebook is executed top to bottom by `nbgrader autograde` here; the time it
takes is printed, with the total for the whole course.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest
from course_lock import course_dir_lock
from nbgrader_course import Course, error_outputs, replace_solution

ROOT = Path(__file__).resolve().parent.parent
ZONES = sorted(p.stem for p in (ROOT / "solutions").glob("*/*.py") if p.stem == p.parent.name)
NOTEBOOK_BUDGET_S = 180  # COURSE rule: every notebook runs top to bottom in under 3 minutes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    c = Course(tmp_path_factory.mktemp("course"), ZONES)
    c.generate()
    return c


@pytest.mark.parametrize("zone", ZONES)
def test_solutions_score_full_marks(course, zone, report_row):
    course.submit("solution", zone, course.source_notebook(zone))
    seconds = course.autograde(zone, "solution")
    report_row("notebook_seconds", (zone, seconds))
    nb = course.autograded_notebook(zone, "solution")
    assert error_outputs(nb) == [], f"{zone}: cells raised while executing the solutions"
    score, max_score = course.scores(zone, "solution")
    assert max_score > 0
    assert score == max_score, f"{zone}: solutions scored {score}/{max_score}"
    assert seconds < NOTEBOOK_BUDGET_S, (
        f"{zone} took {seconds:.0f} s (budget {NOTEBOOK_BUDGET_S} s)"
    )


@pytest.mark.parametrize("zone", ZONES)
def test_release_scores_zero_without_grading_error(course, zone):
    course.submit("blank", zone, course.release_notebook(zone))
    course.autograde(zone, "blank")
    score, max_score = course.scores(zone, "blank")
    assert max_score > 0
    assert score == 0, f"{zone}: the unmodified release scored {score}/{max_score}"
    nb = course.autograded_notebook(zone, "blank")
    names = {err.split(":")[0] for _, err in error_outputs(nb)}
    assert "NotImplementedError" in names or "GradingError" in names


def test_points_in_notebooks_match_the_registry():
    """Each exercise's test cell carries the points its registry entry declares."""
    import grader_tests

    for zone in ZONES:
        with course_dir_lock(exclusive=False):  # not while the browser test saves into course/
            nb = json.loads((ROOT / "course" / zone / f"{zone}.ipynb").read_text())
        for cell in nb["cells"]:
            meta = cell["metadata"].get("nbgrader", {})
            source = "".join(cell["source"])
            if meta.get("grade") and cell["cell_type"] == "code":
                called = [n for n in grader_tests.REGISTRY if f'check("{n}"' in source]
                assert called, f"{zone}/{meta['grade_id']}: a graded cell that calls no checker"
                expected = sum(grader_tests.REGISTRY[n].points for n in called)
                assert meta["points"] == expected, (
                    zone,
                    meta["grade_id"],
                    meta["points"],
                    expected,
                )


BROKEN = {
    "raises": "def softmax(x, axis=-1):\n    raise ValueError('I give up')\n",
    "syntax-error": "def softmax(x, axis=-1)\n    return x\n",
    "loops-forever": "while True:\n    pass\n",
    "loops-inside": "def softmax(x, axis=-1):\n    while True:\n        pass\n",
}


def test_broken_submissions_are_graded_zero_and_the_run_continues(tmp_path):
    """A submission that raises, has a syntax error or loops forever is graded 0 within the
    cell timeout, and the other students of the same run are still graded."""
    zone = "00_quickstart"
    c = Course(tmp_path, [zone], extra_config="c.Execute.timeout = 10\n")
    c.generate()
    solution = nbformat.read(c.source_notebook(zone), as_version=4)
    for student, source in BROKEN.items():
        c.submit(student, zone, replace_solution(solution, "softmax", source))
    c.submit("good", zone, c.source_notebook(zone))
    start = time.perf_counter()
    c.autograde(zone, timeout=600)
    elapsed = time.perf_counter() - start
    full = c.scores(zone, "good")
    assert full[0] == full[1] > 0
    for student in BROKEN:
        score, max_score = c.scores(zone, student)
        # softmax is lost, and so is scaled_dot_product_attention, which calls it.
        assert (score, max_score) == (0, full[1]), (student, score, max_score)
    print(f"\nautograded {len(BROKEN) + 1} submissions, incl. broken ones, in {elapsed:.0f} s")
