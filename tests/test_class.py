"""A class on one machine: release -> fetch -> submit -> collect through nbgrader's exchange,
then `attnlab-grade` autogrades everyone — correct, partial, blank, crashing and timing-out
submissions — and the exported CSV holds exactly the expected scores.

Zone 0 is the assignment (5 points: softmax 2, scaled_dot_product_attention 3): it is the
fastest notebook. Every notebook runs in the bubblewrap sandbox, where hidden checks only
record outputs, and the grader outside judges them (grader_tests/sandbox.py, verdict.py).
Attacks on grading are tests/test_attacks.py's catalogue; the JupyterHub round trip with real
users is tests/test_hub.py. Second test: two students hand in the whole course.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbgrader_course import OWN_SDPA, Course, nbgrader_env, replace_solution

ZONE = "00_quickstart"
pytestmark = pytest.mark.slow

WRONG_SOFTMAX = """def softmax(x, axis=-1):
    e = np.exp(np.asarray(x, dtype=float))          # no max subtraction: wrong on huge scores
    return e / e.sum(axis=axis, keepdims=True)
"""
BAD_SDPA_NO_SCALE = OWN_SDPA.replace(" / np.sqrt(q.shape[-1])", "")

# student kind -> (softmax cell, sdpa cell or None for the solution's, expected score).
# Attacks on grading are tests/test_attacks.py's catalogue; here, a class's ordinary faults.
FAULTS = {
    "raises": ("def softmax(x, axis=-1):\n    raise ValueError('oops')\n", None, 0),
    "syntax-error": ("def softmax(x, axis=-1)\n    return x\n", None, 0),
    "os-exit": ("import os\nos._exit(1)\n", None, 0),
    "kills-kernel-later": (WRONG_SOFTMAX, "import os\nos._exit(3)\n", 0),
    "sleeps-forever": ("import time\ntime.sleep(10**6)\n", None, 0),
    "loops-inside": ("def softmax(x, axis=-1):\n    while True:\n        pass\n", None, 0),
}
N_CORRECT, N_PARTIAL, N_BLANK = 2, 2, 2  # with the six faults: a class of 12


def _roster():
    """student id -> (kind, softmax source or None, sdpa source or None, expected score)."""
    roster = {}
    for _ in range(N_CORRECT):
        roster[f"s{len(roster):02d}"] = ("correct", None, None, 5)
    for _ in range(N_PARTIAL):
        roster[f"s{len(roster):02d}"] = ("partial", None, BAD_SDPA_NO_SCALE, 2)
    for _ in range(N_BLANK):
        roster[f"s{len(roster):02d}"] = ("blank", "BLANK", None, 0)
    for kind, (soft, sdpa, score) in FAULTS.items():
        roster[f"s{len(roster):02d}"] = (kind, soft, sdpa, score)
    return roster


def _student_notebook(kind, soft, sdpa, release_nb, solution_nb):
    if soft == "BLANK":
        return nbformat.from_dict(release_nb)
    nb = nbformat.from_dict(solution_nb)
    if soft is not None:
        nb = replace_solution(nb, "softmax", soft)
    if sdpa is not None:
        nb = replace_solution(nb, "scaled_dot_product_attention", sdpa)
    if kind == "edits-test-cell":
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == "softmax-tests":
                cell.source = "print('softmax: all visible checks passed.')"
    if kind == "deletes-test-cell":
        nb.cells = [
            c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "softmax-tests"
        ]
    return nb


def _exchange(
    cls, coursedir_root: Path, exchange: Path, assignment: str, student: str | None = None
):
    """Run an nbgrader exchange step in this process (no per-student interpreter start)."""
    from nbgrader.auth import Authenticator
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    config = Config()
    config.CourseDirectory.root = str(coursedir_root)
    config.CourseDirectory.course_id = "attnlab"
    config.Exchange.root = str(exchange)
    config.Exchange.cache = str(coursedir_root / ".nbgrader-cache")
    config.Exchange.assignment_dir = str(coursedir_root)
    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id = assignment
    if student:
        coursedir.student_id = student
    step = cls(coursedir=coursedir, authenticator=Authenticator(config=config), config=config)
    return step.start()


def test_a_class_through_the_exchange(tmp_path, report_row):
    from nbgrader.exchange.default import ExchangeFetchAssignment, ExchangeSubmit

    exchange = tmp_path / "exchange"
    exchange.mkdir()
    os.chmod(exchange, 0o777)
    instructor = Course(
        tmp_path / "instructor",
        [ZONE],
        extra_config=(
            f'c.Exchange.root = "{exchange}"\n'
            'c.CourseDirectory.course_id = "attnlab"\n'
            "c.Execute.timeout = 10\n"
        ),
    )
    instructor.generate()
    instructor.nbgrader("release_assignment", ZONE, "--force")
    release_nb = nbformat.read(instructor.release_notebook(ZONE), as_version=4)
    solution_nb = nbformat.read(instructor.source_notebook(ZONE), as_version=4)

    roster = _roster()
    size = len(roster)
    start = time.perf_counter()
    for student, (kind, soft, sdpa, _) in roster.items():
        home = tmp_path / "students" / student
        home.mkdir(parents=True)
        _exchange(ExchangeFetchAssignment, home, exchange, ZONE)
        fetched = home / ZONE / f"{ZONE}.ipynb"
        assert fetched.exists(), f"{student} could not fetch the assignment"
        nbformat.write(_student_notebook(kind, soft, sdpa, release_nb, solution_nb), fetched)
        _exchange(ExchangeSubmit, home, exchange, ZONE, student=student)
    exchange_s = time.perf_counter() - start

    grade = [
        sys.executable,
        "-m",
        "grader_tests.instructor",
        ZONE,
        "--collect",
        "--no-progress",
        "--course-dir",
        str(instructor.root),
    ]
    start = time.perf_counter()
    out = subprocess.run(grade, env=nbgrader_env(), capture_output=True, text=True, timeout=1500)
    grading_s = time.perf_counter() - start
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    print("\n" + out.stdout)

    with open(instructor.root / "grades.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == size, f"grades.csv has {len(rows)} rows for {size} students"
    got = {r["student_id"]: float(r["score"]) for r in rows}
    wrong = {
        s: (roster[s][0], got.get(s), roster[s][3]) for s in roster if got.get(s) != roster[s][3]
    }
    assert not wrong, f"unexpected scores (kind, got, expected): {wrong}"
    assert all(float(r["max_score"]) == 5 for r in rows)

    with open(instructor.root / "grading_report.csv") as fh:
        report = {r["student"]: r for r in csv.DictReader(fh)}
    assert sorted(report) == sorted(roster)
    for student, (kind, *_rest) in roster.items():
        assert report[student]["flags"] == "", (student, kind, report[student]["flags"])
        if kind in FAULTS and kind not in ("raises", "syntax-error", "loops-inside"):
            assert report[student]["reason"], (student, kind, "a run that did not finish says why")
    line = (
        f"class of {size}: exchange round trip {exchange_s:.1f} s; attnlab-grade {grading_s:.0f} s "
        f"= {size / (grading_s / 60):.1f} submissions per minute"
    )
    print(line)
    report_row("summary_line", line)

    # A second run gives the same grades (here for a quarter of the class, to save time).
    first = {s: got[s] for s in got}
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "nbgrader",
            "autograde",
            ZONE,
            "--force",
            "--student=s1*",
            "--log-level=ERROR",
        ],
        cwd=instructor.root,
        env=nbgrader_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert again.returncode in (0, 1), again.stderr[-2000:]
    for student in [s for s in roster if s.startswith("s1")]:
        assert instructor.scores(ZONE, student)[0] == first[student], student


def _last_exercise(nb) -> tuple[str, float]:
    """grade_id of the last graded code solution cell, and the points of the tests after it."""
    cells = nb.cells
    solutions = [
        i
        for i, c in enumerate(cells)
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
    ]
    last = solutions[-1]
    after = sum(
        c.metadata["nbgrader"].get("points", 0)
        for c in cells[last + 1 :]
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
    )
    return cells[last].metadata["nbgrader"]["grade_id"], float(after)


def test_two_students_hand_in_the_whole_course(tmp_path, report_row):
    """The full course (2 students x 8 zones) through the exchange:
    every one is graded with the expected score, a kernel killed in the last exercise costs
    only what had not run yet, and grading an assignment twice gives the same grades.
    (An unsolved exercise scoring 0 is the class test's; not repeated here, to keep CI short.)"""
    from nbgrader.exchange.default import ExchangeFetchAssignment, ExchangeSubmit

    root = Path(__file__).resolve().parent.parent
    zones = sorted(p.stem for p in (root / "solutions").glob("*/*.py") if p.stem == p.parent.name)
    exchange = tmp_path / "exchange"
    exchange.mkdir()
    os.chmod(exchange, 0o777)
    instructor = Course(
        tmp_path / "instructor",
        zones,
        extra_config=f'c.Exchange.root = "{exchange}"\nc.CourseDirectory.course_id = "attnlab"\n',
    )
    instructor.generate()
    expected: dict[tuple[str, str], float] = {}
    for zone in zones:
        instructor.nbgrader("release_assignment", zone, "--force")
        solution = nbformat.read(instructor.source_notebook(zone), as_version=4)
        total = float(
            sum(
                c.metadata["nbgrader"].get("points", 0)
                for c in solution.cells
                if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
            )
        )
        last, last_points = _last_exercise(solution)
        students = {
            "ada": (solution, total),
            # the kernel dies in the last exercise: what ran before it still counts
            "dee": (
                replace_solution(solution, last, "import os\nos._exit(1)\n"),
                total - last_points,
            ),
        }
        for student, (nb, score) in students.items():
            home = tmp_path / "students" / student
            home.mkdir(parents=True, exist_ok=True)
            _exchange(ExchangeFetchAssignment, home, exchange, zone)
            nbformat.write(nbformat.from_dict(nb), home / zone / f"{zone}.ipynb")
            _exchange(ExchangeSubmit, home, exchange, zone, student=student)
            expected[(zone, student)] = score

    start = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "grader_tests.instructor",
            "--all",
            "--collect",
            "--no-progress",
            "--course-dir",
            str(instructor.root),
        ],
        env=nbgrader_env(),
        capture_output=True,
        text=True,
        timeout=1500,
    )
    grading_s = time.perf_counter() - start
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with open(instructor.root / "grades.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * len(zones), f"grades.csv has {len(rows)} rows"
    got = {(r["assignment"], r["student_id"]): float(r["score"]) for r in rows}
    wrong = {key: (got.get(key), want) for key, want in expected.items() if got.get(key) != want}
    assert not wrong, f"unexpected scores (got, expected): {wrong}"

    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "nbgrader",
            "autograde",
            "06_review",
            "--force",
            "--log-level=ERROR",
        ],
        cwd=instructor.root,
        env=nbgrader_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert again.returncode in (0, 1), again.stderr[-2000:]
    for student in ("ada", "dee"):
        assert instructor.scores("06_review", student)[0] == expected[("06_review", student)]
    n = 2 * len(zones)
    line = (
        f"whole course, 2 students x {len(zones)} zones = {n} submissions: attnlab-grade "
        f"{grading_s:.0f} s = {n / (grading_s / 60):.1f} submissions per minute"
    )
    print(line)
    report_row("summary_line", line)
